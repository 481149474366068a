"""Malformed input of every kind is one sentence naming it, with the right exit code.

Table-driven: each case runs `defiagent.cli.app.main([...])` in process and checks the
exit code (2 for a bad argument, option or config file, 3 for a service that answers
nonsense, 1 for damaged state the agent refuses to start on), that stderr is one sentence
(one line, no traceback, never "internal") and that it names what was wrong.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from defiagent.cli.app import main
from defiagent.signing.keystore import write_keystore
from tests.allowlist.support import CONTRACTS, Keys, make_root

EXAMPLE = Path(__file__).resolve().parents[2] / "agent.example.toml"
GOOD = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # the EIP-55 example, checksum right
BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # one letter's case flipped
FULLWIDTH = "\uff10x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # a fullwidth zero for the 0
CLOSED = "http://127.0.0.1:9"  # nothing listens: a case that reaches the network fails

# What an odd JSON-RPC server answers, by path.
ODD_ANSWERS: dict[str, tuple[str, bytes]] = {
    "/list": ("application/json", b"[]"),
    "/weird": ("application/json", b'{"jsonrpc": "2.0", "id": 1, "result": {"weird": 1}}'),
    "/not-hex": ("application/json", b'{"jsonrpc": "2.0", "id": 1, "result": "0xzz"}'),
    "/error-text": ("application/json", b'{"jsonrpc": "2.0", "id": 1, "error": "boom"}'),
    "/html": ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "/binary": ("application/json", b"\xff\xfe\x00garbage\x80\x81"),
}

# What an odd Sourcify server answers: a "verified contract" whose sources are not sources.
SOURCIFY_ANSWERS: dict[str, tuple[str, bytes]] = {
    "/sourcify-shape": ("application/json", b'{"match": "exact_match", "sources": [1, 2]}'),
}


class _OddHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # By the first path segment, so a base URL (Sourcify's) can pick its answer too.
        first = "/" + self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        kind, body = {**ODD_ANSWERS, **SOURCIFY_ANSWERS}.get(first, ("text/plain", b"?"))
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def odd_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OddHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class World:
    tmp: Path
    odd: str  # the odd server's base URL
    root: Path  # an allowlist root with reviewers.toml and policy.toml
    keystore: Path

    def config(self, *replace: tuple[str, str], append: str = "", name: str = "agent.toml") -> str:
        """The example config with a state dir and allowlist here, edited by `replace`."""
        text = EXAMPLE.read_text()
        text = text.replace(
            'rpc_url = "https://ethereum-rpc.publicnode.com"', f'rpc_url = "{CLOSED}"', 1
        )
        text = text.replace('state_dir = ".defiagent"', 'state_dir = "state"', 1)
        for old, new in replace:
            assert old in text, old
            text = text.replace(old, new, 1)
        path = self.tmp / name
        path.write_text(text + append)
        return str(path)

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def file(self, name: str, data: bytes = b"x") -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def folder(self, name: str) -> str:
        path = self.tmp / name
        path.mkdir(exist_ok=True)
        return str(path)


@pytest.fixture
def world(tmp_path, odd_server) -> World:
    keystore = tmp_path / "key.json"
    write_keystore(keystore, bytes(Account.create().key), "pw", light=True)
    root = make_root(tmp_path / "contracts_allowlist", Keys())
    return World(tmp_path, odd_server, root, keystore)


@dataclass
class Case:
    id: str
    argv: Callable[[World], list[str]]
    code: int
    names: str  # the message must contain this (the input it is about)
    setup: Callable[[World], object] | None = None


def _propose(w: World, address: str = GOOD, *extra: str, rpc: str = CLOSED) -> list[str]:
    return [
        "allowlist",
        "propose",
        address,
        "--rpc-url",
        rpc,
        "--name",
        "x",
        "--allowlist",
        str(w.root),
        *extra,
    ]


def _al(w: World) -> list[str]:
    return ["--allowlist", str(w.root)]


def _signer_address(value: str) -> tuple[str, str]:
    """An edit pinning the [signer] table's address (appending would land in the last table)."""
    return ('# address = "0x..."', f'address = "{value}"  #')


def _run(path: str) -> list[str]:
    return ["run", "--config", path, "--ticks", "1"]


SOL = str(CONTRACTS / "vulnerable" / "TxOriginAuth.sol")

ADDRESS_CASES = [
    Case("vet-short-hex", lambda w: ["vet", "0x123"], 2, "0x123"),
    Case("vet-ens", lambda w: ["vet", "vitalik.eth"], 2, "vitalik.eth"),
    Case("vet-fullwidth", lambda w: ["vet", FULLWIDTH], 2, FULLWIDTH),
    Case("vet-checksum", lambda w: ["vet", BAD_CHECKSUM, "--rpc-url", CLOSED], 2, "checksum"),
    Case("show-short-hex", lambda w: ["allowlist", "show", "0x123", *_al(w)], 2, "0x123"),
    Case("show-ens", lambda w: ["allowlist", "show", "vitalik.eth", *_al(w)], 2, "vitalik.eth"),
    Case("show-fullwidth", lambda w: ["allowlist", "show", FULLWIDTH, *_al(w)], 2, FULLWIDTH),
    Case("show-checksum", lambda w: ["allowlist", "show", BAD_CHECKSUM, *_al(w)], 2, "checksum"),
    Case(
        "revoke-checksum",
        lambda w: ["allowlist", "revoke", BAD_CHECKSUM, "--reason", "r", *_al(w)],
        2,
        "checksum",
    ),
    Case(
        "approve-short-hex",
        lambda w: ["allowlist", "approve", "0x123", "--key", str(w.keystore), *_al(w)],
        2,
        "0x123",
    ),
    Case(
        "triage-checksum",
        lambda w: [
            "allowlist",
            "triage",
            BAD_CHECKSUM,
            "abc",
            "--reason",
            "a reason long enough",
            "--key",
            str(w.keystore),
            *_al(w),
        ],
        2,
        "checksum",
    ),
    Case(
        "attach-audit-ens",
        lambda w: ["allowlist", "attach-audit", "vitalik.eth", w.file("a.toml"), *_al(w)],
        2,
        "vitalik.eth",
    ),
    Case("propose-short-hex", lambda w: _propose(w, "0x123"), 2, "0x123"),
    Case("propose-ens", lambda w: _propose(w, "vitalik.eth"), 2, "vitalik.eth"),
    Case("propose-fullwidth", lambda w: _propose(w, FULLWIDTH), 2, FULLWIDTH),
    Case("propose-checksum", lambda w: _propose(w, BAD_CHECKSUM), 2, "checksum"),
    Case("callee-short-hex", lambda w: _propose(w, GOOD, "--callee", "0x123"), 2, "--callee"),
    Case("callee-checksum", lambda w: _propose(w, GOOD, "--callee", BAD_CHECKSUM), 2, "checksum"),
    Case("callee-words", lambda w: _propose(w, GOOD, "--callee", "the router"), 2, "--callee"),
    Case(
        "probe-pool-checksum",
        lambda w: _propose(
            w, GOOD, "--role", "token", "--probe-pool", BAD_CHECKSUM, "--probe-router", GOOD
        ),
        2,
        "--probe-pool",
    ),
    Case(
        "signer-address-checksum",
        lambda w: ["signer", "address", "-c", w.config(_signer_address(BAD_CHECKSUM))],
        2,
        "checksum",
    ),
    Case(
        "signer-address-ens",
        lambda w: ["signer", "address", "-c", w.config(_signer_address("vitalik.eth"))],
        2,
        "vitalik.eth",
    ),
    Case(
        "config-router-checksum",
        lambda w: _run(
            w.config(
                (
                    'router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"',
                    'router = "0x7A250d5630B4cF539739dF2C5dAcb4c659F2488D"',
                )
            )
        ),
        2,
        "protocols.router",
    ),
    Case(
        "config-weth-fullwidth",
        lambda w: _run(
            w.config(
                (
                    'weth = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"',
                    'weth = "\uff10xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"',
                )
            )
        ),
        2,
        "protocols.weth",
    ),
    Case(
        "config-pin-signer-ens",
        lambda w: _run(w.config(("pin_signers = []", 'pin_signers = ["vitalik.eth"]'))),
        2,
        "pin_signers",
    ),
]

INPUT_CASES = [
    Case(
        "config-random-bytes",
        lambda w: _run(w.file("rand.toml", bytes(range(256)))),
        2,
        "rand.toml",
    ),
    Case(
        "signer-config-random-bytes",
        lambda w: ["signer", "address", "-c", w.file("rand.toml", bytes(range(256)))],
        2,
        "rand.toml",
    ),
    Case(
        "rpc-url-not-a-url",
        lambda w: _run(w.config((f'rpc_url = "{CLOSED}"', 'rpc_url = "not a url"'))),
        2,
        "rpc_url",
    ),
    Case(
        "rpc-url-ftp",
        lambda w: _run(w.config((f'rpc_url = "{CLOSED}"', 'rpc_url = "ftp://example.org/"'))),
        2,
        "rpc_url",
    ),
    Case(
        "rpc-url-no-host",
        lambda w: _run(w.config((f'rpc_url = "{CLOSED}"', 'rpc_url = "http://"'))),
        2,
        "rpc_url",
    ),
    Case("config-is-a-folder", lambda w: _run(w.folder("conf")), 2, "conf"),
    Case(
        "signer-config-is-a-folder",
        lambda w: ["signer", "check", "-c", w.folder("conf")],
        2,
        "conf",
    ),
    Case(
        "kill-switch-config-is-a-folder",
        lambda w: ["kill-switch", "status", "-c", w.folder("conf")],
        2,
        "conf",
    ),
    Case(
        "strategy-config-is-a-folder",
        lambda w: ["strategy", "verify", "-c", w.folder("conf")],
        2,
        "conf",
    ),
    Case("keystore-is-a-folder", lambda w: ["keystore", "address", w.folder("keys")], 2, "keys"),
    Case(
        "approve-key-is-a-folder",
        lambda w: [
            "allowlist",
            "approve",
            w.file("entry.toml"),
            "--key",
            w.folder("keys"),
            "--password-env",
            "PATH",
            *_al(w),
        ],
        2,
        "keys",
    ),
    Case(
        "pin-key-is-a-folder",
        lambda w: [
            "strategy",
            "pin",
            "-c",
            w.config(),
            "--key",
            w.folder("keys"),
            "--password-env",
            "PATH",
        ],
        2,
        "keys",
    ),
    Case(
        "state-dir-is-a-file",
        lambda w: _run(w.config(('state_dir = "state"', 'state_dir = "afile"'))),
        2,
        "afile",
        setup=lambda w: w.file("afile"),
    ),
    Case(
        "kill-switch-state-dir-is-a-file",
        lambda w: ["kill-switch", "status", "--state-dir", w.file("afile")],
        2,
        "afile",
    ),
    Case(
        "kill-switch-on-state-dir-is-a-file",
        lambda w: ["kill-switch", "on", "--state-dir", w.file("afile")],
        2,
        "afile",
    ),
    Case(
        "operator-state-dir-is-a-file",
        lambda w: ["operator", "status", "--state-dir", w.file("afile")],
        2,
        "afile",
    ),
    Case(
        "report-state-dir-is-a-file",
        lambda w: ["report", "--state-dir", w.file("afile")],
        2,
        "afile",
    ),
    Case(
        "max-approve-words",
        lambda w: _propose(w, GOOD, "--max-approve", "lots"),
        2,
        "--max-approve",
    ),
    Case(
        "max-approve-negative", lambda w: _propose(w, GOOD, "--max-approve=-5"), 2, "--max-approve"
    ),
    Case(
        "max-approve-over-uint256",
        lambda w: _propose(w, GOOD, "--max-approve", str(2**256)),
        2,
        "--max-approve",
    ),
    Case(
        "solc-version-unknown",
        lambda w: ["vet", SOL, "--solc-version", "9.9.9"],
        2,
        "--solc-version",
    ),
    Case(
        "solc-version-words",
        lambda w: ["vet", SOL, "--solc-version", "latest please"],
        2,
        "--solc-version",
    ),
    Case(
        "evm-version-unknown", lambda w: ["vet", SOL, "--evm-version", "moon"], 2, "--evm-version"
    ),
    Case(
        "propose-solc-version-unknown",
        lambda w: _propose(w, GOOD, "--solc-version", "0.99.1"),
        2,
        "--solc-version",
    ),
    Case(
        "propose-evm-version-unknown",
        lambda w: _propose(w, GOOD, "--evm-version", "moon"),
        2,
        "--evm-version",
    ),
]


def _state_file(name: str, data: bytes) -> Callable[[World], None]:
    """A private state dir (as the agent keeps it) holding `name` with `data`."""

    def setup(w: World) -> None:
        w.state.mkdir(mode=0o700, exist_ok=True)
        os.chmod(w.state, 0o700)
        path = w.state / name
        path.write_bytes(data)
        os.chmod(path, 0o600)

    return setup


def _damaged_journal(w: World) -> None:
    """A journal that opens but fails PRAGMA integrity_check: two indexes' pages swapped."""
    from defiagent.execution.journal import Journal

    _state_file("x", b"")(w)
    path = w.state / "journal.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    for i in range(20):
        db.execute(
            "INSERT INTO entries (key, intent_id, sender, chain_id, call_json, state, "
            "created_at, updated_at) VALUES (?, ?, 's', 1, '{}', 'confirmed', 0, 0)",
            (f"k{i}", f"i{i}"),
        )
    db.commit()
    roots = dict(
        db.execute(
            "SELECT name, rootpage FROM sqlite_master "
            "WHERE name IN ('entries_state', 'entries_intent')"
        )
    )
    db.execute("PRAGMA writable_schema=ON")
    for name, other in (("entries_state", "entries_intent"), ("entries_intent", "entries_state")):
        db.execute("UPDATE sqlite_master SET rootpage = ? WHERE name = ?", (roots[other], name))
    db.commit()
    db.close()
    (w.state / "x").unlink()


STATE_CASES = [
    Case(
        "spend-garbage-line",
        lambda w: _run(w.config()),
        1,
        "line 2 of",
        setup=_state_file("spend.jsonl", b"[1700000000.0, 5.0]\nnot json\n[1700000001.0, 1.0]\n"),
    ),
    Case(
        "spend-torn-last-line",
        lambda w: _run(w.config()),
        1,
        "spend.jsonl",
        setup=_state_file("spend.jsonl", b"[1700000000.0, 5.0]\n[17000"),
    ),
    Case(
        "spend-not-utf8",
        lambda w: _run(w.config()),
        1,
        "spend.jsonl",
        setup=_state_file("spend.jsonl", b"\xff\xfe\x00\n"),
    ),
    Case(
        "portfolio-garbage-line",
        lambda w: _run(w.config()),
        1,
        "portfolio.jsonl",
        setup=_state_file("portfolio.jsonl", b'[1700000000.0, "lots"]\n'),
    ),
    Case(
        "trades-garbage-line",
        lambda w: _run(w.config()),
        1,
        "trades.jsonl",
        setup=_state_file("trades.jsonl", b'{"garbage": true}\n'),
    ),
    Case(
        "journal-empty",
        lambda w: _run(w.config()),
        1,
        "journal.sqlite",
        setup=_state_file("journal.sqlite", b""),
    ),
    Case(
        "journal-not-a-database",
        lambda w: _run(w.config()),
        1,
        "journal.sqlite",
        setup=_state_file("journal.sqlite", b"not a database " * 300),
    ),
    Case("journal-integrity", lambda w: _run(w.config()), 1, "integrity", setup=_damaged_journal),
]

ROOT_CASES = [
    Case(
        "propose-allowlist-missing",
        lambda w: [*_propose(w)[:-1], str(w.tmp / "contracts_alowlist")],
        2,
        "contracts_alowlist does not exist",
    ),
    Case(
        "propose-allowlist-without-reviewers",
        lambda w: [*_propose(w)[:-1], w.folder("elsewhere")],
        2,
        "reviewers.toml",
    ),
    Case(
        "list-allowlist-missing",
        lambda w: ["allowlist", "list", "--allowlist", str(w.tmp / "nope")],
        2,
        "nope does not exist",
    ),
    Case(
        "verify-allowlist-missing",
        lambda w: ["allowlist", "verify", "--allowlist", str(w.tmp / "nope")],
        2,
        "nope does not exist",
    ),
    Case(
        "vet-allowlist-missing",
        lambda w: ["vet", SOL, "--allowlist", str(w.tmp / "nope")],
        2,
        "nope does not exist",
    ),
    Case(
        "vet-rpc-url-not-a-url",
        lambda w: ["vet", GOOD, "--rpc-url", "not a url", *_al(w)],
        2,
        "RPC URL",
    ),
    Case(
        "verify-rpc-url-ftp",
        lambda w: ["allowlist", "verify", "--rpc-url", "ftp://example.org", *_al(w)],
        2,
        "RPC URL",
    ),
    Case(
        "signer-table-missing",
        lambda w: ["signer", "address", "-c", w.file("nosigner.toml", b'rpc_url = "x"\n')],
        2,
        "has no [signer] table",  # the brackets survive the error printer
    ),
    Case(
        "long-path-one-line",
        lambda w: _run(w.folder("a-folder-with-a-rather-long-name-" + "x" * 150)),
        2,
        "x" * 150 + " is a folder",  # piped: never wrapped, whatever the width
    ),
]

ODD_RPC_CASES = (
    [
        Case(
            f"run-rpc-{name.strip('/')}",
            (
                lambda n: (
                    lambda w: _run(w.config((f'rpc_url = "{CLOSED}"', f'rpc_url = "{w.odd}{n}"')))
                )
            )(name),
            3,
            "RPC",
        )
        for name in ODD_ANSWERS
    ]
    + [
        Case(
            f"vet-rpc-{name.strip('/')}",
            (lambda n: lambda w: ["vet", GOOD, "--rpc-url", w.odd + n, *_al(w)])(name),
            3,
            "RPC",
        )
        for name in ("/weird", "/not-hex", "/binary", "/error-text")
    ]
    + [
        Case(
            "verify-rpc-weird",
            lambda w: ["allowlist", "verify", "--rpc-url", w.odd + "/weird", *_al(w)],
            3,
            "RPC",
        ),
        Case("propose-rpc-list", lambda w: _propose(w, GOOD, rpc=w.odd + "/list"), 3, "RPC"),
        Case("propose-rpc-html", lambda w: _propose(w, GOOD, rpc=w.odd + "/html"), 3, "RPC"),
    ]
)


def _sentence(err: str) -> str:
    """The one line on stderr, checked to be one sentence without a traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert not line.startswith("internal"), line
    assert "internal" not in line.split(":", 1)[0]
    # One sentence: no full stop followed by a new capitalised sentence.
    assert not re.search(r"[.!?]\s+[A-Z][a-z]", line), line
    return line


ALL_CASES = ADDRESS_CASES + INPUT_CASES + ODD_RPC_CASES + STATE_CASES + ROOT_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_bad_input_is_one_sentence_with_its_exit_code(case, world, capsys, monkeypatch):
    monkeypatch.delenv("DEFIAGENT_DEBUG", raising=False)
    if case.setup:
        case.setup(world)
    argv = case.argv(world)
    code = main(argv)
    captured = capsys.readouterr()
    line = _sentence(captured.err)
    assert code == case.code, line
    assert case.names in line, line
    # The same with --json: the error document on stdout, the same exit code.
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == case.code
    assert json.loads(captured.out)["error"]["exit_code"] == case.code


# -- --debug: before or after the command name, the same exit code, plus the traceback ---------


@pytest.mark.parametrize(
    "case",
    [c for c in ALL_CASES if c.id in {"config-random-bytes", "vet-short-hex", "journal-empty"}],
    ids=lambda c: c.id,
)
def test_debug_before_or_after_the_command_adds_the_traceback_only(case, world, capsys):
    if case.setup:
        case.setup(world)
    argv = case.argv(world)
    plain_code = main(argv)
    plain_err = capsys.readouterr().err
    for debug_argv in (["--debug", *argv], [argv[0], "--debug", *argv[1:]], [*argv, "--debug"]):
        code = main(debug_argv)
        err = capsys.readouterr().err
        assert code == plain_code == case.code, err
        assert "Traceback" in err
        assert err.strip().splitlines()[-1] == plain_err.strip()  # the same sentence, last


def test_a_usage_error_keeps_exit_2_under_debug(capsys):
    assert main(["vet", "--no-such-option"]) == 2
    assert main(["vet", "--debug", "--no-such-option"]) == 2
    assert "--no-such-option" in capsys.readouterr().err


# -- nothing silent --------------------------------------------------------------------------


def test_a_mistyped_allowlist_folder_is_refused_not_created(world, capsys):
    typo = world.tmp / "contracts_alowlist"
    assert main([*_propose(world)[:-1], str(typo)]) == 2
    assert "contracts_alowlist does not exist" in capsys.readouterr().err
    assert not typo.exists()
    assert main(["allowlist", "list", "--allowlist", str(typo)]) == 2
    assert not typo.exists()


# -- output: not wrapped when piped, brackets kept, rules only with --verbose ------------------


def test_piped_output_never_folds_a_path(world, capsys):
    long_root = make_root(world.tmp / ("an-allowlist-" + "y" * 160), Keys())
    assert main(["allowlist", "list", "--allowlist", str(long_root)]) == 0
    out = capsys.readouterr().out
    assert any(str(long_root) in line for line in out.splitlines()), out
    state = world.folder("state-" + "z" * 160)
    assert main(["kill-switch", "status", "--state-dir", state]) == 0
    out = capsys.readouterr().out
    assert any(f"{state}/kill-switch" in line for line in out.splitlines()), out


def test_run_prints_the_rules_only_with_verbose_and_warnings_always(capsys):
    from types import SimpleNamespace

    from defiagent.cli.run import _loop

    runtime = SimpleNamespace(
        warnings=["strategy dev runs WITHOUT a sandbox [sandbox = none]"],
        explanations=["[mean-reversion] MaxDailyLoss: pause all trading after 2% loss in 24h"],
        agent=SimpleNamespace(warm_up=lambda: None),
    )
    _loop(runtime, ticks=0, as_json=False, between=lambda n: None)
    err = capsys.readouterr().err
    assert "WITHOUT a sandbox [sandbox = none]" in err  # warnings always, brackets kept
    assert "MaxDailyLoss" not in err
    _loop(runtime, ticks=0, as_json=False, between=lambda n: None, verbose=True)
    err = capsys.readouterr().err
    assert "[mean-reversion] MaxDailyLoss: pause all trading after 2% loss in 24h" in err
    _loop(runtime, ticks=0, as_json=True, between=lambda n: None, verbose=True)
    assert "MaxDailyLoss" not in capsys.readouterr().err  # --json: stderr stays quiet
    for command in (["run"], ["dry-run", "--fork-url", CLOSED]):  # the option exists on both
        assert main([*command, "--verbose", "--config", str(EXAMPLE.parent / "nope.toml")]) == 2
        assert "does not exist" in capsys.readouterr().err


# -- propose: FAIL is exit 1, with the finding ids triage takes ---------------------------------


@pytest.mark.slow
def test_a_failing_proposal_exits_1_and_names_the_findings_to_triage(
    anvil, tmp_path, capsys, monkeypatch
):
    from web3 import Web3

    from tests.allowlist.support import compiled, contract, deploy

    keys = Keys()
    root = make_root(tmp_path / "contracts_allowlist", keys)
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    bank = deploy(w3, contract(compiled("vulnerable/Reentrancy.sol"), "ReentrantBank"))
    argv = [
        "allowlist",
        "propose",
        bank.address,
        "--rpc-url",
        anvil.url,
        "--name",
        "Reentrant bank",
        "--sources",
        str(CONTRACTS / "vulnerable" / "Reentrancy.sol"),
        "--allowlist",
        str(root),
    ]
    assert main([*argv, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["checks_pass"] is False
    assert doc["untriaged_findings"]
    assert Path(doc["entry"]).is_file()  # written all the same: the review goes on

    assert main(argv) == 1
    out = capsys.readouterr().out
    shown = re.findall(r"\[id ([0-9a-f]{12})\]", out)  # the reason keeps its brackets
    assert shown, out
    assert {f[:12] for f in doc["untriaged_findings"]} <= set(shown)
    assert f"defiagent allowlist triage {bank.address} {shown[0]} --reason" in out

    # The id shown is the one `allowlist triage` takes.
    key = tmp_path / "reviewer.json"
    write_keystore(key, bytes(keys.reviewers[0].key), "a password", light=True)
    monkeypatch.setenv("DEFIAGENT_TEST_REVIEWER_PASSWORD", "a password")
    triage = [
        "allowlist",
        "triage",
        bank.address,
        shown[0],
        "--reason",
        "a test fixture: the reentrancy is what it is for",
        "--key",
        str(key),
        "--password-env",
        "DEFIAGENT_TEST_REVIEWER_PASSWORD",
        "--allowlist",
        str(root),
    ]
    assert main(triage) == 0, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["/binary", "/html", "/sourcify-shape"])
def test_a_sourcify_server_answering_nonsense_is_one_sentence_exit_3(
    answer, anvil, odd_server, tmp_path, capsys, monkeypatch
):
    from web3 import Web3

    from tests.allowlist.support import compiled, contract, deploy

    monkeypatch.setenv("DEFIAGENT_CACHE_DIR", str(tmp_path / "cache"))  # no earlier answer
    root = make_root(tmp_path / "contracts_allowlist", Keys())
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    bank = deploy(w3, contract(compiled("vulnerable/Reentrancy.sol"), "ReentrantBank"))
    argv = ["vet", bank.address, "--rpc-url", anvil.url, "--sourcify-url", odd_server + answer]
    assert main([*argv, "--allowlist", str(root)]) == 3
    line = _sentence(capsys.readouterr().err)
    assert "Sourcify" in line
