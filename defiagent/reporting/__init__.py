"""Behaviour reports read back from the audit log: `defiagent report`."""

from defiagent.reporting.build import AUDIT_FILE, build_report, parse_since
from defiagent.reporting.html import render_html, write_html
from defiagent.reporting.models import BehaviourReport

__all__ = [
    "AUDIT_FILE",
    "BehaviourReport",
    "build_report",
    "parse_since",
    "render_html",
    "write_html",
]
