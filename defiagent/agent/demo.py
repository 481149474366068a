"""The agent demo, end to end on a local chain, with nothing mocked.

anvil -> what `devnet up` deploys (WETH9, two OpenZeppelin tokens, the real Uniswap V2 and
V3 and an OpenZeppelin ERC-4626 vault, from their npm bytecode) -> an allowlist built and
signed on the spot -> a throwaway encrypted keystore for the agent (password generated in
memory, never written) funded from anvil's dev account -> the strategies pinned by a
throwaway operator key and started in their own bubblewrap sandboxes -> mean reversion on
the V2 pair and on a V3 pool, and a treasury parking idle Demo USD in the vault, for N
ticks while other traders move the pools; every transaction simulated on a fork and
checked before it is signed, then sent to a private relay (the local relay emulator),
never to the public mempool -> a rogue strategy whose every request on tick 2 is refused
with its reason, and which from tick 3 tries to escape its sandbox (read the keystore and
state, reach the RPC, write the kill switch, signal the agent, exhaust memory, loop
forever, print garbage): each attempt blocked, checked from outside -> the audit log
verified at the end.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, cast

from eth_typing import ChecksumAddress
from pydantic import BaseModel, ConfigDict
from web3 import Web3

from defiagent.agent.demo_allowlist import review_contracts, write_trust_roots
from defiagent.agent.demo_inbox import WebhookInbox
from defiagent.agent.demo_signers import demo_signer
from defiagent.agent.devnet import UNIT, DemoMarket, MarketNoise, fund
from defiagent.agent.reports import TickReport
from defiagent.agent.runtime import AgentRuntime
from defiagent.broadcast.demo import RelayUse, demo_relay, relay_use, with_private_broadcast
from defiagent.chain.anvil import Anvil, free_port
from defiagent.config import AgentConfig, parse_config
from defiagent.devnet.agent_file import TWAP_MIN_WINDOW_SECONDS
from defiagent.devnet.deploy import Deployed, deploy_all
from defiagent.errors import ConfigError
from defiagent.guard.rules.intent_kind_allowed import DEFAULT_KINDS
from defiagent.monitoring.audit_log import AuditReport, verify_audit_log
from defiagent.monitoring.kill_switch import FILENAME as KILL_SWITCH_FILE
from defiagent.protocols import registry
from defiagent.secrets.agent import references_in
from defiagent.secrets.demo import demo_vault, vault_keystore, with_vault_secrets
from defiagent.strategy.builtin.rogue import ESCAPES
from defiagent.strategy.pins import pin_strategies, write_pins

ROGUE_TICK = 2
V3_FEE = 3000  # the V3 DUSD/DTKN pool the demo trades
ESCAPE_TICK = ROGUE_TICK + 1
NOT_TRIED = "no attempt recorded"


class EscapeCheck(BaseModel):
    """One escape the rogue tried, what it saw inside, and what the agent checked outside."""

    model_config = ConfigDict(frozen=True)

    attempt: str
    inside: str  # the rogue's own note, or the agent's refusal of its tick
    outside: str  # the effect checked from the agent's side
    attempted: bool  # the demo may end before the rogue got to it (--ticks)
    blocked: bool


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
    pins: dict[str, str] = {}  # strategy -> pin id
    escapes: list[EscapeCheck] = []
    secrets: dict[str, str] = {}  # what -> the vault: reference it was read from (--secrets)
    safe: dict[str, str] = {}  # --safe: the Safe, its guard and the agent key
    forged: list[Any] = []  # --safe: defiagent.safe.demo.ForgedCall, sent with the agent's key
    # --signer remote: defiagent.signing.remote.demo.ForgedRequest, sent past the agent
    signer_forged: list[Any] = []
    relay: RelayUse | None = None  # the private relay every transaction went through
    left_out: dict[str, str] = {}  # protocol deployed but not allowlisted -> why


def demo_config(
    market: DemoMarket,
    *,
    rpc_url: str,
    workdir: Path,
    signer_table: dict,
    protocols: dict[str, Any] | None = None,
) -> AgentConfig:
    """The demo's agent.toml; `protocols` is the deployment's [protocols] (V2 and WETH
    alone when not given)."""
    d = market.dex
    protocols = dict(protocols or {"router": d.router, "weth": d.weth, "factory": d.factory})
    if "uniswap-v3" in protocols:  # the devnet's pools are seconds old, not months
        window = {"twap_window_seconds": TWAP_MIN_WINDOW_SECONDS}
        protocols["uniswap-v3"] = protocols["uniswap-v3"] | window
    return parse_config(
        {
            "rpc_url": rpc_url,
            "chain_id": d.chain_id,
            "allowlist_dir": str(workdir / "allowlist"),
            "state_dir": str(workdir / "state"),
            "tick_seconds": 0.1,
            "protocols": protocols,
            "market": {
                "numeraire": d.token_a,
                "twap_min_window_seconds": TWAP_MIN_WINDOW_SECONDS,
                "max_deviation_bps": 400,
            },
            "guard": {
                "per_tx_value_cap": {"max_value": 2_000},
                "window_value_cap": {"max_value": 50_000, "window_seconds": 86_400},
                "rate_limit": {"max_intents": 10, "window_seconds": 60},
                "slippage": {"max_slippage_bps": 100},
                "intent_kinds": {
                    "allowed_kinds": [*DEFAULT_KINDS, "vault-deposit", "vault-withdraw"]
                },
            },
            "risk": {"max_daily_loss": {"max_loss_pct": 5}},
            # How a real deployment would name the key; the demo hands the signer over directly.
            "signer": signer_table,
        },
        source="the demo config",
    )


def _balances(w3: Web3, market: DemoMarket, who: str, vault: str | None = None) -> dict[str, float]:
    from defiagent.market.reader import ChainReader

    reader = ChainReader(w3)
    held = {
        "ETH": w3.eth.get_balance(cast(ChecksumAddress, who)) / UNIT,  # web3 checks it
        "DUSD": reader.balance_of(market.dusd, who) / UNIT,
        "DTKN": reader.balance_of(market.dtkn, who) / UNIT,
    }
    if vault is not None:
        held["vault shares"] = reader.balance_of(vault, who) / UNIT
    return held


def _deploy(w3: Web3, emit: Callable[[str, Any], None]) -> Deployed:
    """What `devnet up` deploys, each protocol from the registry."""
    emit("stage", "deploying WETH9, two ERC-20 tokens, Uniswap V2 and V3 and an ERC-4626 vault")
    return deploy_all(w3, on_step=lambda text: emit("stage", text))


def _v3_pool(deployed: Deployed, fee: int) -> dict[str, Any] | None:
    """The V3 DUSD/DTKN pool of fee tier `fee` the demo trades, if V3 was allowlisted."""
    if "uniswap-v3" in deployed.left_out or "uniswap-v3" not in deployed.deployments:
        return None
    pair = {deployed.market.dusd, deployed.market.dtkn}
    pools = deployed.deployments["uniswap-v3"].extra.get("pools", [])
    return next((p for p in pools if p["fee"] == fee and {p["token0"], p["token1"]} == pair), None)


def _v3_noise(
    w3: Web3, deployed: Deployed, pool: dict[str, Any] | None
) -> Callable[[], str] | None:
    """V3's devnet trader (through the registry), on the one V3 pool the demo trades."""
    adapter = registry.by_name("uniswap-v3")
    if pool is None or adapter is None:
        return None
    v3 = deployed.deployments["uniswap-v3"]
    only = v3.model_copy(update={"extra": v3.extra | {"pools": [pool]}})
    traders = adapter.devnet_traders(w3, {**deployed.deployments, "uniswap-v3": only})
    return traders[0][1] if traders else None


def _vault(deployed: Deployed) -> str | None:
    d = deployed.deployments.get("erc4626")
    if d is None or "erc4626" in deployed.left_out:
        return None
    return str(d.extra["vault"])


def run_demo(
    ticks: int = 8,
    *,
    workdir: Path | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    signer_backend: str = "keystore",
    secrets_backend: str = "env",
    safe: bool = False,
) -> DemoResult:
    emit = on_event or (lambda kind, data: None)
    if secrets_backend not in ("env", "openbao"):
        raise ConfigError(f"--secrets must be env or openbao, not {secrets_backend!r}")
    if secrets_backend == "openbao" and signer_backend != "keystore":
        raise ConfigError("--secrets openbao goes with --signer keystore (its password)")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="defiagent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        node = stack.enter_context(Anvil(log_dir=workdir / "anvil"))
        w3 = Web3(Web3.HTTPProvider(node.url))
        deployed = _deploy(w3, emit)
        market, vault_address = deployed.market, _vault(deployed)
        v3_pool = _v3_pool(deployed, V3_FEE)
        noise = MarketNoise(w3, market)
        v3_noise = _v3_noise(w3, deployed, v3_pool)
        emit("stage", f"opening the agent's signer ({signer_backend})")
        vault = None
        if secrets_backend == "openbao":  # every secret from a local OpenBao (vault: refs)
            vault = stack.enter_context(demo_vault(workdir))
            emit("openbao", vault)
            signer, signer_table = vault_keystore(workdir, vault)
        else:
            signer, signer_table = stack.enter_context(demo_signer(signer_backend, workdir))
        fund(w3, market, signer.address, eth=10 * UNIT, dusd=50_000 * UNIT, dtkn=100_000 * UNIT)

        emit("stage", "vetting the contracts, two reviewers approving them")
        allowlist = _review(w3, deployed, workdir / "allowlist", emit)
        if signer_backend == "remote":  # the signer process needs the signed allowlist
            emit("stage", "starting the signer process (its own key, allowlist and limits)")
            stack.enter_context(
                signer.start(
                    rpc_url=node.url,
                    chain_id=market.dex.chain_id,
                    allowlist_dir=workdir / "allowlist",
                    market=market,
                )
            )

        cfg = demo_config(
            market,
            rpc_url=node.url,
            workdir=workdir,
            signer_table=signer_table,
            protocols=deployed.protocols,
        )
        holder = signer.address  # whose balances the demo shows: the Safe with --safe
        safe_dep = None
        if safe:
            from defiagent.safe.demo import setup_demo_safe

            safe_dep, safe_cfg = setup_demo_safe(
                w3, market, signer, allowlist, workdir, lambda text: emit("stage", text)
            )
            cfg = cfg.model_copy(update={"safe": safe_cfg})
            holder = safe_dep.safe
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
        # Both strategies in their sandboxes, pinned by a throwaway operator key.
        operator = _operator_key(workdir)
        cfg = _with_strategies(
            cfg,
            market,
            signer_table,
            workdir,
            node.url,
            operator.address,
            v3_pool=v3_pool,
            vault=vault_address,
        )
        if vault is not None:
            cfg = with_vault_secrets(cfg, vault, rpc_url=node.url, webhook_url=inbox.url)
        # Every transaction goes to a private relay (the local emulator in front of anvil).
        relay = stack.enter_context(demo_relay(node.url))
        cfg = with_private_broadcast(cfg, relay.url)
        write_pins(cfg.pins_file, pin_strategies(cfg, operator))
        kill_switch_file = cfg.state_dir / KILL_SWITCH_FILE
        start = _balances(w3, market, holder, vault_address)
        emit("stage", "starting the agent, each strategy in its own sandbox")
        reports: list[TickReport] = []
        moves: list[str] = []
        # The runtime loads and verifies the allowlist folder itself, as `defiagent run` does.
        with AgentRuntime(cfg, signer=signer, mode="demo") as runtime:
            emit("explain", runtime.explanations)
            assert runtime.agent is not None  # made on entering the runtime
            runtime.agent.warm_up()
            switch_before = _read(kill_switch_file)
            for _ in range(ticks):
                moves.append(noise.step())
                if v3_noise is not None:
                    moves.append(f"V3: {v3_noise()}")
                report = runtime.agent.tick()
                reports.append(report)
                emit("tick", report)
            runtime.alerts.flush(10)
            relayed = relay_use(relay, runtime.audit_path)
            scraped = _scrape(metrics_url)
            pins = dict(runtime.pins)
            escapes = _escape_checks(
                runtime.audit_path,
                reports,
                agent_alive=True,  # this very process ran every tick after the signal
                switch_unchanged=_read(kill_switch_file) == switch_before,
                kill_switch_on=runtime.kill_switch.is_on(),
            )
        forged: list[Any] = []
        if safe_dep is not None:
            from defiagent.safe.demo import forged_attacks

            emit("stage", "a thief with the agent's key sends forged calls straight to the chain")
            v3_router = (deployed.protocols.get("uniswap-v3") or {}).get("router")
            forged = forged_attacks(w3, market, signer, safe_dep, v3_router=v3_router)
        signer_forged: list[Any] = []
        if signer_backend == "remote":
            emit("stage", "a compromised agent forges transactions straight to the signer socket")
            signer_forged = signer.forge(w3, market)
        end = _balances(w3, market, holder, vault_address)
        return DemoResult(
            workdir=str(workdir),
            chain_id=market.dex.chain_id,
            agent=signer.address,
            contracts={
                c.name: c.address for d in deployed.deployments.values() for c in d.contracts
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
            pins=pins,
            escapes=escapes,
            signer_forged=signer_forged,
            secrets=({"rpc_url": cfg.rpc_url} | references_in(cfg) if vault is not None else {}),
            safe=(
                {"safe": safe_dep.safe, "guard": safe_dep.guard, "agent_key": signer.address}
                if safe_dep is not None
                else {}
            ),
            forged=forged,
            relay=relayed,
            left_out=deployed.left_out,
        )


def _review(w3: Web3, deployed: Deployed, root: Path, emit: Callable[[str, Any], None]):
    """Every deployed contract through the real review workflow, as `devnet up` does."""
    from eth_account import Account

    reviewers, auditor = [Account.create(), Account.create()], Account.create()
    bytecode_only = any(sources is None for _, _, _, sources, _ in deployed.contracts)
    write_trust_roots(root, reviewers, auditor, bytecode_only=bytecode_only)
    return review_contracts(
        w3,
        root,
        deployed.contracts,
        deployed.market.dex.chain_id,
        reviewers,
        auditor,
        on_step=lambda text: emit("stage", text),
    )


def _operator_key(workdir: Path) -> Any:
    """A throwaway operator key that signs the strategy pins (password in memory only)."""
    import secrets

    from eth_account import Account

    from defiagent.signing.keystore import KeystoreSigner, write_keystore

    path = workdir / "operator-keystore.json"
    password = secrets.token_urlsafe(24)
    write_keystore(path, bytes(Account.create().key), password, light=True)
    return KeystoreSigner(path, password)


def _with_strategies(
    cfg: AgentConfig,
    market: DemoMarket,
    signer_table: dict,
    workdir: Path,
    rpc_url: str,
    operator: str,
    *,
    v3_pool: dict[str, Any] | None = None,
    vault: str | None = None,
) -> AgentConfig:
    """The demo's strategies as `[[strategies]]` tables, as agent.toml would have them."""
    state = cfg.state_dir
    honest: dict[str, Any] = {
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
    rogue = {
        "name": "rogue",
        "builtin": "rogue",
        "params": {
            "base": market.dtkn,
            "quote": market.dusd,
            "on_ticks": [ROGUE_TICK],
            "escapes": list(ESCAPES),
            "escape_tick": ESCAPE_TICK,
            # What an attacker would go for: the agent's key, its state, the operator's key.
            "probe_paths": [
                str(signer_table.get("path") or workdir / "agent-keystore.json"),
                str(state / "audit.jsonl"),
                str(state),
                str(workdir / "operator-keystore.json"),
                str(workdir / "allowlist"),
            ],
            "probe_urls": [rpc_url],
            "kill_switch_path": str(state / KILL_SWITCH_FILE),
            "agent_pid": os.getpid(),
            "memory_mb": 2048,
        },
        "limits": {"tick_timeout_seconds": 1.0, "memory_mb": 512, "max_failures": 5},
    }
    data = cfg.model_dump(mode="json")
    data.pop("strategy", None)
    others: list[dict[str, Any]] = []
    if v3_pool is not None:  # the same strategy on the V3 pool of that fee tier
        params = honest["params"] | {"fee": v3_pool["fee"], "slippage_bps": 80}
        others.append(honest | {"name": "mean-reversion-v3", "params": params})
    if vault is not None:
        others.append(
            {
                "name": "treasury",
                "builtin": "treasury",
                "params": {
                    "asset": market.dusd,
                    "vault": vault,
                    "reserve": str(47_000 * UNIT),
                    "band": str(500 * UNIT),
                    "max_move": str(900 * UNIT),  # under the approval cap (1,000)
                    "min_share_price": 0.9,
                    "max_share_price": 1.1,
                },
            }
        )
    data["strategies"] = [honest, *others, rogue]
    data["pins_file"] = str(workdir / "strategy-pins.json")
    data["pin_signers"] = [operator]
    return parse_config(data, source="the demo config")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _escape_checks(
    audit_path: Path,
    reports: list[TickReport],
    *,
    agent_alive: bool,
    switch_unchanged: bool,
    kill_switch_on: bool,
) -> list[EscapeCheck]:
    """Pair each escape with what the rogue reported inside and the effect checked outside."""
    import json

    notes: list[str] = []
    for line in audit_path.read_text().splitlines():
        record = json.loads(line)
        data = record.get("payload") or {}
        if record.get("kind") == "strategy-notes" and data.get("strategy") == "rogue":
            notes += data["notes"]
    failed = {
        i.kind: i.refusals[0].reason
        for t in reports
        for i in t.intents
        if i.strategy == "rogue" and i.first_rule == "strategy-failed"
    }

    def seen(prefix: str) -> list[str]:
        return [n for n in notes if n.startswith(f"escape {prefix}")]

    def short(lines: list[str]) -> str:
        """'escape read /a/b/key.json: blocked (FileNotFoundError: ...)' -> 'key.json:
        blocked (FileNotFoundError)', one per attempt."""
        out = []
        for n in lines:
            what, _, result = n.removeprefix("escape ").partition(": ")
            target = what.split(" ", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
            out.append(
                f"{target}: {result.split(':', 1)[0].rstrip(')')}{')' if '(' in result else ''}"
            )
        return "; ".join(out)

    def check(attempt: str, inside: str, outside: str, blocked: bool) -> EscapeCheck:
        tried = bool(inside)
        return EscapeCheck(
            attempt=attempt,
            inside=inside or NOT_TRIED,
            outside=outside,
            attempted=tried,
            blocked=tried and blocked,
        )

    def all_blocked(lines: list[str]) -> bool:
        return all("blocked" in n for n in lines)

    reads, conns, writes = seen("read"), seen("connect"), seen("write")
    signals, memory = seen("signal"), seen("allocate")
    return [
        check(
            "read the keystores, the state dir and the allowlist",
            short(reads),
            "every read failed inside the sandbox: those paths are not in its view",
            all_blocked(reads),
        ),
        check(
            "connect to the RPC port",
            short(conns),
            "its network namespace has no route out (no endpoint listed)",
            all_blocked(conns),
        ),
        check(
            "turn the kill switch off by writing its file",
            short(writes),
            "kill-switch file unchanged" if switch_unchanged else "KILL-SWITCH FILE CHANGED",
            switch_unchanged and not kill_switch_on,
        ),
        check(
            "signal its parent and the agent's PID",
            short(signals),
            "the agent kept running every tick" if agent_alive else "AGENT DIED",
            agent_alive and all("SUCCEEDED" not in n for n in signals),
        ),
        check(
            "allocate past its memory limit",
            short(memory),
            "stopped by its address-space limit",
            all_blocked(memory),
        ),
        check(
            "loop forever",
            failed.get("timeout", ""),
            "its tick was refused and the child restarted; the others traded",
            True,
        ),
        check(
            "print garbage on the protocol stream",
            failed.get("garbage", ""),
            "its answer was refused and the child restarted",
            True,
        ),
    ]


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
