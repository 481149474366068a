"""`defiagent demo`: the agent, end to end, on a local chain with real DeFi bytecode.

Deploys what `devnet up` does on anvil (WETH9, two ERC-20s, Uniswap V2 and V3, an ERC-4626
vault), vets and approves them into an allowlist (two throwaway reviewers), funds a
throwaway encrypted keystore, then runs mean reversion on the V2 pair and a V3 pool and a
treasury that parks idle funds in the vault for N ticks while other traders move the
pools, every transaction sent through a private relay, with a rogue strategy on tick 2.
Each strategy runs in its own sandbox, pinned by the operator. Every transaction is
simulated on a fork and checked before it is signed; every rogue request is refused with
its reason, and from tick 3 every attempt of the rogue to escape its sandbox is shown
blocked. See defiagent/agent/demo.py.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from defiagent.agent.demo import ESCAPE_TICK, ROGUE_TICK, run_demo
from defiagent.agent.demo_signers import BACKENDS
from defiagent.cli.agent_output import print_tick, summary_table, totals
from defiagent.cli.output import console, emit, err_console
from defiagent.errors import ConfigError, Refused


def demo(
    ticks: int = typer.Option(8, "--ticks", min=1, max=200, help="Agent ticks to run."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    signer: str = typer.Option(
        "keystore",
        "--signer",
        help="The agent's signer: keystore, ledger (the real Ethereum app in Speculos), kms "
        "(local KMS) or remote (the key in a separate `signer serve` process that re-checks "
        "every transaction; forged requests are then sent to it directly).",
    ),
    secrets_backend: str = typer.Option(
        "env",
        "--secrets",
        help="Where the demo's secrets live: env (in memory) or openbao (a local OpenBao, "
        "read back through vault: references; see docs/secrets.md).",
    ),
    safe: bool = typer.Option(
        False,
        "--safe",
        help="Trade from a Safe through its on-chain guard; then send calls forged with the "
        "agent's key straight to the chain (docs/custody.md).",
    ),
) -> None:
    """Run the guarded agent on a local chain: honest trades sent, rogue requests refused."""
    if signer not in BACKENDS:
        raise ConfigError(f"--signer must be one of {', '.join(BACKENDS)}, not {signer!r}")
    status = err_console.status("starting", spinner="dots")
    if not as_json:
        status.start()

    def on_event(kind: str, data: Any) -> None:
        if as_json:
            return
        if kind == "stage":
            status.update(str(data))
        elif kind == "explain":
            status.stop()
            console.print("[bold]the guard, as configured:[/]")
            for line in data:
                console.print(f"  [dim]{escape(line)}[/]", highlight=False)
            status.start()
        elif kind == "tick":
            status.stop()
            print_tick(console, data)
            status.update(f"tick {data.tick + 1} of {ticks}")
            if data.tick < ticks:
                status.start()

    try:
        result = run_demo(
            ticks,
            on_event=on_event,
            signer_backend=signer,
            secrets_backend=secrets_backend,
            safe=safe,
        )
    finally:
        status.stop()
    rogue = [i for t in result.ticks for i in t.intents if i.strategy == "rogue"]
    escaped = [e.attempt for e in result.escapes if e.attempted and not e.blocked]
    summary = totals(result.ticks) | {
        "rogue_requests": len(rogue),
        "rogue_executed": sum(1 for i in rogue if i.status == "executed"),
        "escapes_tried": sum(1 for e in result.escapes if e.attempted),
        "escapes_blocked": sum(1 for e in result.escapes if e.attempted and e.blocked),
        "forged_sent": len(result.forged),
        "forged_executed": sum(1 for f in result.forged if f.executed),
        "signer_forged": len(result.signer_forged),
        "signer_forged_signed": sum(1 for f in result.signer_forged if not f.refused),
        "private_transactions": len(result.relay.tx_hashes) if result.relay else 0,
        "public_sends": result.relay.public_sends if result.relay else 0,
    }
    doc = {"ok": True, "summary": summary, **result.model_dump(mode="json")}

    def human() -> None:
        console.print(
            summary_table(result.ticks, title=f"{ticks} ticks, rogue on tick {ROGUE_TICK}")
        )
        table = Table(title="Safe balances" if result.safe else "agent balances")
        for col in ("asset", "start", "end"):
            table.add_column(col)
        for asset, start in result.balances_start.items():
            table.add_row(asset, f"{start:,.4f}", f"{result.balances_end[asset]:,.4f}")
        console.print(table)
        sandbox = Table(title=f"the rogue's escape attempts, from tick {ESCAPE_TICK}")
        for col in ("attempt", "inside the sandbox", "checked outside", "result"):
            sandbox.add_column(col)
        for e in result.escapes:
            verdict = (
                ("[green]blocked[/]" if e.blocked else "[red]ESCAPED[/]")
                if e.attempted
                else "[dim]not reached[/]"
            )
            sandbox.add_row(escape(e.attempt), escape(e.inside), escape(e.outside), verdict)
        console.print(sandbox)
        if result.safe:
            console.print(
                f"Safe {result.safe['safe']}, guard {result.safe['guard']}, agent key "
                f"{result.safe['agent_key']} (every trade: one transaction through the guard)",
                highlight=False,
            )
            forged = Table(title="calls forged with the agent's key, sent straight to the chain")
            for col in ("attempt", "transaction", "on chain"):
                forged.add_column(col)
            for f in result.forged:
                verdict = (
                    "[red]EXECUTED[/]" if f.executed else f"[green]reverted[/] {escape(f.reason)}"
                )
                forged.add_row(escape(f.attempt), f.tx_hash[:18] + "…", verdict)
            console.print(forged)
        if result.signer_forged:  # --signer remote
            refused = Table(title="transactions forged past the agent, sent to the signer socket")
            for col in ("attempt", "signer process", "rule and reason"):
                refused.add_column(col)
            for f in result.signer_forged:
                verdict = "[green]refused[/]" if f.refused else "[red]SIGNED[/]"
                refused.add_row(escape(f.attempt), verdict, escape(f"{f.rule}: {f.reason}"))
            console.print(refused)
        if result.relay is not None:
            r = result.relay
            console.print(
                f"private relay {r.relay}: the agent sent it {len(r.tx_hashes)} transactions "
                f"({r.bundles} plans as bundles, each landing whole in one block, and "
                f"{r.private_submissions} alone); included {r.included}, expired {r.expired}; "
                f"sent to the public mempool: {r.public_sends}",
                highlight=False,
            )
        for protocol, why in result.left_out.items():
            console.print(f"not allowlisted: {escape(protocol)}: {escape(why)}", highlight=False)
        console.print(
            "strategy pins (code and params, signed by the operator): "
            + ", ".join(f"{k} {v}" for k, v in result.pins.items()),
            highlight=False,
        )
        for what, ref in result.secrets.items():  # --secrets openbao: references, not values
            console.print(f"secret {escape(what)}: read from {escape(ref)}", highlight=False)
        alerts = Table(title=f"alerts received by the local webhook ({len(result.alerts)})")
        for col in ("severity", "kind", "alert"):
            alerts.add_column(col)
        for a in result.alerts:
            alerts.add_row(
                str(a.get("severity", "")),
                str(a.get("kind", "")),
                escape(f"{a.get('title', '')}: {a.get('detail', '')}"),
            )
        console.print(alerts)
        console.print(f"metrics, as Prometheus scrapes them: {result.metrics_url}", highlight=False)
        for line in result.metrics:
            console.print(f"  [dim]{escape(line)}[/]", highlight=False)
        problem = result.audit.problem
        if result.audit.ok:
            verdict = f"[green]intact[/], {result.audit.records} records"
        else:
            assert problem is not None  # a log that does not verify names its problem
            verdict = f"[red]BROKEN[/] at line {problem.line}"
        console.print(f"audit log: {result.audit_log} ({verdict})", highlight=False)
        console.print(
            f"verify it yourself: defiagent audit-log verify {result.audit_log}", highlight=False
        )

    emit(doc, as_json=as_json, human=human)
    if (
        not result.audit.ok
        or summary["rogue_executed"]
        or not result.alerts
        or escaped
        or summary["forged_executed"]
        or (safe and len(result.forged) == 0)
        or summary["signer_forged_signed"]
        or (signer == "remote" and not result.signer_forged)
        or summary["public_sends"]
    ):
        raise Refused("the demo's guarantees did not hold (see above)")
