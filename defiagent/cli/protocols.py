"""`defiagent protocols list`: the protocols the agent knows, from the registry."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from defiagent.cli.output import console, emit
from defiagent.protocols import registry

app = typer.Typer(help="The protocols the agent can trade on.", no_args_is_help=True)


def protocols_metadata() -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "title": p.title,
            "intent_kinds": sorted(p.kinds),
            "venue": any(v == p.name for _, v in registry.routes()),
            "contracts": [
                {
                    "kind": s.kind,
                    "role": str(s.role),
                    "functions": [f.signature for f in s.functions],
                }
                for s in p.scopes()
            ],
            "settings": f"[protocols.{p.name}]" if p.Settings is not None else None,
        }
        for p in registry.PROTOCOLS
    ]


def markdown_table() -> str:
    """The table of docs/protocols.md, generated from the registry."""
    lines = [
        "| protocol | intent kinds | swap venue | contracts (allowlist role: functions) |",
        "|---|---|---|---|",
    ]
    for p in protocols_metadata():
        kinds = ", ".join(f"`{k}`" for k in p["intent_kinds"])
        contracts = "; ".join(
            f"{c['kind']} ({c['role']}): "
            + (", ".join(f"`{f.split('(')[0]}`" for f in c["functions"]) or "none")
            for c in p["contracts"]
        )
        venue = f"`{p['name']}`" if p["venue"] else ""
        lines.append(f"| {p['title']} (`{p['name']}`) | {kinds} | {venue} | {contracts} |")
    return "\n".join(lines) + "\n"


@app.command("list")
def list_protocols(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    markdown: bool = typer.Option(False, "--markdown", help="The table for docs/protocols.md."),
) -> None:
    """List every protocol: its intent kinds, whether swaps may name it, its contracts."""
    rows = protocols_metadata()
    if markdown and not as_json:
        typer.echo(markdown_table(), nl=False)
        return

    def human() -> None:
        table = Table(title="defiagent protocols")
        table.add_column("protocol", no_wrap=True)
        for col in ("intent kinds", "contracts", "settings"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(
                r["name"],
                ", ".join(r["intent_kinds"]),
                ", ".join(f"{c['kind']} ({c['role']})" for c in r["contracts"]),
                r["settings"] or "",
            )
        console.print(table)

    emit({"ok": True, "protocols": rows}, as_json=as_json, human=human)
