"""`defiagent rules list`: every guard rule, risk limit and outcome check, from the registries."""

from __future__ import annotations

import typer
from rich.table import Table

from defiagent.cli.output import console, emit
from defiagent.guard.registry import LISTED
from defiagent.guard.touched import TouchedCodePinned
from defiagent.simulation import checks as outcome_checks

app = typer.Typer(help="The guard rules, risk limits and outcome checks.", no_args_is_help=True)


def rules_metadata() -> list[dict]:
    rows = [cls.metadata() for cls in LISTED]
    t = TouchedCodePinned
    rows.append(
        {
            "id": t.id,
            "title": t.title,
            "group": "outcome",
            "severity": str(t.severity),
            "description": t.description,
            "threat": t.threat,
            "config_section": None,
            "config": {},
        }
    )
    for check in outcome_checks.describe():
        rows.append(
            {
                "id": check["id"],
                "title": check["id"],
                "group": "outcome",
                "severity": check["severity"],
                "description": check["description"],
                "threat": check.get("rationale", ""),
                "config_section": None,
                "config": {},
            }
        )
    return rows


def markdown_table() -> str:
    """The rules table of docs/agent.md, generated from the same metadata."""
    lines = [
        "| id | group | severity | what it refuses | config |",
        "|---|---|---|---|---|",
    ]
    for r in rules_metadata():
        section = f"`[{r['config_section']}]`" if r["config_section"] else ""
        lines.append(
            f"| `{r['id']}` | {r['group']} | {r['severity']} | {r['description']} | {section} |"
        )
    return "\n".join(lines) + "\n"


@app.command("list")
def list_rules(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    markdown: bool = typer.Option(False, "--markdown", help="The table for docs/agent.md."),
) -> None:
    """List every rule: id, group (guard, risk, outcome), severity, what it refuses, its config."""
    rows = rules_metadata()
    if markdown and not as_json:
        typer.echo(markdown_table(), nl=False)
        return

    def human() -> None:
        table = Table(title="defiagent rules", show_lines=False)
        table.add_column("id", no_wrap=True)
        for col in ("group", "severity", "what it refuses", "config"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(
                r["id"], r["group"], r["severity"], r["description"], r["config_section"] or ""
            )
        console.print(table)

    emit({"ok": True, "rules": rows}, as_json=as_json, human=human)
