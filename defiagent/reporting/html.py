"""The report as one self-contained HTML page: inline CSS, charts as inline SVG, no URL.

Everything taken from the audit log is untrusted and goes through jinja2's autoescape;
only the SVG this package drew is marked safe.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from defiagent.errors import InfraError
from defiagent.reporting.models import BehaviourReport


def _num(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:+,.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _unix(value: float) -> str:
    return _when(datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds"))


def _when(value: str) -> str:
    """An ISO UTC time as the page shows it: "2025-06-01 02:06:00"."""
    return value.replace("T", " ").removesuffix("+00:00")


def _short(value: str | None, keep: int = 10) -> str:
    if not value:
        return ""
    return value if len(value) <= keep + 6 else f"{value[:keep]}…{value[-4:]}"


def _tone(value: float | None) -> str:
    if value is None or value == 0:
        return ""
    return "pos" if value > 0 else "neg"


TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{ title }}</title>
<style>
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f8fafc; --card:#fff;
        --pos:#047857; --neg:#b91c1c; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#0f172a; color:#f8fafc; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:650; }
header .meta { color:#cbd5e1; font-size:13px; }
header .meta b { color:#fff; font-weight:600; }
main { max-width:1240px; margin:0 auto; padding:20px 32px 48px; }
.banner { background:#b91c1c; color:#fff; padding:16px 32px; font-weight:700; font-size:15px;
          border-bottom:4px solid #7f1d1d; }
.banner small { display:block; font-weight:400; margin-top:4px; }
.ok { color:var(--pos); font-weight:600; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:12px;
         margin:4px 0 22px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:22px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }
.card .s { color:var(--muted); font-size:12px; }
.pos { color:var(--pos); } .neg { color:var(--neg); }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
          padding:16px 18px; margin:0 0 18px; }
section h2 { margin:0 0 10px; font-size:16px; }
section p.note { color:var(--muted); margin:0 0 10px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:18px; }
.grid2 > table { align-self:start; }
td.mono { white-space:nowrap; }
@media (max-width: 900px) { .grid2 { grid-template-columns:1fr; } }
.chart svg { width:100%; height:auto; display:block; }
table { width:100%; border-collapse:collapse; font-size:13px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f1f5f9; color:#334155; font-weight:600; position:sticky; top:0; }
td.t { white-space:nowrap; font-variant-numeric:tabular-nums; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fbfdff; }
code, .mono { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; }
.tag { display:inline-block; padding:1px 7px; border-radius:999px; font-size:12px;
       background:#e2e8f0; color:#334155; }
.tag.critical, .tag.on { background:#fee2e2; color:#991b1b; }
.tag.warning { background:#fef3c7; color:#92400e; }
.tag.off { background:#dcfce7; color:#166534; }
.empty { color:var(--muted); font-style:italic; }
.scroll { max-height:520px; overflow:auto; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
</style>
</head>
<body>
{% if not r.chain.ok %}
<div class="banner" id="chain-broken">⚠ {{ r.chain.banner }}
<small>Run <code>defiagent audit-log verify {{ r.source }}</code> and treat this report as evidence of tampering or corruption, not as a record.</small></div>
{% endif %}
<header>
  <h1>{{ title }}</h1>
  <div class="meta">
    Period <b>{{ (r.period_start or "—")|when }}</b> to <b>{{ (r.period_end or "—")|when }}</b> UTC
    {% if r.since %}(since {{ r.since }}){% endif %}
    · agent <b class="mono">{{ r.agent or "unknown" }}</b>
    · strategies <b>{{ r.strategies|join(", ") or "—" }}</b>
    · {{ s.records }} records
    · chain {% if r.chain.ok %}<b>intact</b>{% else %}<b>BROKEN</b>{% endif %}
  </div>
</header>
<main>
<div class="cards" id="summary">
  <div class="card"><div class="k">Trades</div><div class="v">{{ s.trades }}</div>
    <div class="s">{{ num(s.traded_value) }} traded</div></div>
  <div class="card"><div class="k">Value change</div>
    <div class="v {{ tone(s.value_change) }}">{{ signed(s.value_change) }}</div>
    <div class="s">{{ num(s.value_start) }} → {{ num(s.value_end) }}</div></div>
  <div class="card"><div class="k">Realized PnL</div>
    <div class="v {{ tone(s.realized_pnl) }}">{{ signed(s.realized_pnl) }}</div>
    <div class="s">win rate {{ pct(s.win_rate, 0) }} ({{ s.winning_trades }}/{{ s.closed_trades }})</div></div>
  <div class="card"><div class="k">Max drawdown</div>
    <div class="v">{{ "—" if s.max_drawdown_pct is none else "%.2f%%"|format(s.max_drawdown_pct) }}</div>
    <div class="s">PnL at end {{ signed(s.pnl_end) }}</div></div>
  <div class="card"><div class="k">Intents</div><div class="v">{{ s.intents }}</div>
    <div class="s">{{ s.executed }} executed · {{ s.failed }} failed</div></div>
  <div class="card"><div class="k">Refused</div><div class="v">{{ s.refused_intents }}</div>
    <div class="s">{{ s.refusals }} rule refusals</div></div>
  <div class="card"><div class="k">Mean slippage</div>
    <div class="v">{{ "—" if s.mean_slippage_bps is none else "%.1f"|format(s.mean_slippage_bps) }}<small> bps</small></div>
    <div class="s">gas {{ num(s.gas_cost_value, 4) }}</div></div>
  <div class="card"><div class="k">Alerts</div><div class="v">{{ s.alerts }}</div>
    <div class="s">kill switch {% if s.kill_switch_on is none %}unchanged{% elif s.kill_switch_on %}<span class="tag on">ON</span>{% else %}<span class="tag off">off</span>{% endif %}</div></div>
  <div class="card"><div class="k">Drift</div>
    <div class="v {{ 'neg' if r.drift.findings else '' }}">{{ r.drift.findings|length if r.drift.mandate else "—" }}</div>
    <div class="s">{{ "findings vs the mandate" if r.drift.mandate else "no mandate" }}</div></div>
</div>

{% if charts.value %}<section class="chart" id="chart-value">{{ charts.value }}</section>{% endif %}
{% if charts.exposure %}<section class="chart" id="chart-exposure">{{ charts.exposure }}</section>{% endif %}
{% if charts.refusals or charts.limits %}
<div class="grid2">
  {% if charts.refusals %}<section class="chart" id="chart-refusals">{{ charts.refusals }}</section>{% endif %}
  {% if charts.limits %}<section class="chart" id="chart-limits">{{ charts.limits }}</section>{% endif %}
</div>
{% endif %}

<section id="drift">
  <h2>Drift against the mandate</h2>
  {% if r.drift.error %}<p class="note neg">{{ r.drift.error }}</p>{% endif %}
  {% if r.drift.mandate %}
  <p class="note">Mandate from {{ r.drift.source }}: {{ r.drift.mandate.describe() }}.</p>
  {% if r.drift.findings %}
  <table><thead><tr><th>When</th><th>Strategy</th><th>Metric</th><th class="n">Live</th><th class="n">Bound</th><th class="n">Samples</th><th>Finding</th></tr></thead>
  <tbody>{% for f in r.drift.findings %}
  <tr><td class="t">{{ unix(f.at) }}</td><td>{{ f.strategy }}</td><td>{{ f.label }}</td>
      <td class="n">{{ num(f.live) }}</td><td class="n">{{ num(f.bound) }}</td><td class="n">{{ f.samples }}</td><td>{{ f.message }}</td></tr>
  {% endfor %}</tbody></table>
  {% else %}<p class="ok">Live behaviour stayed inside the mandate.</p>{% endif %}
  {% else %}<p class="empty">No mandate: declare one in the strategy config or pass <code>--mandate FILE</code>.</p>{% endif %}
</section>

<section id="trades">
  <h2>Trades ({{ r.trades|length }})</h2>
  {% if r.trades %}
  <div class="scroll"><table><thead><tr><th>Time</th><th>Strategy</th><th>Code pin</th><th>Intent</th><th>Kind</th><th>In</th><th>Out</th>
    <th class="n">Value in</th><th class="n">Value out</th><th class="n">Slippage (bps)</th><th class="n">Realized PnL</th><th class="n">Gas</th><th>Tx</th></tr></thead>
  <tbody>{% for row in r.trades %}{% set t = row.trade %}
  <tr class="trade-row"><td class="t">{{ row.time|when }}</td><td>{{ t.strategy }}</td><td class="mono">{{ t.pin or "-" }}</td><td class="mono" title="{{ t.intent_id }}">{{ short(t.intent_id) }}</td>
    <td>{{ t.kind }}{% if t.exit_reason %} <span class="tag warning">{{ t.exit_reason }}</span>{% endif %}</td>
    <td title="{{ t.token_in or '' }}">{{ row.token_in_label }}</td><td title="{{ t.token_out or '' }}">{{ row.token_out_label }}</td>
    <td class="n">{{ num(t.value_in) }}</td><td class="n">{{ num(t.value_out) }}</td>
    <td class="n">{{ num(t.slippage_bps, 1) }}</td>
    <td class="n {{ tone(t.realized_pnl) }}">{{ signed(t.realized_pnl) if t.realized_pnl is not none else "" }}</td>
    <td class="n">{{ num(t.gas_cost_value, 4) }}</td>
    <td class="mono">{% for h in t.tx_hashes %}<span title="{{ h }}">{{ short(h) }}</span>{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
  {% endfor %}</tbody></table></div>
  {% else %}<p class="empty">No trades in this period.</p>{% endif %}
</section>

<section id="refusals">
  <h2>Refusals ({{ r.refusals|length }})</h2>
  {% if r.refusals %}
  <div class="grid2">
  <table><thead><tr><th>Rule</th><th class="n">Count</th></tr></thead>
  <tbody>{% for rule, n in r.refusals_by_rule.items() %}<tr class="refusal-rule"><td>{{ rule }}</td><td class="n">{{ n }}</td></tr>{% endfor %}</tbody></table>
  <table><thead><tr><th>Rule</th><th>Reason</th><th class="n">Count</th></tr></thead>
  <tbody>{% for c in r.refusals_by_reason %}<tr class="refusal-reason"><td>{{ c.rule }}</td><td>{{ c.reason }}</td><td class="n">{{ c.count }}</td></tr>{% endfor %}</tbody></table>
  </div>
  <details><summary>Every refusal</summary>
  <div class="scroll"><table><thead><tr><th>Time</th><th>Intent</th><th>Strategy</th><th>Stage</th><th>Rule</th><th>Reason</th></tr></thead>
  <tbody>{% for x in r.refusals %}<tr><td class="t">{{ x.time|when }}</td><td class="mono">{{ short(x.intent_id) }}</td><td>{{ x.strategy }}</td><td>{{ x.stage }}</td><td>{{ x.rule }}</td><td>{{ x.reason }}</td></tr>{% endfor %}</tbody></table></div>
  </details>
  {% else %}<p class="empty">Nothing was refused in this period.</p>{% endif %}
</section>

<section id="limits">
  <h2>Limit usage</h2>
  {% if r.limits %}
  <table><thead><tr><th>Rule</th><th class="n">Used</th><th class="n">Limit</th><th class="n">Latest</th><th class="n">Highest</th><th>Highest at</th></tr></thead>
  <tbody>{% for l in r.limits %}<tr><td>{{ l.rule }}</td><td class="n">{{ num(l.used) }}</td><td class="n">{{ num(l.limit) }}</td>
    <td class="n {{ 'neg' if l.ratio >= 1 else '' }}">{{ pct(l.ratio) }}</td><td class="n {{ 'neg' if l.max_ratio >= 1 else '' }}">{{ pct(l.max_ratio) }}</td><td class="t">{{ l.max_at|when }}</td></tr>{% endfor %}</tbody></table>
  {% else %}<p class="empty">No risk records with limit usage in this period.</p>{% endif %}
  {% if r.paused %}<p class="note neg">Paused at the end: {% for k, v in r.paused.items() %}{{ k }} ({{ v }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
</section>

<div class="grid2">
<section id="alerts">
  <h2>Alerts ({{ r.alerts|length }})</h2>
  {% if r.alerts %}
  <table><thead><tr><th>Time</th><th>Severity</th><th>Alert</th></tr></thead>
  <tbody>{% for a in r.alerts %}<tr><td class="t">{{ a.time|when }}</td><td><span class="tag {{ a.severity }}">{{ a.severity }}</span></td>
    <td><b>{{ a.title }}</b>{% if a.detail %}<br><span class="note">{{ a.detail }}</span>{% endif %}</td></tr>{% endfor %}</tbody></table>
  {% else %}<p class="empty">No alerts.</p>{% endif %}
</section>
<section id="kill-switch">
  <h2>Kill switch</h2>
  {% if r.kill_switch %}
  <table><thead><tr><th>Time</th><th>State</th><th>By</th><th>Reason</th></tr></thead>
  <tbody>{% for k in r.kill_switch %}<tr><td class="t">{{ k.time|when }}</td><td><span class="tag {{ 'on' if k.on else 'off' }}">{{ "ON" if k.on else "off" }}</span></td><td>{{ k.changed_by }}</td><td>{{ k.reason }}</td></tr>{% endfor %}</tbody></table>
  {% else %}<p class="empty">Not switched in this period.</p>{% endif %}
  {% if r.failures %}
  <h2 style="margin-top:16px">Failed executions ({{ r.failures|length }})</h2>
  <table><thead><tr><th>Time</th><th>Intent</th><th>Reason</th></tr></thead>
  <tbody>{% for f in r.failures %}<tr><td class="t">{{ f.time|when }}</td><td class="mono">{{ short(f.intent_id) }}</td><td>{{ f.reason }}</td></tr>{% endfor %}</tbody></table>
  {% endif %}
</section>
</div>

<section id="records">
  <h2>Records by kind</h2>
  <p class="note">{% for k, n in r.kinds.items() %}<span class="tag">{{ k }} {{ n }}</span> {% endfor %}
  {% if s.unreadable_lines %}<span class="tag critical">{{ s.unreadable_lines }} unreadable</span>{% endif %}</p>
</section>
<footer>Generated {{ r.generated_at }} by defiagent from <span class="mono">{{ r.source }}</span>.</footer>
</main>
</body>
</html>
"""

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["when"] = _when
_ENV.globals.update(num=_num, signed=_signed, pct=_pct, unix=_unix, short=_short, tone=_tone)
_TEMPLATE = _ENV.from_string(TEMPLATE)


def render_html(report: BehaviourReport, *, charts: bool = True) -> str:
    drawn: dict[str, str] = {}
    if charts:
        from defiagent.reporting.charts import all_charts

        drawn = all_charts(report)
    title = f"Behaviour report — {report.agent or 'defiagent'}"
    return _TEMPLATE.render(
        r=report,
        s=report.summary,
        title=title,
        charts={name: Markup(svg) for name, svg in drawn.items()},  # noqa: S704 (our own SVG)
    )


def write_html(report: BehaviourReport, path: Path | str) -> Path:
    """Render and write atomically (a reader never sees half a page)."""
    path = Path(path)
    page = render_html(report)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, path)
    except OSError as exc:
        raise InfraError(f"the report could not be written to {path}: {exc}") from exc
    return path
