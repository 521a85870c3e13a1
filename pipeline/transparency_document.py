"""The transparency report as a document: one Jinja2 template (pipeline/templates/transparency.html) with its charts,
written as HTML, or printed to PDF by pipeline/pdf.py, which fetches nothing (the report needs nothing from
anywhere, and a document that could make a request when it is made would tell someone it was)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.app import App
from pipeline.charts import Chart, bar_chart, bars, bucket_of, buckets
from pipeline.errors import FcmonError
from pipeline.review import in_period
from pipeline.transparency import DISSEMINATION_KINDS, PURGE_KINDS

FORMATS = {"html": ".html", "pdf": ".pdf"}
TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def over_time(app: App, start: datetime, end: datetime) -> tuple[str, list[str], dict[str, list[int]]]:
    """Per day (a month's report) or month: items collected, queries run and refused, disseminations, records purged."""
    unit, categories = buckets(start, end, by_day_up_to=31)
    at = {c: i for i, c in enumerate(categories)}
    names = ("items collected", "queries", "refused queries", "disseminations", "records purged")
    counts: dict[str, list[int]] = {name: [0] * len(categories) for name in names}
    for entry in app.audit.entries():
        if not in_period(entry.at, start, end):
            continue
        where = at.get(bucket_of(entry.at, unit))
        if where is None:
            continue
        if entry.kind == "crawl.end":
            counts["items collected"][where] += int(entry.payload.get("items", 0))
        elif entry.kind == "query":
            counts["queries"][where] += 1
        elif entry.kind == "query.refused":
            counts["refused queries"][where] += 1
        elif entry.kind in DISSEMINATION_KINDS:
            counts["disseminations"][where] += 1
        elif entry.kind in PURGE_KINDS:
            counts["records purged"][where] += int(entry.payload.get("count", 1))
    return unit, categories, counts


def report_charts(data: dict[str, Any], unit: str, categories: list[str], counts: dict[str, list[int]]) -> list[Chart]:
    kinds = sorted(set(data["taskings_approved_by_kind"]) | set(data["taskings_active_by_kind"]))
    interfaces = dict(data["queries_by_interface"])
    activity = {k: v for k, v in counts.items() if k != "items collected"}
    return [
        bars("taskings", "Taskings approved", "Taskings approved in the period, and taskings active at some time in it, "
             "by kind.", "kind", kinds, {"approved": [data["taskings_approved_by_kind"].get(k, 0) for k in kinds],
                                         "active": [data["taskings_active_by_kind"].get(k, 0) for k in kinds]},
             stacked=False),
        bar_chart("collection", "Records collected, indexed, quarantined and rejected",
                  "Items collected by crawls that ended in the period, records the index holds now, items held in the "
                  "quarantine now, and items the guards rejected in the period.", "what",
                  {"items collected": data["items_collected"], "records indexed (now)": data["records_indexed_now"],
                   "items quarantined (now)": data["items_quarantined_now"], "items rejected": data["rejected_total"]},
                  horizontal=True, total_row=False),
        bar_chart("rejected-by-rule", "Rejected by rule", "Guard rejections in the period, by the rule that decided "
                  "(only their ids and reasons are kept, never the content).", "rule", data["rejected_by_rule"],
                  "rejections", horizontal=True),
        bar_chart("queries", "Queries", "Queries run in the period by the interface they came through, and queries "
                  "refused.", "interface", {**interfaces, "refused (any interface)": data["queries_refused"]},
                  "queries", horizontal=True),
        bars("collected-over-time", f"Items collected per {unit}", "Items of the crawls that ended each "
             f"{unit} (UTC).", unit, categories, {"items collected": counts["items collected"]}),
        bars("activity-over-time", f"Queries, disseminations and purges per {unit}", f"Queries run and refused, "
             f"packets disseminated and records purged each {unit} (UTC).", unit, categories, activity, stacked=False),
    ]


def figures(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every figure of the report, named as the text report names it."""
    shown = []
    for key, value in data.items():
        if key in ("period", "from", "to", "notes", "generated_at"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        shown.append((key.replace("_", " "), str(value)))
    return shown


def report_html(app: App, data: dict[str, Any], start: datetime, end: datetime) -> str:
    unit, categories, counts = over_time(app, start, end)
    return ENV.get_template("transparency.html").render(
        report=data, charts=report_charts(data, unit, categories, counts), figures=figures(data))


def check_out(fmt: str, out: str | None) -> Path:
    """The file a document goes to: required, and named for its format."""
    if not out:
        raise FcmonError(f"--format {fmt} writes a file: --out is missing", f"add --out report{FORMATS[fmt]}")
    path = Path(out)
    if path.suffix.lower() != FORMATS[fmt]:
        raise FcmonError(f"--out {out} does not end in {FORMATS[fmt]}, but --format is {fmt}",
                         f"name the file {path.with_suffix(FORMATS[fmt]).name}, or choose the format its name says")
    return path


def write(path: Path, content: bytes) -> None:
    """Written whole or not at all: to a file beside it, then renamed."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(content)
    part.replace(path)

