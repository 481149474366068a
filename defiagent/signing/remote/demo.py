"""`defiagent demo --signer remote`: the key in its own `defiagent signer serve` process.

The demo makes a throwaway keystore (password in memory, handed to the signer process
through its environment only), and, once the demo's allowlist is signed, writes a
signer.toml next to it and starts the signer as a separate process. The agent gets a
RemoteSigner: it holds no credential. After the ticks, the demo plays a compromised agent
and forges transactions straight onto the socket (past the agent's guard); each one must
be refused by the signer, with the guard's rule and reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomli_w
from eth_account import Account
from pydantic import BaseModel, ConfigDict

from defiagent.errors import InfraError, Refused
from defiagent.signing.base import SignedTransaction
from defiagent.signing.keystore import read_keystore_address, write_keystore
from defiagent.signing.remote.client import RemoteSigner, SignerRefused

PASSWORD_ENV = "DEFIAGENT_SIGNER_KEYSTORE_PASSWORD"  # noqa: S105 - a variable name
UNIT = 10**18


class ForgedRequest(BaseModel):
    """One transaction forged past the agent, and what the signer process said."""

    model_config = ConfigDict(frozen=True)

    attempt: str
    refused: bool
    rule: str = ""
    reason: str = ""


class DemoRemoteSigner:
    """The agent's signer for the demo: a RemoteSigner once `start` has run the process."""

    def __init__(self, workdir: Path, *, private_key: bytes | None = None) -> None:
        self.workdir = workdir
        self.key_path = workdir / "signer" / "signer-keystore.json"
        self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._password = secrets.token_urlsafe(24)  # in memory and the child's environment
        key = private_key or bytes(Account.create().key)  # the bench passes its own
        write_keystore(self.key_path, key, self._password, light=True)
        self._address = read_keystore_address(self.key_path)
        self.client: RemoteSigner | None = None
        self._run_dir = Path(tempfile.mkdtemp(prefix="defiagent-signer-"))  # short socket path
        self.socket = self._run_dir / "signer.sock"
        self.config: Path | None = None

    @property
    def table(self) -> dict[str, Any]:
        """The agent's `[signer]` table: the socket and the pinned address, no credential."""
        return {"backend": "remote", "socket": str(self.socket), "address": self._address}

    @property
    def address(self) -> str:
        return self._address

    def _remote(self) -> RemoteSigner:
        if self.client is None:
            raise InfraError("the demo's signer process has not been started")
        return self.client

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        return self._remote().sign_transaction(tx)

    def sign_message(self, message: bytes) -> bytes:
        return self._remote().sign_message(message)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        return self._remote().sign_typed_data(typed_data)

    @contextlib.contextmanager
    def start(
        self, *, rpc_url: str, chain_id: int, allowlist_dir: Path, market: Any
    ) -> Iterator[None]:
        """Write signer.toml and run `defiagent signer serve` until the demo ends."""
        run_dir = self._run_dir
        state = self.workdir / "signer" / "state"
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Its own copy of the signed allowlist: what the agent's folder becomes later is not
        # what the signer trusts (it verifies every signature again at start).
        own_allowlist = self.workdir / "signer" / "allowlist"
        shutil.copytree(allowlist_dir, own_allowlist, dirs_exist_ok=True)
        allowlist_dir = own_allowlist
        d = market.dex
        data = {
            "chain_id": chain_id,
            "rpc_url": rpc_url,
            "allowlist_dir": str(allowlist_dir),
            "state_dir": str(state),
            "socket": str(self.socket),
            "signer": {
                "backend": "keystore",
                "path": str(self.key_path),
                "password_env": PASSWORD_ENV,
            },
            # The signer's own limits, as strict as the agent's guard in this demo.
            "limits": {
                "per_tx_value_cap": {"max_value": 2_000},
                "window_value_cap": {"max_value": 50_000, "window_seconds": 86_400},
                "approvals": {"max_value": 2_000},
            },
            # Its own valuation, on the high side: DTKN trades at about 0.5 DUSD.
            "assets": [
                {"asset": "ETH", "decimals": 18, "price": 2_500.0},
                {"asset": d.weth, "decimals": 18, "price": 2_500.0},
                {"asset": d.token_a, "decimals": 18, "price": 1.0},
                {"asset": d.token_b, "decimals": 18, "price": 1.0},
            ],
        }
        self.config = self.workdir / "signer" / "signer.toml"
        self.config.write_text(tomli_w.dumps(data))
        env = dict(os.environ) | {PASSWORD_ENV: self._password}
        executable = Path(sys.executable).parent / "defiagent"
        command = (
            [str(executable)]
            if executable.exists()
            else [sys.executable, "-m", "defiagent.cli.app"]
        )
        log = (self.workdir / "signer" / "serve.log").open("w")
        proc = subprocess.Popen(
            [*command, "signer", "serve", "-c", str(self.config), "--json"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                proc.wait(10)
                log.flush()
                why = (self.workdir / "signer" / "serve.log").read_text().strip().splitlines()
                raise InfraError(
                    f"the signer process did not start: {why[-1] if why else 'no output'}"
                )
            ready = json.loads(line)
            if ready.get("address") != self._address:
                raise Refused(
                    f"the signer process serves {ready.get('address')}, not {self._address}"
                )
            self.client = RemoteSigner(self.socket, expected_address=self._address, timeout=30)
            yield
        finally:
            if self.client is not None:
                self.client.close()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
            with contextlib.suppress(OSError):
                self.socket.unlink(missing_ok=True)
                run_dir.rmdir()

    def forge(self, w3: Any, market: Any) -> list[ForgedRequest]:
        """Play a compromised agent: send transactions past the guard, straight to the socket."""
        from defiagent.guard.calldata import encode_call
        from defiagent.protocols.erc20 import functions as erc20
        from defiagent.protocols.uniswap_v2 import functions as v2fn

        d = market.dex
        outsider = Account.create().address
        nonce = w3.eth.get_transaction_count(self._address) + 1_000  # never mined
        head = w3.eth.get_block("latest")
        deadline = int(head["timestamp"]) + 600

        def tx(to: str | None, data: str, value: int = 0) -> dict[str, Any]:
            out: dict[str, Any] = {
                "type": 2,
                "chainId": d.chain_id,
                "nonce": nonce,
                "value": value,
                "data": data,
                "gas": 300_000,
                "maxFeePerGas": 5 * 10**9,
                "maxPriorityFeePerGas": 10**9,
                "accessList": [],
            }
            if to is not None:
                out["to"] = to
            return out

        swap_to_outsider = encode_call(
            v2fn.SWAP_EXACT_IN, [100 * UNIT, 1, [d.token_a, d.token_b], outsider, deadline]
        )
        attempts = [
            (
                "transfer 1,000 DUSD to an outsider",
                tx(d.token_a, encode_call("transfer(address,uint256)", [outsider, 1_000 * UNIT])),
            ),
            ("swap with the proceeds paid to an outsider", tx(d.router, swap_to_outsider)),
            (
                "unlimited approve of DUSD to the router",
                tx(d.token_a, encode_call(erc20.APPROVE, [d.router, 2**256 - 1])),
            ),
            (
                "approve DTKN to an outsider",
                tx(d.token_b, encode_call(erc20.APPROVE, [outsider, UNIT])),
            ),
            ("send 1 ETH to an outsider", tx(outsider, "0x", UNIT)),
        ]
        # The target's code changed under the signer: DUSD's code swapped on the local chain.
        original = w3.eth.get_code(d.token_a)
        out = [self._try(client_attempt, t) for client_attempt, t in attempts]
        w3.provider.make_request("anvil_setCode", [d.token_a, "0x6000"])
        try:
            out.append(
                self._try(
                    "approve DUSD after its code changed",
                    tx(d.token_a, encode_call(erc20.APPROVE, [d.router, UNIT])),
                )
            )
        finally:
            w3.provider.make_request("anvil_setCode", [d.token_a, original.to_0x_hex()])
        return out

    def _try(self, attempt: str, tx: dict[str, Any]) -> ForgedRequest:
        # A fresh connection, as another process would open one.
        forger = RemoteSigner(self.socket, timeout=10)
        try:
            forger.sign_transaction(tx)
        except SignerRefused as exc:
            return ForgedRequest(attempt=attempt, refused=True, rule=exc.rule, reason=exc.reason)
        except Refused as exc:
            return ForgedRequest(attempt=attempt, refused=True, rule="protocol", reason=exc.message)
        finally:
            forger.close()
        return ForgedRequest(attempt=attempt, refused=False)
