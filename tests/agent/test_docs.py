"""docs/agent.md's rules table is the registry's, not a copy that can drift."""

from __future__ import annotations

from pathlib import Path

from defiagent.cli.rules import markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"


def test_rules_table_in_the_docs_matches_the_registry():
    text = DOC.read_text()
    table = text.split("<!-- rules:begin -->\n", 1)[1].split("<!-- rules:end -->", 1)[0]
    assert table.strip() == markdown_table().strip(), (
        "regenerate it: defiagent rules list --markdown"
    )
