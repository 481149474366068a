"""An RPC URL that carries an API key never leaves the agent process.

The upstream here is a real anvil behind a tiny provider-like proxy that answers only
requests carrying a random SECRET (in the path and query, or as basic-auth userinfo), so
the URL really holds a credential. The fork (ForkManager, and `defiagent dry-run` through
`main`) must work through it, and SECRET must show up nowhere another process or a later
reader could find it: no process's command line or environment, no file under the test's
folders (anvil logs, audit log, journal, ...), no captured stdout/stderr, no log record,
no error message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tomli_w
from eth_account import Account
from web3 import Web3

from defiagent.agent import scopes
from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.agent.observe import codehash
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.anvil import Anvil
from defiagent.cli.app import main
from defiagent.errors import InfraError
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.signing.keystore import write_keystore
from defiagent.simulation import ForkManager, Simulator
from tests.simulation.helpers import approve_call

pytestmark = pytest.mark.slow

PASSWORD_ENV = "DEFIAGENT_TEST_KEYSTORE_PASSWORD"
RPC_ENV = "DEFIAGENT_RPC_URL"
BALANCE_OF = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "who", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


class AuthProxy:
    """An RPC provider in miniature: forwards to `target` only the requests that carry the
    key (in the path/query, or as the password of basic auth); 401 for everything else."""

    def __init__(self, target: str, secret: str) -> None:
        self.target = target
        self.secret = secret
        self.hits = 0
        self.refused = 0
        self._connections: set = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                proxy._connections.add(self.connection)

            def log_message(self, *args) -> None:  # the default would print the key
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                auth = self.headers.get("Authorization", "")
                basic = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
                if proxy.secret not in self.path and proxy.secret not in basic:
                    proxy.refused += 1
                    self._answer(401, b'{"error": "invalid API key"}')
                    return
                proxy.hits += 1
                headers = {"Content-Type": "application/json"}
                request = urllib.request.Request(proxy.target, data=body, headers=headers)  # noqa: S310
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    self._answer(200, response.read())

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # anvil hanging up is fine
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, style: str) -> str:
        if style == "userinfo":
            return f"http://apikey:{self.secret}@127.0.0.1:{self.port}"
        return f"http://127.0.0.1:{self.port}/v3/{self.secret}?apikey={self.secret}"

    def close(self) -> None:
        """Gone: no new connection is accepted and the kept-alive ones are cut."""
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Leaks:
    """Watches every process's command line (and the environment of those we may read)
    while it runs, then checks files, captured output and log records for the secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.found: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Leaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            self.scan_processes()
            if self._stop.wait(0.05):
                return

    def scan_processes(self) -> None:
        me = os.getpid()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            # Our own initial environment cannot hold the secret (the test sets it later).
            for name in ("cmdline",) if int(pid) == me else ("cmdline", "environ"):
                with contextlib.suppress(OSError):
                    data = Path(f"/proc/{pid}/{name}").read_bytes()
                    if self.secret in data:
                        command = Path(f"/proc/{pid}/cmdline").read_bytes()[:200]
                        self.found.add(f"/proc/{pid}/{name} ({command!r})")

    def scan_files(self, *roots: Path) -> None:
        for root in roots:
            for path in Path(root).rglob("*"):
                with contextlib.suppress(OSError):
                    if path.is_file() and self.secret in path.read_bytes():
                        self.found.add(str(path))

    def scan_text(self, what: str, text: str) -> None:
        if self.secret.decode() in text:
            self.found.add(what)


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def proxy(upstream, secret):
    p = AuthProxy(upstream.url, secret)
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _temp_under_tmp_path(tmp_path, monkeypatch):
    """Every mkdtemp (anvil's default log folder, the dry run's work folder) lands in
    tmp_path, so the file walk sees it."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


@pytest.mark.parametrize("style", ["path", "userinfo"])
def test_fork_through_a_keyed_url_leaks_the_key_nowhere(
    style, proxy, secret, up_w3, dex, agent, tmp_path, capfd, caplog
):
    url = proxy.url(style)
    with Leaks(secret) as leaks, ForkManager(url, log_dir=tmp_path / "fork") as fork:
        # The fork works: a plain read and a full simulation answer through the key.
        token = up_w3.eth.contract(address=dex.token_a, abi=BALANCE_OF)
        expected = token.functions.balanceOf(agent).call()
        data = token.functions.balanceOf(agent).build_transaction({"gas": 100_000})["data"]
        answer = fork.rpc.call("eth_call", {"to": dex.token_a, "data": data}, "latest")
        assert int(answer, 16) == expected
        outcome = Simulator(fork).simulate(approve_call(dex.token_a, dex.router, 5, agent))
        assert outcome.success, outcome.revert_reason
        # A reset to a new upstream block goes through the key too.
        up_w3.provider.make_request("evm_mine", [])
        assert fork.sync() == up_w3.eth.block_number
        assert int(fork.rpc.call("eth_blockNumber"), 16) == up_w3.eth.block_number
        leaks.scan_processes()
    assert proxy.hits > 0
    assert proxy.refused == 0
    out, err = capfd.readouterr()
    leaks.scan_text("stdout", out)
    leaks.scan_text("stderr", err)
    leaks.scan_text("log records", caplog.text)
    leaks.scan_files(tmp_path)
    assert list((tmp_path / "fork").glob("anvil-*.log"))  # the logs were written and read
    assert not leaks.found, sorted(leaks.found)


def test_errors_name_the_host_but_never_the_key(proxy, secret, tmp_path, caplog):
    url = proxy.url("path")
    fork = ForkManager(url, log_dir=tmp_path / "fork").start()
    try:
        proxy.close()  # the provider goes away
        with pytest.raises(InfraError) as info:
            fork.sync()
    finally:
        fork.stop()
    message = str(info.value)
    assert "did not answer" in message
    assert f"127.0.0.1:{proxy.port}" in message  # which RPC, cut to its host
    assert secret not in message
    # A fork that cannot start at all says so without the key either.
    with pytest.raises(InfraError) as info:
        ForkManager(url, log_dir=tmp_path / "fork2").start()
    assert secret not in str(info.value)
    assert secret not in caplog.text


# ---- `defiagent dry-run` with the key in the environment, not on argv ---------------------

# Written from docs/strategy-protocol.md: ready, then no intents on every tick.
IDLE = """
import json, sys
sys.stdin.readline()
print(json.dumps({"type": "ready", "protocol": 1, "description": "idle"}), flush=True)
for line in sys.stdin:
    message = json.loads(line)
    if message["type"] == "stop":
        break
    print(json.dumps({"type": "intents", "tick": message["tick"], "intents": []}), flush=True)
"""


@pytest.fixture(scope="module")
def mainnet(tmp_path_factory):
    # Blocks every second, as a real chain makes them (the TWAP reference needs time to pass).
    with Anvil(log_dir=tmp_path_factory.mktemp("mainnet"), block_time=1) as node:
        yield node


@pytest.fixture(scope="module")
def agent_home(mainnet, tmp_path_factory):
    """A reduced tests/agent/test_cli_run.py setup: the market, a funded keystore, an idle
    pinned strategy, and an agent.toml without rpc_url (it comes from DEFIAGENT_RPC_URL).
    The allowlist is built in memory (the vetting workflow is not what is tested here)."""
    w3 = Web3(Web3.HTTPProvider(mainnet.url))
    market = deploy_market(w3)
    home = tmp_path_factory.mktemp("agent-home")
    (home / "contracts_allowlist").mkdir()
    password = secrets.token_urlsafe(16)
    address = write_keystore(
        home / "agent-key.json", bytes(Account.create().key), password, light=True
    )
    fund(w3, market, address, eth=10 * UNIT, dusd=1_000 * UNIT)
    operator = write_keystore(
        home / "operator-key.json", bytes(Account.create().key), password, light=True
    )
    (home / "strategies").mkdir()
    (home / "strategies" / "idle.py").write_text(IDLE)
    d = market.dex
    config = {
        "chain_id": d.chain_id,
        "allowlist_dir": "contracts_allowlist",
        "state_dir": "state",
        "tick_seconds": 1,
        "protocols": {"router": d.router, "weth": d.weth, "factory": d.factory},
        "market": {"numeraire": d.token_a, "twap_min_window_seconds": 1},
        "strategy": {
            "name": "idle",
            "command": [sys.executable, "strategies/idle.py"],
            "params": {"base": d.token_b, "quote": d.token_a},
        },
        "signer": {"backend": "keystore", "path": "agent-key.json", "password_env": PASSWORD_ENV},
        "pin_signers": [operator],
    }
    (home / "agent.toml").write_text(tomli_w.dumps(config))

    def entry(address, name, role, functions):
        code = w3.eth.get_code(address).to_0x_hex()
        return AllowlistEntry(
            chain_id=d.chain_id,
            address=address,
            name=name,
            role=role,
            codehash=codehash(code),
            functions=functions,
        )

    entries = [
        entry(d.router, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        entry(d.factory, "UniswapV2Factory", Role.FACTORY, []),
        entry(d.weth, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(d.token_a, "Demo USD (DUSD)", Role.TOKEN, scopes.token_functions()),
        entry(d.token_b, "Demo Token (DTKN)", Role.TOKEN, scopes.token_functions()),
        entry(d.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
        entry(market.weth_pair, "UniswapV2Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
    ]
    allowlist = ActiveAllowlist(chain_id=d.chain_id, entries={e.address: e for e in entries})
    return {"home": home, "password": password, "allowlist": allowlist}


@pytest.mark.parametrize("given", ["env-reference", "plain-url"])
def test_dry_run_with_a_keyed_rpc_leaks_the_key_nowhere(
    given, agent_home, mainnet, secret, tmp_path, monkeypatch, capfd, caplog
):
    home = agent_home["home"]
    proxy = AuthProxy(mainnet.url, secret)
    try:
        url = proxy.url("path")
        monkeypatch.setenv(RPC_ENV, url)
        monkeypatch.setenv(PASSWORD_ENV, agent_home["password"])
        monkeypatch.setattr(
            "defiagent.cli.run.load_allowlist", lambda root, chain_id: agent_home["allowlist"]
        )
        pin = ["strategy", "pin", "-c", str(home / "agent.toml")]
        pin += ["--key", str(home / "operator-key.json"), "--password-env", PASSWORD_ENV]
        assert main(pin) == 0
        capfd.readouterr()
        fork_url = f"env:{RPC_ENV}" if given == "env-reference" else url
        argv = ["dry-run", "--fork-url", fork_url, "--config", str(home / "agent.toml")]
        with Leaks(secret) as leaks:
            code = main([*argv, "--ticks", "2", "--json"])
            out, err = capfd.readouterr()
            leaks.scan_processes()
        assert code == 0, (out, err)
    finally:
        proxy.close()
    doc = json.loads(out)
    assert doc["mode"] == "dry-run"
    # The fork worked: both ticks observed the market through the keyed upstream.
    assert [t.get("skipped") for t in doc["ticks"]] == [None, None], doc["ticks"]
    assert proxy.hits > 0
    assert proxy.refused == 0
    audit = Path(doc["audit_log"])
    assert verify_audit_log(audit).ok
    assert audit.is_relative_to(tmp_path)  # so the file walk below reads it
    leaks.scan_text("stdout", out)
    leaks.scan_text("stderr", err)
    leaks.scan_text("log records", caplog.text)
    leaks.scan_files(tmp_path, home)
    assert list(tmp_path.rglob("anvil-*.log"))  # the dry run's fork logs are in the walk
    assert not leaks.found, sorted(leaks.found)
    if given == "plain-url":  # one line: the key is visible in `ps`, use env:NAME
        warning = [line for line in err.splitlines() if "env:NAME" in line]
        assert len(warning) == 1, err
        assert "ps" in warning[0]
    else:
        assert "env:NAME" not in err
