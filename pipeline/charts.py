"""Charts drawn on the server as SVG (matplotlib), each with the numbers it draws, for pages that run no script.

A Chart holds its categories, its series and the SVG; templates show both with the `chart` macro of
pipeline/templates/chart.html (the figure, then a table with a caption, for screen readers and auditors).

The SVG is made to be inlined in a page: the same data gives the same bytes (a fixed hash salt, no date), labels
come from data and stay text (escaped as XML; never read as mathtext; controls replaced), ids are prefixed with
the chart's key so several charts share a page, and only drawing elements are kept: no script, no event
attributes, no link out of the figure, no stylesheet that would reach the rest of the page.
"""
from __future__ import annotations

import functools
import io
import itertools
import re
import threading
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Mapping, Sequence

SVG_NS, XLINK_NS = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
DRAWING = {"svg", "g", "defs", "clipPath", "pattern", "path", "rect", "use", "text", "tspan", "polyline", "line", "circle"}
# matplotlib's style attributes become SVG's presentation attributes (WeasyPrint reads those, and a page needs no CSS)
PRESENTATION = {"fill", "fill-opacity", "stroke", "stroke-width", "stroke-linejoin", "stroke-linecap", "stroke-opacity",
                "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "opacity", "font-size", "font-family",
                "font-weight", "font-style", "text-anchor", "clip-path"}
DROPPED = {"metadata", "style"}  # matplotlib's <style> is `*{...}`: inline in HTML it would style the whole page
RC = {"svg.hashsalt": "fcmon", "svg.fonttype": "none", "text.parse_math": False, "font.family": "DejaVu Sans",
      "font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 72}
# Okabe and Ito's palette, told apart by people who do not see every colour; hatches tell the second round apart
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
HATCHES = ("", "//", "..", "xx")
MAX_LABEL = 32  # on the axis; the table holds the whole label
KEY = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_LOCK = threading.Lock()  # matplotlib's settings are global: one chart at a time


@dataclass(frozen=True)
class Chart:
    """A bar chart and its numbers: one value per category in each series."""
    key: str  # unique on a page: the SVG's ids start with it
    title: str
    caption: str  # what the numbers are, under the title and as the table's caption
    category_label: str  # the heading of the categories' column
    categories: tuple[str, ...]
    series: tuple[tuple[str, tuple[int, ...]], ...]
    svg: str
    total_row: bool = True  # the sums down the categories mean something (not when they count different things)
    total_column: bool = True  # the sums across the series mean something (not when one query is in two of them)

    @property
    def rows(self) -> list[tuple[str, list[int], int]]:
        """Each category with its value in every series and their total, as the table shows them."""
        return [(c, values, sum(values)) for c, values in
                ((c, [v[i] for _, v in self.series]) for i, c in enumerate(self.categories))]

    @property
    def totals(self) -> list[int]:
        return [sum(values) for _, values in self.series]


def bar_chart(key: str, title: str, caption: str, category_label: str, counts: Mapping[str, int],
              series_name: str = "count", *, horizontal: bool = False, total_row: bool = True) -> Chart:
    """One bar per category."""
    return bars(key, title, caption, category_label, list(counts), {series_name: list(counts.values())},
                horizontal=horizontal, total_row=total_row)


def bars(key: str, title: str, caption: str, category_label: str, categories: Sequence[str],
         series: Mapping[str, Sequence[int]], *, stacked: bool = True, horizontal: bool = False,
         total_row: bool = True, total_column: bool | None = None) -> Chart:
    """Bars per category, one layer (stacked) or one bar beside the others (grouped) per series. The table sums each
    series down its categories (total_row) and, when stacked and unless told otherwise, each category across the
    series (total_column)."""
    if not KEY.match(key):
        raise ValueError(f"chart key {key!r}: lower-case letters, digits and '-'")
    cats = tuple(str(c) for c in categories)
    layers = tuple((str(name), tuple(int(v) for v in values)) for name, values in series.items())
    if any(len(values) != len(cats) for _, values in layers):
        raise ValueError(f"chart {key}: every series needs one value per category")
    svg = _draw(key, title, cats, layers, stacked=stacked, horizontal=horizontal)
    across = (stacked if total_column is None else total_column) and len(layers) > 1
    return Chart(key, title, caption, category_label, cats, layers, svg, total_row, across)


def days(start: datetime, end: datetime) -> list[date]:
    """The UTC days of [start, end)."""
    first, last = start.astimezone(timezone.utc).date(), (end.astimezone(timezone.utc) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)] if end > start else []


def months(start: datetime, end: datetime) -> list[str]:
    """The UTC months (YYYY-MM) of [start, end)."""
    found, day = [], start.astimezone(timezone.utc).date().replace(day=1)
    stop = end.astimezone(timezone.utc) - timedelta(microseconds=1)
    while day <= stop.date() and end > start:
        found.append(f"{day:%Y-%m}")
        day = (day + timedelta(days=32)).replace(day=1)
    return found


def buckets(start: datetime, end: datetime, by_day_up_to: int = 92) -> tuple[str, list[str]]:
    """What to count by over [start, end): ("day", YYYY-MM-DD...) up to `by_day_up_to` days, else ("month", YYYY-MM...)."""
    span = days(start, end)
    if len(span) <= by_day_up_to:
        return "day", [d.isoformat() for d in span]
    return "month", months(start, end)


def bucket_of(at: datetime | str, unit: str) -> str:
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    text = moment.astimezone(timezone.utc).date().isoformat()
    return text if unit == "day" else text[:7]


def count_by(pairs: Iterable[tuple[str, str]], categories: Sequence[str],
             weights: Iterable[int] | None = None) -> dict[str, list[int]]:
    """(series, category) pairs counted into one list per series, in the order of `categories`, each pair as one or
    as its weight (counts made elsewhere, e.g. by SQLite); pairs whose category is not listed are left out. Series
    in order of their first appearance."""
    at = {c: i for i, c in enumerate(categories)}
    series: dict[str, list[int]] = {}
    for (name, category), weight in zip(pairs, itertools.repeat(1) if weights is None else weights):
        if category in at:
            series.setdefault(name, [0] * len(categories))[at[category]] += weight
    return series


def clean_label(text: str, limit: int | None = MAX_LABEL) -> str:
    """A label as the chart shows it: no control, format or surrogate characters (an XML document holds none; bidi
    overrides would reorder what is read), cut to `limit` characters."""
    shown = "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in text)
    return shown if limit is None or len(shown) <= limit else shown[:limit - 1] + "\u2026"


@functools.lru_cache(maxsize=64)  # the same numbers again (a page reloaded after a mark) are not drawn again
def _draw(key: str, title: str, categories: tuple[str, ...], layers: tuple[tuple[str, tuple[int, ...]], ...], *,
          stacked: bool, horizontal: bool) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    labels = [clean_label(c) for c in categories]
    many = len(categories) > 16
    with _LOCK, matplotlib.rc_context({**RC, "svg.id": f"{key}-svg"}):
        width = 6.8  # fits an A4 or Letter page's width; pages scale it down
        height = 3.2 if not horizontal else max(2.0, 0.8 + 0.28 * max(1, len(categories)))
        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        positions = list(range(len(categories)))
        base = [0] * len(categories)
        count = max(1, len(layers))
        thickness = 0.8 if stacked else 0.8 / count
        for n, (name, values) in enumerate(layers):
            style = {"color": COLOURS[n % len(COLOURS)], "hatch": HATCHES[(n // len(COLOURS)) % len(HATCHES)],
                     "label": clean_label(name), "edgecolor": "white" if n < len(COLOURS) else "#333333", "linewidth": 0.5}
            where = positions if stacked else [p - 0.4 + thickness * (n + 0.5) for p in positions]
            if horizontal:
                axes.barh(where, values, height=thickness, left=base if stacked else None, **style)
            else:
                axes.bar(where, values, width=thickness, bottom=base if stacked else None, **style)
            if stacked:
                base = [b + v for b, v in zip(base, values)]
        value_axis = axes.xaxis if horizontal else axes.yaxis
        value_axis.set_major_locator(MaxNLocator(integer=True))
        if horizontal:
            axes.set_yticks(positions, labels)
            axes.invert_yaxis()
            axes.set_xlim(left=0)
        else:
            step = max(1, -(-len(categories) // 16))  # at most ~16 labels along x; the table has every one
            axes.set_xticks(positions[::step], labels[::step], rotation=45 if many or max(map(len, labels), default=0) > 8 else 0,
                            ha="right" if many or max(map(len, labels), default=0) > 8 else "center")
            axes.set_ylim(bottom=0)
        if not categories:
            axes.text(0.5, 0.5, "nothing in this period", transform=axes.transAxes, ha="center", va="center", color="#555555")
        if len(layers) > 1:
            axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    return safe_svg(out.getvalue(), key, title)


def safe_svg(document: str, key: str, title: str) -> str:
    """matplotlib's SVG as an element to inline in HTML: the prolog and metadata dropped, only drawing elements kept
    (anything else raises: it would be a bug to look at, not something to show), ids prefixed with `key`."""
    root = ET.fromstring(document[document.index("<svg"):])  # no XML declaration or DOCTYPE: nothing to fetch
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) in DROPPED:
                parent.remove(child)
    prefix = f"{key}-"
    for element in root.iter():
        tag = _local(element.tag)
        if element.tag != f"{{{SVG_NS}}}{tag}" or tag not in DRAWING:
            raise ValueError(f"chart {key}: unexpected element {element.tag!r} in the SVG")
        if "style" in element.attrib:
            _presentation(element, key)
        for name, value in list(element.attrib.items()):
            local = _local(name)
            if local.lower().startswith("on"):
                raise ValueError(f"chart {key}: event attribute {name!r} in the SVG")
            if local == "href":
                if not value.startswith("#"):
                    raise ValueError(f"chart {key}: a link out of the SVG ({value!r})")
                element.set(name, "#" + prefix + value[1:])
            elif local == "id":
                element.set(name, value if value.startswith(prefix) else prefix + value)
            elif "url(" in value:
                if re.search(r"url\((?!#)", value):
                    raise ValueError(f"chart {key}: a link out of the SVG ({value!r})")
                element.set(name, value.replace("url(#", f"url(#{prefix}"))
    for element in root.iter():  # written as plain `svg` and `xlink:href`, whatever ElementTree's global prefix
        element.tag = _local(element.tag)  # registry holds (another module's registration would make it `ns0:svg`)
        for name in [n for n in element.attrib if n.startswith(f"{{{XLINK_NS}}}")]:
            element.set("xlink:" + _local(name), element.attrib.pop(name))
    root.set("xmlns", SVG_NS)
    root.set("xmlns:xlink", XLINK_NS)
    root.set("stroke-linejoin", "round")  # what matplotlib's <style> said, for every element
    root.set("stroke-linecap", "butt")
    root.set("role", "img")
    root.set("aria-label", clean_label(title, None))
    return ET.tostring(root, encoding="unicode")


def _presentation(element: ET.Element, key: str) -> None:
    for declaration in element.attrib.pop("style").split(";"):
        name, _, value = (part.strip() for part in declaration.partition(":"))
        if not name:
            continue
        if name not in PRESENTATION:
            raise ValueError(f"chart {key}: unexpected style {name!r} in the SVG")
        element.set(name, value)


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]
