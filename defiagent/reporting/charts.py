"""The report's charts as inline SVG, drawn with matplotlib's SVG backend (no display).

Labels come from the audit log (asset symbols, rule names): mathtext is off so a `$` is
just a dollar, and the SVG backend escapes the text it writes.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from defiagent.reporting.models import BehaviourReport

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib itself is imported when drawing

PALETTE = [
    "#2563eb",
    "#f59e0b",
    "#10b981",
    "#ef4444",
    "#8b5cf6",
    "#06b6d4",
    "#ec4899",
    "#84cc16",
    "#64748b",
    "#f97316",
]
_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: selectable, and styled by the page's font
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#94a3b8",
    "axes.labelcolor": "#334155",
    "xtick.color": "#475569",
    "ytick.color": "#475569",
    "axes.grid": True,
    "grid.color": "#e2e8f0",
    "grid.linewidth": 0.8,
}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _svg(fig, salt: str) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        FigureCanvasSVG(fig).print_svg(buf)
    text = buf.getvalue()
    start = text.find("<svg")  # drop the XML declaration and DOCTYPE: it is inline HTML
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[start:], flags=re.DOTALL)
    # Scale with the page: keep the viewBox, drop the fixed size, let CSS set the width.
    end = text.find(">")
    root = re.sub(r'\s(width|height)="[^"]*"', "", text[:end])
    return root + text[end:]


def _dates(stamps: list[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in stamps]


def _time_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))


def value_chart(report: BehaviourReport) -> str | None:
    """Portfolio value (line) and PnL (filled, second axis) over time."""
    import matplotlib

    points = [p for p in report.value_series if p.value is not None]
    if len(points) < 2:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(11, 3.6)
        ax = fig.add_subplot()
        when = _dates([p.ts for p in points])
        ax.plot(when, [p.value for p in points], color=PALETTE[0], lw=2, label="portfolio value")
        ax.set_ylabel("value (numeraire)")
        pnl = [(w, p.pnl) for w, p in zip(when, points, strict=True) if p.pnl is not None]
        if pnl:
            ax2 = ax.twinx()
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
            xs, ys = [w for w, _ in pnl], [v for _, v in pnl]
            ax2.fill_between(xs, ys, 0, where=[y >= 0 for y in ys], color="#10b981", alpha=0.25)
            ax2.fill_between(xs, ys, 0, where=[y < 0 for y in ys], color="#ef4444", alpha=0.25)
            ax2.plot(xs, ys, color="#059669", lw=1, label="PnL")
            ax2.axhline(0, color="#94a3b8", lw=0.8)
            ax2.set_ylabel("PnL")
            lines = ax.get_lines()[:1] + ax2.get_lines()[:1]
            ax.legend(lines, [line.get_label() for line in lines], loc="upper left")
        else:
            ax.legend(loc="upper left")
        for row in report.trades:
            ax.axvline(datetime.fromtimestamp(row.trade.at, UTC), color="#cbd5e1", lw=0.6, zorder=0)
        _time_axis(ax)
        ax.set_title("Portfolio value and PnL (grey lines: trades)", loc="left")
        return _svg(fig, "value")


def exposure_chart(report: BehaviourReport) -> str | None:
    """Exposure per asset, stacked, over time."""
    import matplotlib

    series = report.exposure_series
    assets = sorted({a for p in series for a in p.exposure})
    if len(series) < 2 or not assets:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(11, 3.4)
        ax = fig.add_subplot()
        when = _dates([p.ts for p in series])
        stacks = [[max(p.exposure.get(a, 0.0), 0.0) for p in series] for a in assets]
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(assets))]
        ax.stackplot(when, stacks, labels=assets, colors=colors, alpha=0.85)
        ax.set_ylabel("value (numeraire)")
        ax.legend(loc="upper left", ncols=min(len(assets), 6), fontsize=9)
        _time_axis(ax)
        ax.set_title("Exposure per asset (stacked)", loc="left")
        return _svg(fig, "exposure")


def refusals_chart(report: BehaviourReport) -> str | None:
    """Refusals counted by rule, as horizontal bars."""
    import matplotlib

    counts = list(report.refusals_by_rule.items())[:15]
    if not counts:
        return None
    counts.reverse()  # largest at the top
    with matplotlib.rc_context(_RC):
        fig = _figure(5.4, 0.45 * len(counts) + 1.2)
        ax = fig.add_subplot()
        ax.barh([r for r, _ in counts], [n for _, n in counts], color=PALETTE[3])
        ax.grid(axis="y", visible=False)
        for i, (_, n) in enumerate(counts):
            ax.text(n, i, f" {n}", va="center", color="#334155")
        ax.set_xlabel("refusals")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title("Refusals by rule", loc="left")
        return _svg(fig, "refusals")


def limits_chart(report: BehaviourReport) -> str | None:
    """Each limit's latest and highest use, as a share of the limit."""
    import matplotlib

    rows = report.limits
    if not rows:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(5.4, 0.5 * len(rows) + 1.2)
        ax = fig.add_subplot()
        names = [r.rule for r in rows]
        ys = list(range(len(rows)))
        ax.barh(
            [y + 0.2 for y in ys],
            [r.max_ratio * 100 for r in rows],
            0.4,
            color="#fca5a5",
            label="highest",
        )
        ax.barh(
            [y - 0.2 for y in ys],
            [r.ratio * 100 for r in rows],
            0.4,
            color=PALETTE[0],
            label="latest",
        )
        ax.set_yticks(ys, names)
        ax.axvline(100, color="#ef4444", lw=1.2, ls="--")
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("% of the limit")
        ax.set_xlim(0, max(110.0, *(r.max_ratio * 100 + 10 for r in rows)))
        fig.legend(loc="outside lower center", ncols=2, fontsize=9, frameon=False)
        ax.set_title("Limit usage (dashed: the limit)", loc="left")
        return _svg(fig, "limits")


def all_charts(report: BehaviourReport) -> dict[str, str]:
    charts = {
        "value": value_chart(report),
        "exposure": exposure_chart(report),
        "refusals": refusals_chart(report),
        "limits": limits_chart(report),
    }
    return {name: svg for name, svg in charts.items() if svg}
