"""/stats: a PNG chart of the last 14 local days, sent as a photo with a one-line caption.

The chart is drawn with matplotlib's object API on the Agg canvas (off-screen; no pyplot, so
no global figure registry and nothing to leak between renders), in a worker thread so the
event loop keeps serving other updates. matplotlib is imported on first use only: it is
large, and most processes never draw a chart.
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler

from handlers.common import Context, deps, me, now, reply
from handlers.render import esc
from services import rules, stats
from services.models import ARMS

NO_DATA = (
    "📊 Nothing logged in the last 14 days, so there is no chart yet.\n"
    "Log some time with <code>/log cs 25 what you did</code> and come back to /stats."
)

#: pixels = inches × DPI: 1200 × 800, readable on a phone
FIGSIZE = (12, 8)
DPI = 100
COLORS = {"ibm": "#2b6cb0", "cs": "#dd6b20"}
RISK_COLOR = "#c53030"
BASE_FONT = 17

# matplotlib's object API is safe for separate figures, but its font cache and text layout
# are shared: one render at a time keeps it simple.
_RENDER_LOCK = threading.Lock()


def _day_label(day: stats.DayStats) -> str:
    """E.g. "Sun\n25" (with "25 h" under a daylight-saving day), "today\n7" for today."""
    head = "today" if day.is_today else f"{day.day:%a}"
    label = f"{head}\n{day.day.day}"
    if day.hours != 24:
        label += f"\n({day.hours} h)"
    return label


def render_chart(view: stats.StatsView) -> bytes:
    """Draw the chart as PNG bytes: stacked hours per theater, risk on a 0–100 axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _RENDER_LOCK:
        fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        try:
            _draw(fig, view)
            out = io.BytesIO()
            fig.savefig(out, format="png", dpi=DPI)
        finally:
            fig.clear()
    return out.getvalue()


def _draw(fig: Any, view: stats.StatsView) -> None:
    days = view.days
    xs = list(range(len(days)))
    ax = fig.add_subplot()
    shares = view.shares
    bottom = [0.0] * len(days)
    for arm in ARMS:
        hours = [d.minutes[arm] / 60 for d in days]
        label = (
            f"{arm}: {rules.format_number(view.hours(arm))} h"
            f" · plan {view.energy[arm]}% · logged {rules.format_number(shares[arm])}%"
        )
        ax.bar(xs, hours, bottom=bottom, color=COLORS[arm], width=0.7, label=label)
        bottom = [b + h for b, h in zip(bottom, hours, strict=True)]
    for x, total in zip(xs, bottom, strict=True):
        if total > 0:
            ax.annotate(
                f"{total:.1f}",
                (x, total),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize=BASE_FONT - 4,
            )
    ax.set_xticks(xs, [_day_label(d) for d in days], fontsize=BASE_FONT - 3)
    ax.tick_params(axis="y", labelsize=BASE_FONT - 2)
    ax.set_ylabel("hours logged per day", fontsize=BASE_FONT)
    ax.set_ylim(0, max([*bottom, 1.0]) * 1.15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)

    risk_ax = ax.twinx()
    risks = [float(d.risk) for d in days]
    risk_ax.plot(
        xs,
        risks,
        color=RISK_COLOR,
        linewidth=3,
        marker="o",
        markersize=7,
        label=f"overload risk (right axis, capacity {view.capacity_hours} h/week)",
    )
    risk_ax.axhline(
        view.overload_threshold,
        color=RISK_COLOR,
        linestyle="--",
        linewidth=1.5,
        alpha=0.6,
        label=f"nudge threshold {view.overload_threshold}%",
    )
    risk_ax.annotate(
        f"{view.risk_now_rounded}% now",
        (xs[-1], risks[-1]),
        xytext=(0, 12),
        textcoords="offset points",
        ha="center",
        va="bottom",
        color=RISK_COLOR,
        fontsize=BASE_FONT,
        fontweight="bold",
    )
    risk_ax.set_ylim(0, 100)
    risk_ax.set_ylabel("overload risk %", fontsize=BASE_FONT, color=RISK_COLOR)
    risk_ax.tick_params(axis="y", labelsize=BASE_FONT - 2, colors=RISK_COLOR)

    handles, labels = ax.get_legend_handles_labels()
    risk_handles, risk_labels = risk_ax.get_legend_handles_labels()
    fig.legend(
        handles + risk_handles,
        labels + risk_labels,
        loc="outside lower center",
        ncols=2,
        fontsize=BASE_FONT - 3,
        frameon=False,
    )
    first, last = days[0].day, days[-1].day
    ax.set_title(
        f"Last {len(days)} days · {first:%d %b} – {last:%d %b} · {view.timezone}",
        fontsize=BASE_FONT + 4,
        fontweight="bold",
    )


async def stats_command(update: Update, context: Context) -> None:
    """Send the 14-day chart, or a friendly line when there is nothing to chart."""
    view = await stats.stats_view(deps(context).db, me(update), now(context))
    if view.total_minutes == 0:
        await reply(update, NO_DATA)
        return
    png = await asyncio.to_thread(render_chart, view)
    assert update.effective_chat is not None
    await update.effective_chat.send_photo(png, caption=esc(view.caption()))


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("stats", stats_command))
