"""Charts (pipeline/charts.py): the same data gives the same bytes, labels from data stay text, the SVG holds only
drawing, and every chart comes with its numbers as a table."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pipeline.charts import SVG_NS, _draw, bar_chart, bars, safe_svg
from pipeline.web.templating import ENV

HOSTILE = ("<script>alert(1)</script>", "Tom & Jerry", "$\\frac{", "bidi\u202eevil", "bell\x07")
DRAWN = ("queries-per-day", "Queries per day, by user", "every query", "day", ["2026-11-01", "2026-11-02"],
         {"alice": [1, 2], "dana": [0, 3]})
RENDER = ("from pipeline.charts import bars; import sys; "
          "sys.stdout.write(bars('queries-per-day', 'Queries per day, by user', 'every query', 'day', "
          "['2026-11-01', '2026-11-02'], {'alice': [1, 2], 'dana': [0, 3]}).svg)")


def texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{{{SVG_NS}}}text")]


def test_the_same_data_gives_the_same_bytes_in_every_process():
    here = bars(*DRAWN).svg
    _draw.cache_clear()  # drawn again, not remembered
    assert bars(*DRAWN).svg == here
    elsewhere = [subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, check=True).stdout
                 for _ in range(2)]
    assert elsewhere == [here, here]  # matplotlib's hash salt would otherwise differ per process
    assert bars(*DRAWN[:5], {"alice": [1, 3], "dana": [0, 3]}).svg != here


def test_labels_from_data_are_escaped_text_never_markup_or_mathtext():
    chart = bars("hostile", "Hostile <b>title</b> &", "caption", "user", list(HOSTILE), {n: [1] * len(HOSTILE) for n in HOSTILE})
    svg = chart.svg
    assert "<script" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "Tom &amp; Jerry" in svg
    drawn = texts(svg)
    for label in ("<script>alert(1)</script>", "Tom & Jerry", "$\\frac{"):  # mathtext is off: `$` is a dollar sign
        assert drawn.count(label) == 2  # on the axis and in the legend
    assert "bidi\ufffdevil" in drawn and "bell\ufffd" in drawn  # no bidi override, no control character
    root = ET.fromstring(svg)
    assert root.get("aria-label") == "Hostile <b>title</b> &" and root.get("role") == "img"
    assert {el.tag.split("}")[1] for el in root.iter()} <= {"svg", "g", "defs", "clipPath", "path", "rect", "use", "text"}
    assert not [name for el in root.iter() for name in el.attrib if name.lower().startswith("on") or name == "style"]


def test_ids_are_the_charts_own_so_charts_share_a_page():
    one, two = bar_chart("one", "A", "c", "x", {"a": 1}), bar_chart("two", "B", "c", "x", {"a": 1})
    ids = [[el.get("id") for el in ET.fromstring(c.svg).iter() if el.get("id")] for c in (one, two)]
    assert ids[0] and all(i.startswith("one-") for i in ids[0]) and all(i.startswith("two-") for i in ids[1])
    refs = [v for el in ET.fromstring(one.svg).iter() for v in el.attrib.values() if "url(#" in v or v.startswith("#p")]
    assert refs and all("#one-" in v for v in refs)


def test_many_series_and_no_data_still_draw():
    many = bars("many", "Many", "c", "day", ["d1", "d2"], {f"user{n}": [n, 1] for n in range(12)})
    assert texts(many.svg).count("user11") == 1  # in the legend; hatches tell the second round of colours apart
    empty = bars("empty", "Empty", "c", "user", [], {"count": []})
    assert "nothing in this period" in texts(empty.svg)
    with pytest.raises(ValueError, match="one value per category"):
        bars("bad", "Bad", "c", "x", ["a", "b"], {"s": [1]})


@pytest.mark.parametrize("inserted,refusal", [
    ("<script>alert(1)</script>", "unexpected element"),
    ('<rect onload="alert(1)"/>', "event attribute"),
    ('<use xlink:href="https://elsewhere.example/x.svg#a"/>', "a link out"),
    ('<foreignObject><p>hi</p></foreignObject>', "unexpected element"),
    ('<rect style="background: url(https://elsewhere.example/)"/>', "unexpected style"),
    ('<rect fill="url(https://elsewhere.example/#p)"/>', "a link out"),
])
def test_anything_but_drawing_is_refused(inserted, refusal):
    document = (f'<?xml version="1.0"?><svg xmlns="{SVG_NS}" xmlns:xlink="http://www.w3.org/1999/xlink">'
                f'<g id="a">{inserted}</g></svg>')
    with pytest.raises(ValueError, match=refusal):
        safe_svg(document, "k", "t")


def test_the_macro_shows_the_chart_with_its_numbers_as_a_table():
    chart = bars(*DRAWN[:4], ["2026-11-01", "2026-11-02"], {"<script>x</script>": [1, 2], "dana": [0, 3]})
    shown = ENV.from_string('{% import "chart.html" as ch %}{{ ch.chart(c) }}').render(c=chart)
    assert shown.count("<svg") == 1 and "<caption>Queries per day, by user: the numbers drawn</caption>" in shown
    assert '<th scope="col">&lt;script&gt;x&lt;/script&gt;</th><th scope="col">dana</th><th scope="col">total</th>' in shown
    assert '<tr><th scope="row">2026-11-02</th><td>2</td><td>3</td><td>5</td></tr>' in shown
    assert '<tfoot><tr><th scope="row">total</th><td>3</td><td>3</td><td>6</td></tr></tfoot>' in shown
    assert "<script>" not in shown


def test_the_svg_is_the_same_whatever_another_module_registered_with_elementtree():
    before = chart_svg_for_registry_test()
    ET.register_namespace("", "http://www.w3.org/1999/xhtml")  # drops any earlier registration of the empty prefix
    ET.register_namespace("s", "http://www.w3.org/2000/svg")
    try:
        assert chart_svg_for_registry_test() == before and before.startswith("<svg ") and "ns0:" not in before
    finally:
        ET.register_namespace("svg", "http://www.w3.org/2000/svg")


def chart_svg_for_registry_test() -> str:
    _draw.cache_clear()
    return bar_chart("registry", "Records per day", "records", "day", {"2026-11-01": 2, "2026-11-02": 0}).svg
