"""Build a running agent from an AgentConfig: every part, its start-up checks, its teardown.

Start-up refuses (nothing is signed) when: the RPC is on another chain, the allowlist does
not verify, the planner's router or WETH is not an active entry, the kill switch is on, a
strategy's code or params differ from its signed pin, or a strategy's sandbox cannot
start. Each rule explains itself in the audit log and on the console at start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from web3 import Web3

from defiagent import secrets
from defiagent.agent.allowlist_source import load_allowlist, verify_on_chain
from defiagent.agent.executor_adapter import JournaledExecutor
from defiagent.agent.loop import Agent, AgentParts
from defiagent.agent.ports import CallExecutor, StrategyPort
from defiagent.agent.risk_desk import StrategyRisk
from defiagent.agent.state import load_points
from defiagent.agent.state_dir import ensure_private_state_dir
from defiagent.allowlist.models import ActiveAllowlist, Role
from defiagent.broadcast.base import Submitter
from defiagent.chain.forwarder import redact_url
from defiagent.chain.quorum import ProviderQuorum
from defiagent.chain.rpc import RpcError
from defiagent.config import AgentConfig
from defiagent.errors import ConfigError, InfraError, Refused
from defiagent.execution.executor import Executor
from defiagent.execution.journal import Journal
from defiagent.execution.planner import Planner
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_exit_rules, build_rules
from defiagent.market.chainlink import FeedSpec
from defiagent.market.http_price import HttpPriceReference
from defiagent.market.models import PriceCheck, TokenInfo
from defiagent.market.observer import MarketObserver
from defiagent.market.references import ChainlinkReference, ReferenceSource
from defiagent.market.sanity import PriceSanityLimits
from defiagent.monitoring.alerts import build_alerts
from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.auto_kill import AutoKill
from defiagent.monitoring.interfaces import Alert, AlertKind, AlertSeverity
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.monitoring.metrics import AgentMetrics
from defiagent.net.tls import verify as tls_verify
from defiagent.operator.limits import require_approved_limits
from defiagent.protocols import registry
from defiagent.risk.drift import DriftMonitor
from defiagent.risk.trades import TradeLedger
from defiagent.secrets.agent import prepare_agent_secrets
from defiagent.signing.base import Signer, set_alert_hook
from defiagent.simulation.batch import BatchRpcClient
from defiagent.simulation.fork import ForkManager
from defiagent.simulation.simulator import Simulator
from defiagent.strategy.host import StrategyHost
from defiagent.strategy.in_process import InProcessStrategy
from defiagent.strategy.secrets import resolve_secrets

AUDIT_FILE = "audit.jsonl"
JOURNAL_FILE = "journal.sqlite"


def build_references(cfg: AgentConfig) -> list[ReferenceSource]:
    """The sources `market.references` names, in that order (docs/price-sanity.md)."""
    m = cfg.market
    max_age = m.max_reference_age_seconds
    sources: list[ReferenceSource] = []
    for kind in m.references:
        if kind == "twap":  # each protocol's own (Uniswap V2: its pairs' cumulative prices)
            for protocol in registry.PROTOCOLS:
                sources.extend(protocol.price_references(m))
        elif kind == "chainlink":
            if not m.chainlink_feeds:
                raise ConfigError(
                    "config field market.chainlink_feeds: required for references=chainlink"
                )
            specs = [
                FeedSpec(
                    base=f.base,
                    quote=f.quote,
                    address=f.address,
                    max_age_seconds=f.max_age_seconds or max_age,
                    min_answer=f.min_answer,
                    max_answer=f.max_answer,
                )
                for f in m.chainlink_feeds
            ]
            sources.append(ChainlinkReference(specs))
        elif kind == "http":
            sources.append(HttpPriceReference(m.http, max_age_seconds=max_age))
    return sources


class AgentRuntime:
    """Context manager: `with AgentRuntime(cfg, ...) as rt: rt.agent.tick()`."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        rpc_url: str | None = None,  # dry-run points this at a fork of cfg.rpc_url
        signer: Signer | None = None,
        allowlist: ActiveAllowlist | None = None,
        strategies: Sequence[Any] | None = None,  # tests only: in-process strategy objects
        executor: CallExecutor | None = None,
        mode: str = "run",
    ) -> None:
        self.cfg = cfg
        self.rpc_url = rpc_url or cfg.rpc_url
        self._signer = signer
        self._allowlist = allowlist
        self._strategies = strategies
        self._executor = executor
        self.mode = mode
        self._stack = contextlib.ExitStack()
        self.agent: Agent | None = None
        self.explanations: list[str] = []
        self._journal: Journal | None = None  # opened by _read_state when we build the executor

    @property
    def audit_path(self) -> Path:
        return self.cfg.state_dir / AUDIT_FILE

    def __enter__(self) -> AgentRuntime:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.audit.record("stop", {"mode": self.mode, "ticks": self.agent.tick_no})
        self._stack.close()

    def _start(self) -> None:
        # Every secret reference resolved into memory and every endpoint TLS-checked first:
        # a missing secret (exit 3) or a plain-http remote (exit 2) stops the start here.
        given_rpc = self.cfg.rpc_url
        self.cfg = prepare_agent_secrets(self.cfg)
        if self.rpc_url == given_rpc:  # not a dry-run's fork URL: the resolved one
            self.rpc_url = self.cfg.rpc_url
        self._stack.callback(secrets.current().install_sighup())  # SIGHUP: re-read them
        cfg = self.cfg
        ensure_private_state_dir(cfg.state_dir)
        # Before any state file is read or written: an encrypted state dir's data keys are
        # unwrapped now (a wrong or missing key refuses the start, never a fresh state).
        from defiagent.state_crypto.active import open_state_encryption

        open_state_encryption(cfg.state_dir, cfg.state.encryption)
        self._read_state(cfg.state_dir)
        if cfg.retention.audit_max_age_days and self.audit_path.is_file():
            from defiagent.privacy.retention import prune_audit_log

            prune_audit_log(self.audit_path, max_age_days=cfg.retention.audit_max_age_days)
        # The head's key: DEFIAGENT_AUDIT_HEAD_KEY (a reference) or a key file outside the
        # state dir; every command that writes the log reads it the same way.
        self.audit = self._stack.enter_context(AuditLog(self.audit_path))
        self.kill_switch = KillSwitch(cfg.state_dir, audit=self.audit)

        rpc = BatchRpcClient(self.rpc_url, timeout=cfg.simulation.rpc_timeout_seconds)
        self._stack.callback(rpc.close)
        try:
            chain_id = rpc.call_int("eth_chainId")
        except RpcError as exc:
            raise InfraError(f"the RPC does not work: {exc}") from exc
        if chain_id != cfg.chain_id:
            raise ConfigError(
                f"config field chain_id is {cfg.chain_id} but the RPC is on chain {chain_id}"
            )
        allowlist = self._allowlist or load_allowlist(cfg.allowlist_dir, cfg.chain_id)
        if allowlist.chain_id != cfg.chain_id:
            raise Refused(f"the allowlist is for chain {allowlist.chain_id}, not {cfg.chain_id}")
        verify_on_chain(allowlist, rpc)  # every pin (codehash, proxy implementation) on chain now
        addresses = cfg.protocols.addresses()
        for name, address in registry.contracts(addresses).items():
            if allowlist.get(address) is None:
                raise Refused(
                    f"{name} {address} is not an active allowlist entry, so nothing could trade"
                )

        status = self.kill_switch.status()
        if status.on:
            raise Refused(
                f"the kill switch is on ({status.reason or 'no reason given'}); "
                "turn it off with `defiagent kill-switch off` to start"
            )
        require_approved_limits(cfg, cfg.state_dir, self.audit)

        signer = self._signer or self._build_signer()
        agent_address = signer.address  # contacts a Ledger/KMS: unreachable means no start
        safe_execution = None
        if cfg.safe is not None:
            from defiagent.safe.runtime import open_safe

            # The Safe holds the funds and is "the agent" to every rule and check; the key
            # only calls its guard. Refused unless the guard holds this allowlist's rules.
            safe_execution = open_safe(
                self.rpc_url, cfg.safe, allowlist, signer.address, cfg.chain_id
            )
            agent_address = cfg.safe.address

        strategies = self._start_strategies()
        w3 = Web3(
            Web3.HTTPProvider(
                self.rpc_url,
                request_kwargs={
                    "timeout": cfg.simulation.rpc_timeout_seconds,
                    "verify": tls_verify(),  # never off; [tls] ca_bundle may add a CA
                },
            )
        )
        # V2 pairs; pools of other kinds (Uniswap V3) are checked by their own protocol.
        others = {a for p in registry.PROTOCOLS for a in p.own_pools(addresses)}
        pools = cfg.market.pools or [
            e.address
            for e in allowlist.entries.values()
            if e.role == Role.POOL and not e.revoked and e.address not in others
        ]
        tokens = cfg.market.tokens or [
            e.address
            for e in allowlist.entries.values()
            if e.role in (Role.TOKEN, Role.WRAPPED_NATIVE) and not e.revoked
        ]
        # What the protocols issue to the agent (a vault's shares) is held and valued too.
        issued = [t for p in registry.PROTOCOLS for t in p.tokens(addresses)]
        tokens = list(dict.fromkeys([*tokens, *issued]))
        limits = PriceSanityLimits(
            max_deviation_bps=cfg.market.max_deviation_bps,
            max_reference_age_seconds=cfg.market.max_reference_age_seconds,
            min_sources=cfg.market.min_sources,
        )

        def protocol_checks(block: int, now: int, known: dict[str, TokenInfo]) -> list[PriceCheck]:
            # Pools that are not V2 pairs (Uniswap V3's), each protocol checking its own.
            return [
                check
                for protocol in registry.PROTOCOLS
                for check in protocol.price_checks(
                    w3, addresses, known, block=block, now=now, limits=limits
                )
            ]

        def protocol_prices(block: int, prices: Mapping[str, float]) -> dict[str, float]:
            return {
                token: price
                for protocol in registry.PROTOCOLS
                for token, price in protocol.token_prices(
                    w3, addresses, prices, block=block
                ).items()
            }

        observer = MarketObserver(
            w3,
            pools=pools,
            tokens=tokens,
            references=build_references(cfg),
            limits=limits,
            numeraire=cfg.market.numeraire,
            protocol_checks=protocol_checks,
        )
        rules = build_rules(cfg.guard, cfg.risk)
        guard = Guard(rules)
        strategy_risk = self._strategy_risk(strategies)
        fork = self._stack.enter_context(
            ForkManager(
                cfg.simulation.fork_url or self.rpc_url,
                log_dir=cfg.state_dir / "fork",
                rpc_timeout=cfg.simulation.rpc_timeout_seconds,
            )
        )
        executor = self._executor or self._build_executor(signer)
        metrics = AgentMetrics()
        if cfg.metrics.port:
            metrics.serve(cfg.metrics.port, cfg.metrics.address)
        self.metrics = metrics
        self.alerts = build_alerts(cfg.alerts, audit=self.audit, metrics=metrics)
        self._stack.callback(self.alerts.close)
        self.auto_kill = AutoKill(
            self.kill_switch,
            cfg.auto_kill,
            audit=self.audit,
            alerts=self.alerts,
            agent=agent_address,
        )
        self._watch_signatures(agent_address)
        self.signer = signer
        self.allowlist = allowlist
        self.agent = Agent(
            AgentParts(
                agent=agent_address,
                chain_id=cfg.chain_id,
                rpc=rpc,
                allowlist=allowlist,
                strategies=strategies,
                observer=observer,
                planner=Planner(agent_address, addresses, transfer_fees=allowlist.transfer_fees()),
                guard=guard,
                simulator=Simulator(fork),
                executor=executor,
                audit=self.audit,
                kill_switch=self.kill_switch,
                metrics=metrics,
                weth=cfg.protocols.weth,
                rate_window_seconds=cfg.guard.rate_limit.window_seconds,
                spend_window_seconds=cfg.guard.window_value_cap.window_seconds,
                loss_window_seconds=cfg.risk.max_daily_loss.window_hours * 3600,
                max_gas_per_tx=min(cfg.simulation.max_gas_per_tx, cfg.fees.max_gas_limit),
                share_tolerance_bps=cfg.simulation.share_tolerance_bps,
                priority_fee_per_gas=cfg.fees.priority_fee_per_gas,
                spenders=registry.spenders(addresses),
                state_dir=cfg.state_dir,
                strategy_risk=strategy_risk,
                alerts=self.alerts,
                auto_kill=self.auto_kill,
                drift=self._drift_monitors(strategies),
                pins=self.pins,
                quorum=self._quorum(),
                round_trip=cfg.guard.honeypot,
                requote_max_bps=cfg.guard.slippage.max_slippage_bps,
                safe=safe_execution,
                token_prices=protocol_prices if issued else None,
            )
        )
        self.explanations = [
            f"[{s.name}] {s.description}"
            + (f" (pin {self.pins[s.name]})" if s.name in self.pins else "")
            for s in strategies
        ]
        self.explanations += guard.explain()
        for name, sr in strategy_risk.items():
            own = [r.explain() for r in sr.guard.rules if r.group == "risk"]
            own += [r.explain() for r in sr.exits]
            self.explanations += [f"[{name}] {line}" for line in own]
        self.audit.record(
            "start",
            {
                "mode": self.mode,
                "agent": agent_address,
                "chain_id": cfg.chain_id,
                "config": cfg.redacted(),
                "allowlist": {a: e.name for a, e in allowlist.entries.items()},
                "rules": [r.id for r in rules],
                "explain": self.explanations,
            },
        )

    def _read_state(self, state_dir: Path) -> None:
        """The journal and the files the limits count from (Agent's spend, portfolio and
        trades files), read whole before anything starts: a damaged one refuses the start
        here, before the RPC, the signer or a strategy is touched. Never skipped, never
        made anew."""
        if self._executor is None:
            self._journal = self._stack.enter_context(Journal(state_dir / JOURNAL_FILE))
        load_points(state_dir / "spend.jsonl")
        load_points(state_dir / "portfolio.jsonl")
        TradeLedger(state_dir / "trades.jsonl")

    def _quorum(self) -> ProviderQuorum | None:
        cfg = self.cfg
        if not cfg.rpc_urls or self.rpc_url != cfg.rpc_url:  # dry-run: one fork, no quorum
            return None
        quorum = ProviderQuorum(
            cfg.rpc_urls, quorum=cfg.rpc_quorum, timeout=cfg.simulation.rpc_timeout_seconds
        )
        self._stack.callback(quorum.close)
        return quorum

    def _start_strategies(self) -> list[StrategyPort]:
        """Each configured strategy in its own sandboxed child, after its pin checks out.

        Tests may hand in Python objects instead (`strategies=`): those run in process
        through `InProcessStrategy`, never a path `run`, `dry-run` or the demo take."""
        self.pins: dict[str, str] = {}
        self.warnings: list[str] = []
        self.certified: dict[str, Any] = {}  # strategy -> its BacktestCertificate
        if self._strategies is not None:
            ports: list[StrategyPort] = []
            for s in self._strategies:
                if isinstance(s, StrategyHost):
                    self._stack.callback(s.close)
                    s.start()
                    ports.append(s)
                else:
                    ports.append(InProcessStrategy(s))
            return ports
        cfg = self.cfg
        from defiagent.strategy.pins import verify_pins

        self.pins = verify_pins(cfg)
        if self.mode == "run" and cfg.require_backtest:
            self._require_backtests()
        hidden = [cfg.state_dir, cfg.allowlist_dir, cfg.pins_file, Path.home()]
        if cfg.source is not None:  # the config itself, were it inside a strategy's folder
            hidden.append(cfg.source)
        path = getattr(cfg.signer, "path", None)
        if isinstance(path, Path):
            hidden.append(path)
        kinds = list(cfg.guard.intent_kinds.allowed_kinds)
        hosts: list[StrategyPort] = []
        for sc in cfg.strategy_configs():
            if sc.sandbox == "none":
                warning = (
                    f'strategy {sc.name} runs WITHOUT a sandbox (sandbox = "none"): it can '
                    "read and write what the agent can; for development only"
                )
                self.warnings.append(warning)
                self.audit.record("sandbox-disabled", {"strategy": sc.name, "warning": warning})
            host = StrategyHost(
                sc,
                secrets=resolve_secrets(sc),
                intent_kinds=kinds,
                hidden=hidden,
                on_event=self.audit.record,
            )
            self._stack.callback(host.close)
            host.start()
            self.audit.record(
                "strategy-started",
                {
                    "strategy": sc.name,
                    "pin": self.pins.get(sc.name, ""),
                    "sandbox": sc.sandbox,
                    "network": list(sc.network),
                    "description": host.description,
                },
            )
            hosts.append(host)
        return hosts

    def _strategy_risk(self, strategies: Sequence[StrategyPort]) -> dict[str, StrategyRisk]:
        """Each strategy's guard and exit rules: [risk] with its own overrides applied."""
        cfg = self.cfg
        configs = {sc.name: sc for sc in cfg.strategy_configs()}
        out = {}
        for s in strategies:
            sc = configs.get(s.name)
            risk = cfg.risk_for(sc) if sc else cfg.risk
            out[s.name] = StrategyRisk(
                guard=Guard(build_rules(cfg.guard, risk)), exits=build_exit_rules(risk)
            )
        return out

    def _require_backtests(self) -> None:
        """Each strategy's signed backtest certificate, for its code and params as they are
        now, passed and recent (Refused naming the reason: docs/backtest.md)."""
        from defiagent.backtest.certificate import require_certificates

        self.certified = require_certificates(self.cfg)
        for name, cert in self.certified.items():
            self.audit.record(
                "backtest-certificate-checked",
                {
                    "strategy": name,
                    "issued_at": cert.issued_at,
                    "signer": cert.signer,
                    "data_sha256": cert.data.sha256,
                    "mandate": cert.mandate.model_dump(exclude_none=True),
                },
            )

    def _drift_monitors(self, strategies: Sequence[StrategyPort]) -> dict[str, DriftMonitor]:
        """One drift monitor per strategy with a mandate: its backtest certificate's (what
        was tested) when `run` checked one, else the one its config declares."""
        configs = {sc.name: sc for sc in self.cfg.strategy_configs()}
        out = {}
        for s in strategies:
            cert = self.certified.get(s.name)
            mandate = cert.mandate if cert is not None else None
            if mandate is None and s.name in configs:
                mandate = configs[s.name].mandate
            if mandate is not None:
                out[s.name] = DriftMonitor(mandate, strategies=[s.name])
        return out

    def _watch_signatures(self, agent_address: str) -> None:
        """A signature that does not recover to the signer alerts and trips the kill switch."""
        alerts, auto_kill = self.alerts, self.auto_kill

        def on_mismatch(error: Any, context: Any) -> None:
            alerts.send(
                Alert(
                    kind=AlertKind.SIGNATURE_MISMATCH,
                    severity=AlertSeverity.CRITICAL,
                    title="the signer returned a signature that does not check out",
                    detail=str(getattr(error, "message", error)),
                    agent=agent_address,
                    data={k: str(v) for k, v in dict(context).items()},
                )
            )
            auto_kill.signature_mismatch(str(getattr(error, "message", error)))

        previous = set_alert_hook(on_mismatch)
        self._stack.callback(set_alert_hook, previous)

    def _build_executor(self, signer: Signer) -> CallExecutor:
        cfg = self.cfg
        journal = self._journal  # opened and checked at start (_read_state)
        assert journal is not None
        executor = Executor(
            self.rpc_url,
            signer,
            journal,
            cfg.fees,
            kill_switch=self.kill_switch,
            audit=self.audit,
            chain_id=cfg.chain_id,
            receipt_timeout=cfg.receipt_timeout_seconds,
            rpc_timeout=cfg.simulation.rpc_timeout_seconds,
            submitter=self._build_submitter(),
        )
        # Whatever an earlier run left in flight is settled before anything new is signed.
        settled = executor.reconcile()
        if settled:
            self.audit.record(
                "reconciled", {"entries": [r.model_dump(mode="json") for r in settled]}
            )
        return JournaledExecutor(executor)

    def _build_submitter(self) -> Submitter | None:
        """`[broadcast]`: None for the executor's public path; a private relay only for `run`
        and `demo` (a dry-run sends to its local fork, never to the real relay)."""
        cfg = self.cfg.broadcast
        if cfg.mode == "public":
            return None
        if self.mode == "dry-run":
            self.audit.record("broadcast", {"mode": "public", "why": "dry-run: the fork only"})
            return None
        from defiagent.broadcast import build_submitter
        from defiagent.chain.rpc import JsonRpcClient

        chain = JsonRpcClient(self.rpc_url, timeout=self.cfg.simulation.rpc_timeout_seconds)
        self._stack.callback(chain.close)
        submitter = build_submitter(cfg, chain, audit=self.audit)
        self.audit.record(
            "broadcast",
            {
                "mode": cfg.mode,
                "relay": redact_url(cfg.relay_url or ""),
                "fallback": cfg.fallback,
                "max_blocks": cfg.max_blocks,
            },
        )
        return submitter

    def _build_signer(self) -> Signer:
        from defiagent.signing.config import build_signer

        signer = build_signer(self.cfg.signer)
        close = getattr(signer, "close", None)
        if callable(close):  # a Ledger transport or a KMS client
            self._stack.callback(close)
        return signer
