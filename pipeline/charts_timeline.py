"""A bar chart as SVG text, drawn on the server by matplotlib: the console runs no script, and a PDF needs a picture.

The same numbers give the same bytes: ids in the SVG come from a fixed hash salt, no date is written, and text stays
text (svg.fonttype none), so a screen reader or a PDF's text layer reads the labels. The SVG is made to be inlined in
a page: matplotlib's <style> (a `*` rule that would reach the whole page) and <metadata> are dropped, and its style
attributes become SVG presentation attributes (which WeasyPrint's HTML reader does not mistake for page CSS). Whoever
shows a chart shows its numbers as a table beside it too (the chart is a picture of that table).
"""
from __future__ import annotations

import io
import threading
import xml.etree.ElementTree as ET
from typing import Sequence

MAX_TICK_LABELS = 12
_RC_LOCK = threading.Lock()  # rc_context changes matplotlib's global settings: one chart at a time
SVG_NS, XLINK_NS = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
DROPPED = {f"{{{SVG_NS}}}style", f"{{{SVG_NS}}}metadata"}  # see inline_svg


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
    return inline_svg(out.getvalue(), title)


def inline_svg(document: str, title: str) -> str:
    """matplotlib's SVG document as an element for an HTML page (no XML prologue, no <style>, no <metadata>).

    Names are written as plain `svg`, `g`, `xlink:href`: ElementTree's prefix registry is global, and a prefix another
    module registered (or none: `ns0:`) would change the bytes and break the page's SVG."""
    root = ET.fromstring(document)
    for parent in list(root.iter()):
        for child in [c for c in parent if c.tag in DROPPED]:
            parent.remove(child)
    for element in root.iter():
        element.tag = element.tag.removeprefix(f"{{{SVG_NS}}}")
        for name in [n for n in element.attrib if n.startswith(f"{{{XLINK_NS}}}")]:
            element.set(name.replace(f"{{{XLINK_NS}}}", "xlink:"), element.attrib.pop(name))
        for declaration in element.attrib.pop("style", "").split(";"):
            name, _, value = declaration.partition(":")
            if name.strip() and value.strip():
                element.set(name.strip(), value.strip())
    root.set("xmlns", SVG_NS)
    root.set("xmlns:xlink", XLINK_NS)
    root.set("role", "img")
    root.set("aria-label", title)
    return ET.tostring(root, encoding="unicode")
