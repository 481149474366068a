"""`defiagent backtest --html FILE`: the result as one self-contained page, in the style of
`defiagent report` (its stylesheet and chart helpers): figures, equity and drawdown
charts, every trade, refusals by reason, and the certificate when one was issued."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from defiagent.backtest.models import BacktestResult
from defiagent.errors import InfraError
from defiagent.reporting.html import TEMPLATE as REPORT_TEMPLATE

_STYLE = REPORT_TEMPLATE[REPORT_TEMPLATE.index("<style>") : REPORT_TEMPLATE.index("</style>") + 8]

PAGE = (
    r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{ title }}</title>
"""
    + _STYLE
    + r"""
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <div class="meta">
    Blocks <b>{{ r.start_block }}</b> to <b>{{ r.end_block }}</b>
    ({{ when(r.start_time) }} to {{ when(r.end_time) }} UTC)
    · {{ m.n_ticks }} ticks{% if r.warmup %} after {{ r.warmup }} warm-up ticks{% endif %}
    · data sha256 <b class="mono">{{ r.data_hash[:16] }}…</b>
  </div>
</header>
<main>
<div class="cards" id="summary">
  <div class="card"><div class="k">Total return</div>
    <div class="v {{ tone(m.total_return) }}">{{ pct(m.total_return) }}</div>
    <div class="s">{{ num(r.equity[0] if r.equity else None) }} → {{ num(r.equity[-1] if r.equity else None) }}</div></div>
  <div class="card"><div class="k">Sharpe / Sortino</div>
    <div class="v">{{ num(m.sharpe, 3) }}</div><div class="s">Sortino {{ num(m.sortino, 3) }} (per tick)</div></div>
  <div class="card"><div class="k">Max drawdown</div>
    <div class="v neg">{{ pct(m.max_drawdown) }}</div></div>
  <div class="card"><div class="k">Trades</div><div class="v">{{ m.n_trades }}</div>
    <div class="s">{{ m.n_refused }} refused · win rate {{ pct(m.win_rate, 0) }}</div></div>
  <div class="card"><div class="k">Turnover</div><div class="v">{{ num(m.turnover) }}x</div>
    <div class="s">exposure {{ pct(m.exposure, 0) }}</div></div>
  <div class="card"><div class="k">Gas</div><div class="v">{{ num(m.gas_cost) }}</div>
    <div class="s">in the numeraire</div></div>
</div>
{% if cert %}
<section id="certificate"><h2>Certificate</h2>
<p class="{{ 'ok' if cert.passed else 'neg' }}">{{ 'PASSED' if cert.passed else 'FAILED' }} —
signed by <span class="mono">{{ cert.signer }}</span> at {{ cert.issued_at }}; code sha256 <span class="mono">{{ cert.code_sha256[:16] }}…</span>,
params sha256 <span class="mono">{{ cert.params_sha256[:16] }}…</span></p>
{% if cert.gates %}<table><thead><tr><th>gate</th><th>verdict</th><th>detail</th></tr></thead><tbody>
{% for g in cert.gates %}<tr><td>{{ g.gate }}</td><td>{{ 'pass' if g.passed else 'FAIL' }}</td><td>{{ g.detail }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="empty">No overfitting gate ran.</p>{% endif %}
</section>
{% endif %}
{% if charts.equity %}<section class="chart" id="equity">{{ charts.equity }}</section>{% endif %}
<section id="trades"><h2>Trades ({{ r.trades|length }})</h2>
{% if r.trades %}<div class="scroll"><table><thead><tr><th>time (UTC)</th><th>block</th><th>in → out</th>
<th class="n">value in</th><th class="n">value out</th><th class="n">gas</th><th class="n">realized PnL</th><th>why</th></tr></thead><tbody>
{% for t in r.trades %}<tr><td class="t">{{ when(t.timestamp) }}</td><td class="t">{{ t.block }}</td>
<td>{{ sym(t.token_in) }} → {{ sym(t.token_out) }}{% if t.exit_rule %} <span class="tag warning">{{ t.exit_rule }}</span>{% endif %}</td>
<td class="n">{{ num(t.value_in) }}</td><td class="n">{{ num(t.value_out) }}</td><td class="n">{{ num(t.gas_cost, 4) }}</td>
<td class="n {{ tone(t.realized_pnl) }}">{{ num(t.realized_pnl) }}</td><td>{{ t.reason }}</td></tr>{% endfor %}
</tbody></table></div>{% else %}<p class="empty">No trade.</p>{% endif %}
</section>
<section id="refusals"><h2>Refusals and pauses</h2>
{% if reasons %}<table><thead><tr><th>reason</th><th class="n">ticks</th></tr></thead><tbody>
{% for reason, count in reasons %}<tr><td>{{ reason }}</td><td class="n">{{ count }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="empty">None.</p>{% endif %}
</section>
<footer>defiagent backtest · strategy {{ r.strategy }} · params {{ params }}</footer>
</main>
</body>
</html>
"""
)


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _tone(value: float | None) -> str:
    return "" if not value else ("pos" if value > 0 else "neg")


def _when(ts: int | float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(num=_num, pct=_pct, tone=_tone, when=_when)
_TEMPLATE = _ENV.from_string(PAGE)


def equity_chart(result: BacktestResult) -> str | None:
    """Equity (line) and drawdown (filled, second axis), trades as grey lines."""
    import matplotlib

    from defiagent.reporting.charts import _RC, PALETTE, _dates, _figure, _svg, _time_axis

    if len(result.equity) < 2:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(11, 3.6)
        ax = fig.add_subplot()
        when = _dates([float(t) for t in result.timestamps])
        ax.plot(when, result.equity, color=PALETTE[0], lw=1.6, label="equity")
        ax.set_ylabel("equity (numeraire)")
        peak, dd = -float("inf"), []
        for v in result.equity:
            peak = max(peak, v)
            dd.append(-(peak - v) / peak * 100 if peak > 0 else 0.0)
        ax2 = ax.twinx()
        ax2.grid(False)
        ax2.fill_between(when, dd, 0, color="#ef4444", alpha=0.2)
        ax2.set_ylabel("drawdown %")
        for t in result.trades[:500]:  # more would only grey the chart
            ax.axvline(datetime.fromtimestamp(t.timestamp, UTC), color="#cbd5e1", lw=0.4, zorder=0)
        _time_axis(ax)
        ax.set_title("Equity and drawdown (grey lines: trades)", loc="left")
        return _svg(fig, "equity")


def render_html(
    result: BacktestResult,
    *,
    symbols: dict[str, str] | None = None,
    certificate: Any = None,
    charts: bool = True,
) -> str:
    drawn = {}
    if charts:
        svg = equity_chart(result)
        if svg:
            drawn["equity"] = Markup(svg)  # noqa: S704 (our own SVG)
    names = symbols or {}
    reasons: Counter[str] = Counter()
    for d in result.decisions:
        for r in d.refused:
            reasons[r[:300]] += 1
        if d.error:
            reasons[d.error[:300]] += 1
    return _TEMPLATE.render(
        r=result,
        m=result.metrics,
        cert=certificate,
        charts=drawn,
        reasons=reasons.most_common(30),
        params=result.params,
        sym=lambda a: names.get(a, a[:10] + "…" if a else "—"),
        title=f"Backtest — {result.strategy}",
    )


def write_html(result: BacktestResult, path: Path | str, **kw: Any) -> Path:
    """Render and write atomically (a reader never sees half a page)."""
    path = Path(path)
    page = render_html(result, **kw)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, path)
    except OSError as exc:
        raise InfraError(f"the backtest page could not be written to {path}: {exc}") from exc
    return path
