"""The agent demo, end to end on a local chain, with nothing mocked.

anvil -> the real Uniswap V2, WETH9 and two OpenZeppelin tokens -> an allowlist built and
signed on the spot -> a throwaway encrypted keystore for the agent (password generated in
memory, never written) funded from anvil's dev account -> the mean-reversion strategy
trading for N ticks while other traders move the pool, every transaction simulated on a
fork and checked before it is signed -> a rogue strategy on tick 2 whose every request is
refused with its reason -> the audit log verified at the end.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from defiagent.agent.demo_allowlist import build_demo_allowlist
from defiagent.agent.demo_inbox import WebhookInbox
from defiagent.agent.demo_signers import demo_signer
from defiagent.agent.devnet import UNIT, DemoMarket, MarketNoise, deploy_market, fund
from defiagent.agent.reports import TickReport
from defiagent.agent.runtime import AgentRuntime
from defiagent.chain.anvil import Anvil, free_port
from defiagent.config import AgentConfig, parse_config
from defiagent.monitoring.audit_log import AuditReport, verify_audit_log
from defiagent.strategy.mean_reversion import MeanReversion, MeanReversionParams
from defiagent.strategy.rogue import RogueParams, RogueStrategy

ROGUE_TICK = 2


class DemoResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    workdir: str
    chain_id: int
    agent: str
    contracts: dict[str, str]
    allowlist: dict[str, str]  # address -> name
    explain: list[str]
    ticks: list[TickReport]
    noise: list[str]
    audit_log: str
    audit: AuditReport
    balances_start: dict[str, float]
    balances_end: dict[str, float]
    metrics_url: str = ""
    metrics: list[str] = []  # a few lines scraped from the live /metrics endpoint
    alerts: list[dict[str, Any]] = []  # what the local webhook received


def demo_config(
    market: DemoMarket, *, rpc_url: str, workdir: Path, signer_table: dict
) -> AgentConfig:
    d = market.dex
    return parse_config(
        {
            "rpc_url": rpc_url,
            "chain_id": d.chain_id,
            "allowlist_dir": str(workdir / "allowlist"),
            "state_dir": str(workdir / "state"),
            "tick_seconds": 0.1,
            "protocols": {"router": d.router, "weth": d.weth, "factory": d.factory},
            "market": {
                "numeraire": d.token_a,
                "twap_min_window_seconds": 10,
                "max_deviation_bps": 400,
            },
            "guard": {
                "per_tx_value_cap": {"max_value": 2_000},
                "window_value_cap": {"max_value": 50_000, "window_seconds": 86_400},
                "rate_limit": {"max_intents": 10, "window_seconds": 60},
                "slippage": {"max_slippage_bps": 100},
            },
            "risk": {"max_daily_loss": {"max_loss_pct": 5}},
            # How a real deployment would name the key; the demo hands the signer over directly.
            "signer": signer_table,
        },
        source="the demo config",
    )


def _balances(w3: Web3, market: DemoMarket, who: str) -> dict[str, float]:
    from defiagent.market.reader import ChainReader

    reader = ChainReader(w3)
    return {
        "ETH": w3.eth.get_balance(who) / UNIT,
        "DUSD": reader.balance_of(market.dusd, who) / UNIT,
        "DTKN": reader.balance_of(market.dtkn, who) / UNIT,
    }


def run_demo(
    ticks: int = 8,
    *,
    workdir: Path | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    signer_backend: str = "keystore",
) -> DemoResult:
    emit = on_event or (lambda kind, data: None)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="defiagent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        node = stack.enter_context(Anvil(log_dir=workdir / "anvil"))
        w3 = Web3(Web3.HTTPProvider(node.url))
        emit("stage", "deploying Uniswap V2, WETH9 and two ERC-20 tokens")
        market = deploy_market(w3)
        noise = MarketNoise(w3, market)

        emit("stage", f"opening the agent's signer ({signer_backend})")
        signer, signer_table = stack.enter_context(demo_signer(signer_backend, workdir))
        fund(w3, market, signer.address, eth=10 * UNIT, dusd=50_000 * UNIT, dtkn=100_000 * UNIT)

        emit("stage", "vetting the contracts, two reviewers approving them")
        allowlist = build_demo_allowlist(
            w3, market, workdir / "allowlist", on_step=lambda text: emit("stage", text)
        )

        cfg = demo_config(market, rpc_url=node.url, workdir=workdir, signer_table=signer_table)
        # Metrics on a local port, alerts to a local webhook (Slack's format), as in production.
        inbox = stack.enter_context(WebhookInbox())
        stack.enter_context(_env(DEMO_WEBHOOK_ENV, inbox.url))
        metrics_port = free_port()
        cfg = cfg.model_copy(
            update={
                "metrics": cfg.metrics.model_copy(update={"port": metrics_port}),
                "alerts": cfg.alerts.model_copy(update={"webhook_url_env": DEMO_WEBHOOK_ENV}),
            }
        )
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        strategies = [
            MeanReversion(
                MeanReversionParams(
                    base=market.dtkn,
                    quote=market.dusd,
                    window=4,
                    threshold_bps=40,
                    trade_size_quote=500 * UNIT,
                    slippage_bps=50,
                )
            ),
            RogueStrategy(RogueParams(base=market.dtkn, quote=market.dusd, on_ticks=[ROGUE_TICK])),
        ]
        start = _balances(w3, market, signer.address)
        emit("stage", "starting the agent")
        reports: list[TickReport] = []
        moves: list[str] = []
        # The runtime loads and verifies the allowlist folder itself, as `defiagent run` does.
        with AgentRuntime(cfg, signer=signer, strategies=strategies, mode="demo") as runtime:
            emit("explain", runtime.explanations)
            runtime.agent.warm_up()
            for _ in range(ticks):
                moves.append(noise.step())
                report = runtime.agent.tick()
                reports.append(report)
                emit("tick", report)
            runtime.alerts.flush(10)
            scraped = _scrape(metrics_url)
        end = _balances(w3, market, signer.address)
        d = market.dex
        return DemoResult(
            workdir=str(workdir),
            chain_id=d.chain_id,
            agent=signer.address,
            contracts={
                "router": d.router,
                "factory": d.factory,
                "weth": d.weth,
                "DUSD": d.token_a,
                "DTKN": d.token_b,
                "DUSD/DTKN pair": d.pair,
                "WETH/DUSD pair": market.weth_pair,
            },
            allowlist={a: e.name for a, e in allowlist.entries.items()},
            explain=runtime.explanations,
            ticks=reports,
            noise=moves,
            audit_log=str(runtime.audit_path),
            audit=verify_audit_log(runtime.audit_path),
            balances_start=start,
            balances_end=end,
            metrics_url=metrics_url,
            metrics=scraped,
            alerts=inbox.alerts(),
        )


DEMO_WEBHOOK_ENV = "DEFIAGENT_DEMO_WEBHOOK_URL"
_SHOWN = (
    "defiagent_intents_total",
    "defiagent_refusals_total",
    "defiagent_sends_total",
    "defiagent_simulations_total",
    "defiagent_portfolio_value",
    "defiagent_kill_switch_on",
    "defiagent_alerts_total",
)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _scrape(url: str) -> list[str]:
    """The demo's headline samples, read over HTTP as Prometheus would."""
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (our own loopback URL)
        page = resp.read().decode()
    return [line for line in page.splitlines() if line.startswith(_SHOWN)]
