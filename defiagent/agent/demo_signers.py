"""The demo's agent signer, with any of the three backends.

keystore: a throwaway encrypted keystore, its password generated in memory.
ledger:   the real Ledger Ethereum app (1.9.17, Nano X) in Speculos, with a fresh throwaway
          mnemonic, its blind-signing setting turned on through its settings menu, and an
          auto-approver pressing the buttons; reached through ledgerblue's real TCP
          transport, so the signer's APDU code is the production code. Needs what
          scripts/bootstrap installs (.venv-speculos, qemu-user-static) and the app's ELF
          from the source tree (tests/signing/fixtures/ledger/, or $DEFIAGENT_LEDGER_ELF).
kms:      a local KMS (moto on loopback, DIGEST honoured) reached through real boto3 calls.
remote:   a throwaway keystore owned by `defiagent signer serve`, a separate process that
          re-checks every transaction (defiagent/signing/remote/demo.py); the agent holds
          only the socket's path.
Each yields the signer and the `[signer]` table a real deployment would write.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account import Account

from defiagent.errors import ConfigError
from defiagent.signing.base import Signer
from defiagent.signing.config import KmsSignerConfig, LedgerSignerConfig, build_signer

BACKENDS = ("keystore", "ledger", "kms", "remote")


@contextmanager
def demo_signer(backend: str, workdir: Path) -> Iterator[tuple[Signer, dict[str, Any]]]:
    if backend == "keystore":
        yield _keystore(workdir)
    elif backend == "ledger":
        with _ledger(workdir) as pair:
            yield pair
    elif backend == "kms":
        with _kms() as pair:
            yield pair
    elif backend == "remote":  # the key in `defiagent signer serve`, started by run_demo
        from defiagent.signing.remote.demo import DemoRemoteSigner

        remote = DemoRemoteSigner(workdir)
        yield remote, remote.table
    else:
        raise ConfigError(f"unknown signer {backend!r} (choose {', '.join(BACKENDS)})")


def _keystore(workdir: Path) -> tuple[Signer, dict[str, Any]]:
    from defiagent.signing.keystore import KeystoreSigner, write_keystore

    key_path = workdir / "agent-keystore.json"
    password = secrets.token_urlsafe(24)  # in memory only
    write_keystore(key_path, bytes(Account.create().key), password, light=True)
    signer = KeystoreSigner(key_path, password)
    table = {
        "backend": "keystore",
        "path": str(key_path),
        "password_env": "DEFIAGENT_KEYSTORE_PASSWORD",
    }
    return signer, table


@contextmanager
def _ledger(workdir: Path) -> Iterator[tuple[Signer, dict[str, Any]]]:
    from eth_account.hdaccount import generate_mnemonic
    from eth_account.types import Language

    from defiagent.signing.testing.speculos import AutoApprover, Speculos

    # A throwaway seed for a throwaway chain: generated here, never written anywhere.
    mnemonic = generate_mnemonic(12, Language.ENGLISH)
    with Speculos(mnemonic, log_dir=workdir / "speculos") as device:
        device.set_blind_signing(True)  # the agent's approvals and swaps are contract calls
        with AutoApprover(device):
            cfg = LedgerSignerConfig(backend="ledger")
            signer = build_signer(cfg, ledger_dongle=device.dongle())
            try:
                yield signer, cfg.model_dump(mode="json", exclude_none=True)
            finally:
                close = getattr(signer, "close", None)
                if close:
                    close()


@contextmanager
def _kms() -> Iterator[tuple[Signer, dict[str, Any]]]:
    try:
        from defiagent.signing.testing.moto_kms import LocalKms
    except ImportError as exc:  # moto is a dev dependency
        raise ConfigError("the local KMS needs moto: run scripts/bootstrap") from exc
    # The local KMS takes any credentials; never hand it the operator's real ones.
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    # The emulator's placeholder credentials (moto accepts anything): not a secret.
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        with LocalKms("us-east-1") as kms:
            cfg = KmsSignerConfig(
                backend="kms",
                key_id=kms.create_key(),
                region="us-east-1",
                endpoint_url=kms.endpoint_url,
            )
            yield build_signer(cfg), cfg.model_dump(mode="json", exclude_none=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
