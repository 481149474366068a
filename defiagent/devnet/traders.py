"""The devnet's other traders: a background process that moves the pools every few seconds.

`python -m defiagent.devnet.traders DIR` reads DIR/devnet.json, and with anvil's unlocked
dev accounts (no key handled here) makes one swap per pool per round, leaning back toward
the opening price as arbitrage would. Each round is one line in its log and the count in
DIR/traders.status, which `devnet up` waits for and `devnet status` shows. It ends on
SIGTERM, or by itself once the chain has stopped answering.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from web3 import Web3

from defiagent.devnet.state import DevnetState, load
from defiagent.operator.files import write_atomic

STATUS_FILE = "traders.status"
MAX_FAILED_ROUNDS = 5  # about 15 s of a chain that does not answer: it is gone

Mover = Callable[[], str]


def movers(w3: Web3, state: DevnetState) -> list[tuple[str, Mover]]:
    """One mover per DEX that has one: (name, step)."""
    from defiagent.devnet.movers import movers as make

    return make(w3, state.deployments)


def _log(text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {text}\n")
    sys.stdout.flush()


def run(out: Path) -> int:
    state = load(out)
    if state is None:
        _log(f"no devnet state in {out}")
        return 2
    stopping = False

    def on_term(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    w3 = Web3(Web3.HTTPProvider(state.rpc_url, request_kwargs={"timeout": 10}))
    steps = movers(w3, state)
    _log(f"trading on {', '.join(name for name, _ in steps)} every {state.trade_seconds:g}s")
    rounds = failed = 0
    while not stopping:
        done = []
        for name, step in steps:
            try:
                done.append(f"{name}: {step()}")
            except Exception as exc:  # one failed swap is logged; the next round goes on
                done.append(f"{name}: failed ({type(exc).__name__}: {exc})")
        failed = failed + 1 if all("failed (" in d for d in done) else 0
        rounds += 1
        _log("; ".join(done))
        status = {"rounds": rounds, "last": done, "at": time.time()}
        write_atomic(out / STATUS_FILE, json.dumps(status) + "\n", mode=0o644)
        if failed >= MAX_FAILED_ROUNDS:
            _log("the chain stopped answering; the traders stop")
            return 3
        deadline = time.monotonic() + state.trade_seconds
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    _log("stopped")
    return 0


def read_status(out: Path) -> dict | None:
    try:
        return json.loads((out / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
