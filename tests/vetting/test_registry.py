"""The check registry is the one source: the docs table and `vet --list-checks` follow it."""

from __future__ import annotations

from pathlib import Path

from defiagent.vetting.checks import REGISTRY
from defiagent.vetting.detectors import CUSTOM_DETECTORS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "allowlist.md"


def test_every_check_has_metadata_and_is_documented():
    text = DOCS.read_text()
    for check_id, cls in REGISTRY.items():
        assert cls.description
        assert cls.severity in ("error", "warning")
        assert f"| `{check_id}` |" in text, f"{check_id} is missing from docs/allowlist.md"
    for detector in CUSTOM_DETECTORS:
        assert f"`{detector.ARGUMENT}`" in text


def test_list_checks_prints_the_registry(capsys):
    import json

    from defiagent.cli.app import main

    assert main(["vet", "--list-checks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["checks"]
    assert {r["id"] for r in rows} == set(REGISTRY) | {d.ARGUMENT for d in CUSTOM_DETECTORS}
