"""A local chain to try the backtest flow on (`defiagent market devnet`, docs/backtest.md).

On an anvil node: the real Uniswap V2 stack with the demo's DUSD/DTKN and WETH/DUSD pools,
scripted traders making `blocks` blocks of history, the allowlist built through the real
review workflow (Slither, signed audit records and triage, two throwaway reviewers), an
operator key (in pin_signers) and an agent key (funded), both keystores encrypted with the
password in the environment variable the caller names, and an agent.toml for the built-in
mean-reversion strategy. Nothing secret is written in clear.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from eth_account import Account
from web3 import Web3

from defiagent.agent.devnet import UNIT, DemoMarket, MarketNoise, deploy_market, fund
from defiagent.errors import ConfigError

# Noise made by scripted traders has no edge to speak of: the gates that judge the edge are
# off on this devnet (its agent.toml says so); on a real chain keep their defaults.
DEVNET_GATES = {
    "deflated_sharpe": {"enabled": False},
    "walk_forward": {"enabled": False},
    "sensitivity": {"enabled": False},
}


@dataclass
class Devnet:
    workdir: Path
    rpc_url: str
    market: DemoMarket
    first_block: int
    last_block: int
    config: dict[str, Any]
    noise: MarketNoise

    @property
    def pools(self) -> list[str]:
        return self.market.pools


def set_up(
    w3: Web3,
    rpc_url: str,
    workdir: Path,
    *,
    blocks: int,
    password_env: str,
    seed: int = 7,
    on_step: Any = None,
) -> Devnet:
    """Everything on the chain at `rpc_url` and in `workdir` (which must not hold an
    agent.toml yet); returns where things are."""
    from defiagent.agent.demo_allowlist import build_demo_allowlist
    from defiagent.signing.keystore import write_keystore

    say = on_step or (lambda _m: None)
    password = os.environ.get(password_env, "")
    if len(password) < 8:
        raise ConfigError(
            f"set the environment variable {password_env} to a password of at least 8 "
            "characters first: it encrypts the devnet's keystores"
        )
    if blocks < 10:
        raise ConfigError("--blocks must be at least 10")
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "agent.toml").exists():
        raise ConfigError(f"{workdir} already holds an agent.toml; choose an empty --workdir")
    say("deploying Uniswap V2, WETH9 and two ERC-20 tokens")
    market = deploy_market(w3)
    say(f"scripted traders make {blocks} blocks of history")
    noise = MarketNoise(w3, market, seed=seed, min_pct=0.2, max_pct=1.5)
    first = w3.eth.block_number + 1
    for _ in range(blocks):
        noise.step()
    last = w3.eth.block_number
    say("vetting the contracts, two reviewers approving them (Slither, about a minute)")
    build_demo_allowlist(w3, market, workdir / "contracts_allowlist", on_step=say)
    agent = write_keystore(workdir / "agent.json", bytes(Account.create().key), password)
    operator = write_keystore(workdir / "operator.json", bytes(Account.create().key), password)
    fund(w3, market, agent, eth=10 * UNIT, dusd=20_000 * UNIT, dtkn=40_000 * UNIT)
    d = market.dex
    config: dict[str, Any] = {
        "rpc_url": rpc_url,
        "chain_id": d.chain_id,
        "allowlist_dir": "contracts_allowlist",
        "state_dir": "state",
        "tick_seconds": 2,
        "protocols": {"router": d.router, "weth": d.weth, "factory": d.factory},
        "market": {"numeraire": d.token_a, "twap_min_window_seconds": 10, "max_deviation_bps": 400},
        "strategies": [
            {
                "name": "mean-reversion",
                "builtin": "mean-reversion",
                "params": {
                    "base": market.dtkn,
                    "quote": market.dusd,
                    "window": 4,
                    "threshold_bps": 40,
                    "trade_size_quote": str(500 * UNIT),
                    "slippage_bps": 50,
                },
            }
        ],
        "signer": {"backend": "keystore", "path": "agent.json", "password_env": password_env},
        "pin_signers": [operator],
        "require_backtest": True,
        "backtest": {
            "start_balances": {d.token_a: 20_000, d.token_b: 40_000, "ETH": 2},
            "gates": DEVNET_GATES,
        },
    }
    text = (
        "# A local devnet made by `defiagent market devnet` (docs/backtest.md).\n"
        "# backtest.gates: scripted noise has no edge, so the gates judging the edge are off\n"
        "# here; on a real chain keep their defaults.\n" + tomli_w.dumps(config)
    )
    (workdir / "agent.toml").write_text(text)
    return Devnet(workdir, rpc_url, market, first, last, config, noise)


def commands(net: Devnet, password_env: str) -> list[str]:
    """The flow of docs/backtest.md with this devnet's paths, blocks and pools."""
    cfg = net.workdir / "agent.toml"
    key = net.workdir / "operator.json"
    history = net.workdir / "history"
    return [
        f"defiagent strategy pin -c {cfg} --key {key} --password-env {password_env}",
        f"defiagent run -c {cfg} --ticks 1        # refused: no backtest certificate yet",
        f"defiagent market record --rpc-url {net.rpc_url} --pools {','.join(net.pools)} "
        f"--from-block {net.first_block} --to-block {net.last_block} --out {history}",
        f"defiagent backtest -c {cfg} --data {history} --html {net.workdir / 'backtest.html'}",
        f"defiagent backtest -c {cfg} --data {history} --certify --key {key} "
        f"--password-env {password_env}",
        f"defiagent run -c {cfg} --ticks 5",
    ]
