"""Draws the dashboard's panels, evaluated by scripts/dashboard/plot.ts, into a PNG.

    python plot.py panels.json out.png

Each panel at its gridPos (24 columns, as Grafana lays them out), in
Grafana's dark colours: a timeseries as lines, a stat as its last value
(lastNotNull, with the panel's unit, mappings, thresholds and noValue).
The shaded bands are the recording's events (the store refusing writes, the
database lost and restored), drawn to read the picture by: the dashboard
has no such annotations.
"""

import json
import sys
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

BACKGROUND, PANEL, TEXT, GRID, DIM = "#111217", "#181b1f", "#ccccdc", "#2c3235", "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff9830", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]
COLORS = {"green": "#73bf69", "red": "#f2495c", "yellow": "#fade2a", "orange": "#ff9830", "blue": "#8ab8ff"}
BANDS = [
    ("the store refuses writes", "the store takes writes again", "#f2495c", "the store refuses writes"),
    ("the database is lost", "recovery ended", "#5794f2", "the database lost, restored, replayed"),
]


def duration(seconds, decimals=None):
    if seconds is None:
        return ""
    s = abs(seconds)
    sign = "-" if seconds < 0 else ""
    if s == 0:
        return "0 s"
    if s < 1:
        return f"{sign}{s * 1000:.0f} ms"
    if s < 60:
        return f"{sign}{s:.0f} s" if decimals == 0 else f"{sign}{s:.2g} s" if s < 10 else f"{sign}{s:.0f} s"
    if s < 3600:
        minutes, rest = int(s // 60), int(round(s % 60))
        return f"{sign}{minutes} min {rest} s" if rest else f"{sign}{minutes} min"
    return f"{sign}{int(s // 3600)} h {int(s % 3600 // 60)} min"


def formatted(value, unit, decimals=None):
    if unit == "s":
        return duration(value, decimals)
    if unit == "dateTimeIso":
        return datetime.fromtimestamp(value / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if unit in ("ops", "reqps"):
        return f"{value:.2g} {'ops' if unit == 'ops' else 'req'}/s"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.3g}"


def last(values):
    for v in reversed(values):
        if v is not None:
            return v
    return None


def threshold_color(value, defaults):
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is None or value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


def mapped(value, defaults):
    for mapping in defaults.get("mappings", []):
        option = mapping.get("options", {}).get(str(int(value)) if float(value).is_integer() else str(value))
        if option:
            return option["text"], COLORS.get(option.get("color"), option.get("color"))
    return None


def draw_stat(ax, panel):
    defaults = panel["fieldConfig"]["defaults"]
    unit, decimals = defaults.get("unit", "none"), defaults.get("decimals")
    shown = [(s["name"], last(s["values"])) for s in panel["series"]]
    shown = [(name, v) for name, v in shown if v is not None]
    ax.set_xticks([])
    ax.set_yticks([])
    if not shown:
        ax.text(0.5, 0.42, defaults.get("noValue", "No data"), ha="center", va="center", color=DIM, fontsize=15)
        return
    text_mode = panel["options"].get("textMode", "value")
    for i, (name, value) in enumerate(shown):
        y = 0.42 if len(shown) == 1 else 0.62 - i * 0.38
        m = mapped(value, defaults)
        text, color = m if m else (formatted(value, unit, decimals), threshold_color(value, defaults))
        if text_mode == "name":
            text = name
        size = 20 if len(text) < 12 else 14 if len(text) < 20 else 11
        ax.text(0.5, y, text, ha="center", va="center", color=color, fontsize=size, fontweight="bold")
        if len(shown) > 1 and text_mode != "name":
            ax.text(0.5, y - 0.17, name, ha="center", va="center", color=DIM, fontsize=8)


def draw_timeseries(ax, panel, times, events, columns=3):
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "none")
    step = defaults.get("custom", {}).get("lineInterpolation") == "stepAfter"
    x = [datetime.fromtimestamp(t, timezone.utc) for t in times]
    for start, end, color, _ in bands(events):
        ax.axvspan(start, end, color=color, alpha=0.13, linewidth=0)
    for i, s in enumerate(panel["series"]):
        values = [float("nan") if v is None else v for v in s["values"]]
        ax.plot(x, values, color=PALETTE[i % len(PALETTE)], linewidth=1.4, label=s["name"],
                drawstyle="steps-post" if step else "default")
    ax.set_xlim(x[0], x[-1])
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=timezone.utc))
    ax.xaxis.set_major_locator(mdates.SecondLocator(bysecond=[0, 30]))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: formatted(v, unit) if unit != "none" else f"{v:g}"))
    ax.set_ylim(bottom=0)
    ax.grid(color=GRID, linewidth=0.6)
    ax.tick_params(colors=DIM, labelsize=7.5)
    if panel["series"]:
        ax.legend(loc="upper left", bbox_to_anchor=(-0.04, -0.09), ncol=columns, fontsize=7.5, frameon=False,
                  labelcolor=TEXT, handlelength=1.2, columnspacing=1.2)
    else:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", color=DIM, transform=ax.transAxes)


def bands(events):
    out = []
    for begin, end, color, label in BANDS:
        starts = [e["t"] for e in events if e["what"].startswith(begin)]
        ends = [e["t"] for e in events if e["what"].startswith(end)]
        if starts and ends:
            out.append((datetime.fromtimestamp(starts[0], timezone.utc),
                        datetime.fromtimestamp(ends[0], timezone.utc), color, label))
    return out


UNIT = 0.36  # inches per Grafana grid row
WIDTH, HEADER, MARGIN, GAP = 16.0, 0.85, 0.12, 0.1


def main(source, target):
    data = json.load(open(source))
    panels, times, events = data["panels"], data["times"], data["events"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = HEADER + rows * UNIT + MARGIN
    column = (WIDTH - 2 * MARGIN) / 24
    fig = plt.figure(figsize=(WIDTH, height), facecolor=BACKGROUND)

    def axes(left, top, width, tall):
        """Axes placed in inches from the figure's top left."""
        return fig.add_axes([left / WIDTH, 1 - (top + tall) / height, width / WIDTH, tall / height])

    start = datetime.fromtimestamp(times[0], timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    fig.text(MARGIN / WIDTH, 1 - 0.4 / height, f"{data['title']}  ·  a real run: {len(times)} scrapes of /metrics, "
             f"one a second, from {start}", color=TEXT, fontsize=14, va="center")
    fig.legend(handles=[Patch(color=c, alpha=0.35, label=label) for _, _, c, label in bands(events)],
               loc="center right", bbox_to_anchor=(1 - MARGIN / WIDTH, 1 - 0.4 / height), ncol=2, fontsize=8.5,
               frameon=False, labelcolor=DIM, title="shaded: the recording's events, not the dashboard's",
               title_fontsize=8.5).get_title().set_color(DIM)
    for panel in panels:
        g = panel["gridPos"]
        left, top = MARGIN + g["x"] * column, HEADER + g["y"] * UNIT
        width, tall = g["w"] * column - GAP, g["h"] * UNIT - GAP
        if panel["type"] == "row":
            fig.text(left / WIDTH, 1 - (top + tall / 2) / height, panel["title"], color=TEXT, fontsize=12.5,
                     fontweight="bold", va="center")
            continue
        frame = axes(left, top, width, tall)
        frame.set_facecolor(PANEL)
        for spine in frame.spines.values():
            spine.set_color(GRID)
        frame.text(0.1 / width, 1 - 0.17 / tall, panel["title"], color=TEXT, fontsize=9.5, va="center",
                   transform=frame.transAxes)
        if panel["type"] == "stat":
            draw_stat(frame, panel)
            continue
        frame.set_xticks([])
        frame.set_yticks([])
        columns = 2 if g["w"] <= 6 else 3
        legend_lines = 1 + (max(len(panel["series"]), 1) - 1) // columns
        bottom = 0.42 + 0.2 * legend_lines
        inner = axes(left + 0.75, top + 0.4, width - 0.9, tall - 0.4 - bottom)
        inner.set_facecolor(PANEL)
        for spine in inner.spines.values():
            spine.set_visible(False)
        draw_timeseries(inner, panel, times, events, columns)
    fig.savefig(target, dpi=100, facecolor=BACKGROUND)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
