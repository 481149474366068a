"""Fixtures for the signers: the real Ledger Ethereum app in Speculos (tests/signing/
speculos.py), an emulated Ledger for the faults the real app cannot make, a local KMS,
throwaway keystores, alerts."""

from __future__ import annotations

import pytest
from eth_account.hdaccount import generate_mnemonic
from eth_account.types import Language

from defiagent.signing import base
from defiagent.signing.kms import KmsSigner
from defiagent.signing.ledger import LedgerSigner
from defiagent.signing.testing.ledger_emulator import EmulatedLedger
from defiagent.signing.testing.moto_kms import LocalKms
from tests.signing.helpers import FAST_RETRY, REGION
from tests.signing.speculos import (  # noqa: F401 - fixtures
    _module_approver,
    approver,
    fresh_speculos,
    speculos,
    speculos_ledger,
)


@pytest.fixture
def alerts():
    """Every alert raised while the test runs, as (message, context)."""
    seen: list[tuple[str, dict]] = []
    previous = base.set_alert_hook(lambda err, ctx: seen.append((err.message, dict(ctx))))
    yield seen
    base.set_alert_hook(previous)


# --- Ledger --------------------------------------------------------------------------


@pytest.fixture
def device() -> EmulatedLedger:
    """An emulated Ledger with a fresh seed, unlocked, Ethereum app open, user approving.
    For fault injection only: what the real app can do is tested against it in Speculos."""
    return EmulatedLedger(generate_mnemonic(12, Language.ENGLISH))


@pytest.fixture
def ledger(device) -> LedgerSigner:
    return LedgerSigner(dongle=device, timeout=2.0)


# --- AWS KMS -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_kms():
    """moto's KMS on 127.0.0.1 (OS-chosen port), patched to honour MessageType=DIGEST."""
    with LocalKms(REGION) as kms:
        yield kms


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials through the standard chain only: fake env values, no developer files."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def kms(local_kms, aws_env):
    local_kms.misbehave.__init__()  # every test starts with an honest server
    local_kms.sign_calls = 0
    yield local_kms
    local_kms.misbehave.__init__()


@pytest.fixture
def kms_key(kms) -> str:
    return kms.create_key()


@pytest.fixture
def kms_signer(kms, kms_key) -> KmsSigner:
    return KmsSigner(kms_key, REGION, endpoint_url=kms.endpoint_url, retry=FAST_RETRY)
