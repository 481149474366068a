"""`devnet up`, `down` and `status`: start, record, stop.

`up` refuses a folder that is a file or holds anything (a running devnet: exit 1; a stopped
one's files or other files: exit 2) and a busy port (exit 3), then: anvil in its own
session (recorded in devnet.json at once, so `down` can stop a half-made devnet), every
protocol deployed, throwaway keys, the agent funded, the allowlist built through the real
review workflow by the two reviewer keys, agent.toml written and its strategy pinned by the
operator key, and the traders started; it returns once they have made a first round.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.types import RPCEndpoint

from defiagent.chain.anvil import Anvil, free_port
from defiagent.devnet import processes
from defiagent.devnet.state import DevnetState, load, save, state_path
from defiagent.errors import ConfigError, InfraError, Refused

TRADERS_MODULE = "defiagent.devnet.traders"
TRADERS_START_SECONDS = 60.0
# What the traders' process keeps of our environment: where the toolchain and the compiled
# artifacts are. Any other DEFIAGENT_* (an RPC URL with a key, say) is none of its business.
_KEPT = ("DEFIAGENT_TOOLCHAIN_DIR", "DEFIAGENT_CACHE_DIR")

Say = Callable[[str], None]


class UpResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool = True
    out: str
    rpc_url: str
    chain_id: int
    anvil_pid: int
    traders_pid: int
    accounts: dict[str, str]
    contracts: dict[str, str]  # allowlist entry name -> address
    left_out: dict[str, str] = {}  # protocol deployed but not allowlisted -> why
    files: dict[str, str]
    commands: list[str]
    seconds: float


class DownResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool = True
    out: str
    found: bool  # a devnet was recorded there
    stopped: list[str]  # the processes that were running and now are not


class StatusResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool = True
    out: str
    up: bool
    ready: bool
    rpc_url: str
    running: dict[str, bool]
    trader_rounds: int


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    existing = load(out)
    if existing is not None:
        if existing.any_running():
            raise Refused(
                f"a devnet is already up in {out} at {existing.rpc_url} "
                f"(anvil pid {existing.anvil.pid})",
                remedy=f"`defiagent devnet down --out {out}` stops it",
            )
        raise ConfigError(
            f"{out} holds the files of a devnet that is down (its chain is gone)",
            remedy=f"remove the folder or give another --out: rm -r {out}",
        )
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty", remedy="give a new or empty folder")


def check_port(port: int) -> int:
    """The port anvil will take: `port`, which must be free, or any free one for 0."""
    if port == 0:
        return free_port()
    if not 0 < port < 65_536:
        raise ConfigError(f"--port {port} is not a TCP port (1-65535, or 0 for any free one)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise InfraError(
                f"port {port} on 127.0.0.1 is already in use (another node?)",
                remedy="give another --port, or --port 0 for any free one",
            ) from None
    return port


def _show(path: Path) -> str:
    """A path as a person would type it: relative when under the working folder."""
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else rel


def next_commands(out: Path, rpc_url: str) -> list[str]:
    cfg = _show(out / "agent.toml")
    return [
        f'export DEFIAGENT_DEVNET_PASSWORD="$(cat {_show(out / "keys" / "password")})"',
        f"defiagent dry-run --fork-url {rpc_url} -c {cfg} --ticks 3",
        f"defiagent run -c {cfg} --ticks 5",
        f"defiagent devnet down --out {_show(out)}",
    ]


def up(out: Path, *, port: int = 8545, trade_seconds: float = 3.0, say: Say) -> UpResult:
    started = time.monotonic()
    if trade_seconds <= 0:
        raise ConfigError("--trade-seconds must be more than 0")
    out = out.expanduser().absolute()
    check_out(out)
    port = check_port(port)
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be made: {exc.strerror}") from None
    say(f"starting anvil on 127.0.0.1:{port}")
    node = Anvil(port=port, log_dir=out / "logs", detached=True)
    node.start()
    assert node.pid is not None  # started above
    assert node.log_path is not None
    state = DevnetState(
        out=str(out),
        rpc_url=node.url,
        port=node.port or port,
        anvil=processes.record(node.pid, node.log_path, "anvil"),
        trade_seconds=trade_seconds,
    )
    save(state)
    try:
        with _terminate_as_interrupt():
            if node.port != port:  # taken between our check and anvil's bind
                raise InfraError(f"port {port} on 127.0.0.1 was taken while anvil started")
            result = _populate(state, say)
    except BaseException:  # an error, Ctrl-C or SIGTERM: nothing half-made keeps running
        stop_all(state)
        raise
    return result.model_copy(update={"seconds": round(time.monotonic() - started, 1)})


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While `up` builds the devnet, SIGTERM unwinds like Ctrl-C, so the processes it has
    started are stopped rather than left behind (SIGKILL cannot be caught: then
    `devnet down` stops them from devnet.json, written as soon as anvil runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum, _frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _populate(state: DevnetState, say: Say) -> UpResult:
    from defiagent.agent.demo_allowlist import review_contracts, write_trust_roots
    from defiagent.agent.devnet import UNIT, fund
    from defiagent.config import load_config
    from defiagent.devnet.agent_file import (
        TWAP_MIN_WINDOW_SECONDS,
        devnet_config,
        write_agent_toml,
    )
    from defiagent.devnet.deploy import deploy_all
    from defiagent.devnet.keys import make_keys
    from defiagent.signing.keystore import KeystoreSigner
    from defiagent.strategy.pins import pin_strategies, write_pins

    out = Path(state.out)
    w3 = Web3(Web3.HTTPProvider(state.rpc_url))
    state.chain_id = w3.eth.chain_id
    deployed = deploy_all(w3, on_step=say)
    market = deployed.market
    say("writing throwaway keys (agent, operator, two reviewers, auditor)")
    keys = make_keys(out / "keys")
    fund(w3, market, keys.address("agent"), eth=10 * UNIT, dusd=50_000 * UNIT, dtkn=100_000 * UNIT)
    say("vetting the contracts, two reviewers approving them (Slither; cached after the first)")
    root = out / "contracts_allowlist"
    reviewers = [keys.accounts["reviewer-1"], keys.accounts["reviewer-2"]]
    bytecode_only = any(sources is None for _, _, _, sources, _ in deployed.contracts)
    write_trust_roots(root, reviewers, keys.accounts["auditor"], bytecode_only=bytecode_only)
    allowlist = review_contracts(
        w3,
        root,
        deployed.contracts,
        state.chain_id,
        reviewers,
        keys.accounts["auditor"],
        on_step=say,
    )
    config = devnet_config(
        rpc_url=state.rpc_url,
        chain_id=state.chain_id,
        protocols=deployed.protocols,
        base=market.dtkn,
        quote=market.dusd,
        operator=keys.address("operator"),
    )
    write_agent_toml(out / "agent.toml", config)
    say("pinning the strategy with the operator key")
    cfg = load_config(out / "agent.toml")
    write_pins(
        cfg.pins_file, pin_strategies(cfg, KeystoreSigner(keys.path("operator"), keys.password))
    )
    state.deployments = {k: d.model_dump(mode="json") for k, d in deployed.deployments.items()}
    state.accounts = {role: keys.address(role) for role in keys.accounts}
    state.files = {
        "agent.toml": str(out / "agent.toml"),
        "allowlist": str(out / "contracts_allowlist"),
        "keys": str(keys.folder),
        "password": str(keys.password_file),
        "logs": str(out / "logs"),
    }
    save(state)
    # The TWAP reference needs pool history older than its window; pools made a moment ago
    # have none, and the first ticks of a dry run would pause the strategy for want of a
    # sane price. Move the chain's clock past the window once, as a chain that has been
    # running for a while would be (the demo and the tests do the same).
    w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [2 * TWAP_MIN_WINDOW_SECONDS])
    w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    say(f"starting the traders (a swap on each pool every {state.trade_seconds:g}s)")
    state.traders = processes.spawn_detached(
        [sys.executable, "-m", TRADERS_MODULE, str(out)],
        log=out / "logs" / "traders.log",
        env=_traders_env(),
        marker=TRADERS_MODULE,
    )
    save(state)
    _wait_for_traders(state)
    state.ready = True
    save(state)
    return UpResult(
        out=str(out),
        rpc_url=state.rpc_url,
        chain_id=state.chain_id,
        anvil_pid=state.anvil.pid,
        traders_pid=state.traders.pid,
        accounts=state.accounts,
        contracts={e.name: a for a, e in allowlist.entries.items()},
        left_out=deployed.left_out,
        files=state.files,
        commands=next_commands(out, state.rpc_url),
        seconds=0.0,
    )


def _traders_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEFIAGENT_") or k in _KEPT}


def _wait_for_traders(state: DevnetState) -> None:
    from defiagent.devnet.traders import read_status

    assert state.traders is not None
    deadline = time.monotonic() + TRADERS_START_SECONDS
    while time.monotonic() < deadline:
        status = read_status(Path(state.out))
        if status and status.get("rounds", 0) >= 1:
            return
        if not processes.is_running(state.traders):
            break
        time.sleep(0.1)
    tail = _tail(Path(state.traders.log))
    raise InfraError(f"the traders did not start ({tail or 'no output'})")


def _tail(path: Path, lines: int = 2) -> str:
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def stop_all(state: DevnetState) -> list[str]:
    """Stop the traders, then anvil; the names of those that were running."""
    stopped = []
    if state.traders is not None and processes.stop(state.traders):
        stopped.append(f"traders (pid {state.traders.pid})")
    if processes.stop(state.anvil):
        stopped.append(f"anvil (pid {state.anvil.pid})")
    return stopped


def down(out: Path) -> DownResult:
    out = out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    state = load(out)
    if state is None:
        return DownResult(out=str(out), found=False, stopped=[])
    return DownResult(out=str(out), found=True, stopped=stop_all(state))


def status(out: Path) -> StatusResult:
    from defiagent.devnet.traders import read_status

    out = out.expanduser().absolute()
    state = load(out)
    if state is None:
        raise Refused(f"no devnet in {out} (no {state_path(out).name})")
    running = state.running()
    rounds = (read_status(out) or {}).get("rounds", 0)
    return StatusResult(
        out=str(out),
        up=all(running.values()),
        ready=state.ready,
        rpc_url=state.rpc_url,
        running=running,
        trader_rounds=int(rounds),
    )
