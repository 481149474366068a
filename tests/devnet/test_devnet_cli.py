"""`defiagent devnet up|status|down` as a new user runs them: a devnet in a fresh folder,
`defiagent dry-run` against it from its own agent.toml, the keys private, the traders
moving the pools, refusals of a second `up`, a busy port and a file for --out, and a
`down` that stops everything, is idempotent, and never signals a process it did not start.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from web3 import Web3

from defiagent.cli.app import main
from defiagent.devnet import processes
from defiagent.devnet.keys import PASSWORD_ENV, ROLES
from defiagent.devnet.state import DevnetState, load, save

# The vetting group shares this worker's Slither cache with the other tests that review
# the same Uniswap V2 contracts, so `up` does not pay for Slither twice in one run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]


def _json(argv: list[str]) -> tuple[int, dict]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([*argv, "--json"])
    return code, json.loads(buffer.getvalue())


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    out = tmp_path_factory.mktemp("devnet-home") / "devnet"
    code, result = _json(["devnet", "up", "--out", str(out), "--port", "0", "--trade-seconds", "1"])
    assert code == 0, result
    try:
        yield out, result
    finally:
        state = load(out)
        main(["devnet", "down", "--out", str(out)])
        if state is not None:  # whatever the tests did, leave no process behind
            for rec in (state.anvil, state.traders):
                if rec is not None:
                    processes.stop(rec)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_writes_a_ready_folder_with_private_keys(devnet):
    out, result = devnet
    assert result["ok"]
    assert result["rpc_url"].startswith("http://127.0.0.1:")
    assert {"UniswapV2Router02", "WETH9", "UniswapV2Pair DUSD/DTKN"} <= set(result["contracts"])
    keys = out / "keys"
    assert _mode(keys) == 0o700
    for role in ROLES:  # agent, operator, both reviewers, auditor
        assert _mode(keys / f"{role}.json") == 0o600
    assert _mode(keys / "password") == 0o600
    assert _mode(out / "devnet.json") == 0o600
    password = (keys / "password").read_text().strip()
    assert len(password) >= 24
    for name in ("agent.toml", "devnet.json", "strategy-pins.json"):
        assert password not in (out / name).read_text()
    assert f'password_env = "{PASSWORD_ENV}"' in (out / "agent.toml").read_text()
    # The allowlist's reviewers are the keystores written beside it, so a user can approve
    # more entries with them.
    reviewers = (out / "contracts_allowlist" / "reviewers.toml").read_text()
    for role in ("reviewer-1", "reviewer-2"):
        assert result["accounts"][role] in reviewers
    assert any("dry-run" in c for c in result["commands"])


def test_every_registered_protocol_is_deployed_and_allowlisted_or_said_to_be_left_out(devnet):
    """Through the registry: each protocol that deployed something has all its contracts
    in the signed allowlist and its settings in agent.toml, or `up` said why not."""
    import tomllib

    from defiagent.protocols import registry

    out, result = devnet
    state = load(out)
    assert state is not None
    config = tomllib.loads((out / "agent.toml").read_text())
    allowlisted = set(result["contracts"].values())
    assert {"erc20", "weth", "uniswap-v2"} <= set(state.deployments)
    assert not {"erc20", "weth", "uniswap-v2"} & set(result["left_out"])
    for name, deployment in state.deployments.items():
        adapter = registry.by_name(name)
        assert adapter is not None
        addresses = {c["address"] for c in deployment["contracts"]}
        if name in result["left_out"]:
            assert not addresses & allowlisted
            assert name not in config["protocols"]
            continue
        assert addresses <= allowlisted, name
        if deployment["settings"] and adapter.Settings is not None:
            # agent.toml may add tuning (a V3 TWAP window its young pools can answer).
            assert deployment["settings"].items() <= config["protocols"][name].items()
        elif deployment["settings"]:
            assert deployment["settings"].items() <= config["protocols"].items()


def test_traders_move_the_pool_in_the_background(devnet):
    out, result = devnet
    w3 = Web3(Web3.HTTPProvider(result["rpc_url"]))
    before = w3.eth.block_number
    deadline = time.monotonic() + 10
    while w3.eth.block_number < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert w3.eth.block_number >= before + 2, "the traders made no swaps"
    code, status = _json(["devnet", "status", "--out", str(out)])
    assert code == 0
    assert status["up"]
    assert status["trader_rounds"] >= 2


def test_dry_run_from_the_generated_config(devnet, monkeypatch):
    out, result = devnet
    monkeypatch.setenv(PASSWORD_ENV, (out / "keys" / "password").read_text().strip())
    cfg = str(out / "agent.toml")
    code, dry = _json(["dry-run", "--fork-url", result["rpc_url"], "-c", cfg, "--ticks", "2"])
    assert code == 0, dry
    assert dry["mode"] == "dry-run"
    assert len(dry["ticks"]) == 2
    assert dry["agent"] == result["accounts"]["agent"]
    # Right after `up` the pools already have history older than the TWAP window: the
    # strategy is priced and not paused, every tick of the dry run ran.
    for tick in dry["ticks"]:
        assert tick["paused"] == {}
        assert tick["skipped"] is None
        assert tick["portfolio_value"] > 0


def test_dry_run_without_the_password_is_one_sentence(devnet, monkeypatch, capsys):
    out, result = devnet
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    code = main(["dry-run", "--fork-url", result["rpc_url"], "-c", str(out / "agent.toml")])
    assert code == 2
    assert PASSWORD_ENV in capsys.readouterr().err


def test_a_second_up_in_the_same_folder_is_refused(devnet, capsys):
    out, result = devnet
    code = main(["devnet", "up", "--out", str(out), "--port", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "already up" in err
    assert "devnet down" in err
    assert load(out).anvil.pid == result["anvil_pid"]  # the running one untouched


def test_bad_out_and_busy_port(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["devnet", "up", "--out", str(a_file), "--port", "0"]) == 2
    assert "is a file" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(["devnet", "up", "--out", str(full), "--port", "0"]) == 2
    assert "not empty" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fresh = tmp_path / "fresh"
        assert main(["devnet", "up", "--out", str(fresh), "--port", str(port)]) == 3
        assert f"port {port}" in capsys.readouterr().err
        assert not fresh.exists()  # nothing made before the check


def test_down_never_signals_a_process_it_did_not_start(tmp_path, capsys):
    """A devnet.json naming someone else's pid (reused after a reboot, or written by hand)."""
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        real = processes.record(bystander.pid, tmp_path / "x.log", "sleep")
        out = tmp_path / "net"
        out.mkdir()
        forged = [
            real.model_copy(update={"start_ticks": real.start_ticks + 1}),  # another start
            real.model_copy(update={"marker": "anvil"}),  # another command
        ]
        for rec in forged:
            save(DevnetState(out=str(out), rpc_url="http://127.0.0.1:1", port=1, anvil=rec))
            assert main(["devnet", "down", "--out", str(out)]) == 0
            assert bystander.poll() is None
        # A state file others could have written is not trusted at all.
        save(DevnetState(out=str(out), rpc_url="http://127.0.0.1:1", port=1, anvil=real))
        os.chmod(out / "devnet.json", 0o666)  # noqa: S103 - the point of the test
        assert main(["devnet", "down", "--out", str(out)]) == 1
        assert "open to group or others" in capsys.readouterr().err
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_down_stops_everything_and_is_idempotent(devnet, capsys):
    out, _result = devnet
    state = load(out)
    assert state is not None
    assert state.traders is not None
    code, down = _json(["devnet", "down", "--out", str(out)])
    assert code == 0
    assert len(down["stopped"]) == 2
    assert not processes.is_running(state.anvil)
    assert not processes.is_running(state.traders)
    for rec in (state.anvil, state.traders):
        with contextlib.suppress(FileNotFoundError):  # gone, or a zombie awaiting its reaper
            fields = Path(f"/proc/{rec.pid}/stat").read_text().rsplit(")", 1)[1].split()
            # ...or its pid already reused by another process (another start time).
            assert fields[0] == "Z" or int(fields[19]) != rec.start_ticks
    code, again = _json(["devnet", "down", "--out", str(out)])
    assert code == 0
    assert again["found"]
    assert again["stopped"] == []
    assert main(["devnet", "status", "--out", str(out)]) == 1
    # up into the stopped devnet's folder says what to do instead of mixing two chains.
    assert main(["devnet", "up", "--out", str(out), "--port", "0"]) == 2
    assert "devnet that is down" in capsys.readouterr().err
