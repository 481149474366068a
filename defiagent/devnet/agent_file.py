"""DIR/agent.toml for the devnet: the built-in mean-reversion strategy on DTKN/DUSD, the
devnet's protocols, its allowlist and keys, limits as the demo has them. Validated by the
same parser as any agent.toml before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from defiagent.config import parse_config
from defiagent.devnet.keys import PASSWORD_ENV
from defiagent.operator.files import write_atomic

UNIT = 10**18
TWAP_MIN_WINDOW_SECONDS = 10  # short: a devnet's pools are minutes old, not months

HEADER = """\
# A local mainnet stand-in made by `defiagent devnet up` (README, quick start).
# Its keys are throwaway ones in keys/ (password in keys/password); `defiagent devnet down`
# stops the chain. require_backtest is off because a devnet has no history worth
# certifying: on a real chain keep the default (true) and follow docs/backtest.md.
"""


def devnet_config(
    *,
    rpc_url: str,
    chain_id: int,
    protocols: dict[str, Any],
    base: str,
    quote: str,
    operator: str,
) -> dict[str, Any]:
    if "uniswap-v3" in protocols:  # its pools' observe() history is as young as they are
        protocols = protocols | {
            "uniswap-v3": protocols["uniswap-v3"] | {"twap_window_seconds": TWAP_MIN_WINDOW_SECONDS}
        }
    return {
        "rpc_url": rpc_url,
        "chain_id": chain_id,
        "allowlist_dir": "contracts_allowlist",
        "state_dir": "state",
        "tick_seconds": 3,
        "pins_file": "strategy-pins.json",
        "pin_signers": [operator],
        "require_backtest": False,
        "protocols": protocols,
        "market": {
            "numeraire": quote,
            "twap_min_window_seconds": TWAP_MIN_WINDOW_SECONDS,
            "max_deviation_bps": 400,
        },
        "guard": {
            "per_tx_value_cap": {"max_value": 2_000},
            "window_value_cap": {"max_value": 50_000, "window_seconds": 86_400},
            "rate_limit": {"max_intents": 10, "window_seconds": 60},
            "slippage": {"max_slippage_bps": 100},
        },
        "risk": {"max_daily_loss": {"max_loss_pct": 5}},
        "strategies": [
            {
                "name": "mean-reversion",
                "builtin": "mean-reversion",
                "params": {
                    "base": base,
                    "quote": quote,
                    "window": 4,
                    "threshold_bps": 40,
                    "trade_size_quote": str(500 * UNIT),
                    "slippage_bps": 50,
                },
            }
        ],
        "signer": {"backend": "keystore", "path": "keys/agent.json", "password_env": PASSWORD_ENV},
    }


def write_agent_toml(path: Path, config: dict[str, Any]) -> None:
    parse_config(config, source=str(path))  # a mistake here is ours: never write a bad file
    # No secret in it (the signer names the variable holding the password).
    write_atomic(path, HEADER + tomli_w.dumps(config), mode=0o644, what=str(path))
