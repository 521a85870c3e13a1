"""A bar chart as SVG text, drawn on the server by matplotlib: the console runs no script, and a PDF needs a picture.

The same numbers give the same bytes: ids in the SVG come from a fixed hash salt, no date is written, and text stays
text (svg.fonttype none), so a screen reader or a PDF's text layer reads the labels. Whoever shows a chart shows its
numbers as a table beside it too (the chart is a picture of that table, for people who would rather look).
"""
from __future__ import annotations

import io
import re
import threading
from html import escape
from typing import Sequence

MAX_TICK_LABELS = 12
_RC_LOCK = threading.Lock()  # rc_context changes matplotlib's global settings: one chart at a time
_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)  # the XML declaration and DOCTYPE, invalid inside an HTML page


def bar_chart_svg(labels: Sequence[str], values: Sequence[int | float], title: str) -> str:
    """An `<svg>` element (no XML prologue, so it goes inline in HTML) with one bar per label."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    from matplotlib import rc_context  # imported here: matplotlib costs the CLI half a second to start
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with _RC_LOCK, rc_context({"svg.hashsalt": "fcmon", "svg.fonttype": "none", "font.family": "DejaVu Sans",
                               "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}):
        figure = Figure(figsize=(6.4, 2.6), layout="constrained")
        axes = figure.subplots()
        positions = list(range(len(labels)))
        axes.bar(positions, values, color="#35608c", width=0.8)
        step = max(1, -(-len(labels) // MAX_TICK_LABELS))  # ceiling division: at most MAX_TICK_LABELS labels shown
        axes.set_xticks(positions[::step], [str(label) for label in labels][::step], rotation=45 if step > 1 or len(labels) > 6 else 0,
                        ha="right" if step > 1 or len(labels) > 6 else "center")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylim(bottom=0, top=max([*values, 1]) * 1.15)
        axes.set_title(title, loc="left", fontsize=10)
        axes.grid(axis="y", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    svg = _PROLOGUE.sub("", out.getvalue(), count=1)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title, quote=True)}" ', 1)
