"""The labelled guard corpus: cases written from the directives and from posts of the kinds a Chicago fusion center
sees, in cases/*.jsonl, one compact line each (id, tasking, label, lang, group, title, text, optional item fields).

`labelled_set()` expands them into the interchange format `fcmon guard-check` reads (items, taskings, users) and the
labels `--report` scores them with (guards/evaluation.py); `python -m tests.guard_corpus.export DIR` writes the files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CASES = HERE / "cases"
HELDOUT = HERE / "heldout"  # written after the lexicons, scored as it came out (docs/guards.md); the tests hold CASES
FETCHED_AT = "2026-11-20T12:00:00Z"


def cases(directory: Path = CASES) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                case = json.loads(line)
                case["file"] = f"{path.name}:{number}"
                found.append(case)
    return found


def item_of(case: dict[str, Any], n: int) -> dict[str, Any]:
    url = f"https://board.example/t/{case['id']}"
    item = dict(id=case["id"], tasking_id=case["tasking"], source_kind="forum_post", source_id="board.example",
                spider="site", url=url, fetched_at=FETCHED_AT,
                request={"method": "GET", "headers": {"User-Agent": "fcmon/0.1", "Accept": "text/html"}, "url": url},
                response={"status": 200, "headers": {"Content-Type": "text/html"}, "url": url},
                robots_allowed=True, login_wall_detected=False, title=case["title"], text=case["text"],
                author=f"member{n}")
    return item | case.get("item", {})


def label_of(case: dict[str, Any]) -> dict[str, Any]:
    return {"item_id": case["id"], "label": case["label"], "lang": case["lang"], "group": case["group"]}


def labelled_set(directory: Path = CASES) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(taskings, users, items, labels) as JSON-ready dicts."""
    read = lambda name: [json.loads(l) for l in (HERE / name).read_text(encoding="utf-8").splitlines() if l.strip()]
    found = cases(directory)
    return read("taskings.jsonl"), read("users.jsonl"), [item_of(c, n) for n, c in enumerate(found)], [label_of(c) for c in found]


def write(directory: Path, source: Path = CASES) -> dict[str, Path]:
    """Write taskings.jsonl, users.jsonl, items.jsonl and labels.jsonl into the directory; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in zip(("taskings", "users", "items", "labels"), labelled_set(source)):
        paths[name] = directory / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return paths
