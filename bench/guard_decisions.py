"""Every decision of the guard chain as JSON lines, for comparing two versions of guards/ byte for byte.

    .venv/bin/python bench/guard_decisions.py OUT.jsonl [--mixed N]

Run it once on each version (`cd` into the other worktree and `PYTHONPATH=. /path/to/.venv/bin/python
bench/guard_decisions.py ...`), then `cmp` the two files. One line per item: the set it comes from, the full
GuardDecision (decision, reasons with rule, clause, message and signals, labels, annotations), the stored item's
title and text, and what the lexicons find in its text (every section's matches, as written and deobfuscated, and
the crawler's wall check). The items: the labelled corpus and the held-out set (tests/guard_corpus/), the guard
benchmark's items (bench/bench_guards.py) and N texts drawn at random (seeded) from the corpus' words and the
lexicons' terms in every language, obfuscated at random (leetspeak, spaced letters, homoglyphs, slang endings).
The inputs depend only on the files, never on the code under comparison; the clock is fixed.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_guards  # noqa: E402

from guards.base import GuardContext  # noqa: E402
from guards.chain import GuardChain  # noqa: E402
from guards.lexicon import load  # noqa: E402
from guards.text import ItemText  # noqa: E402
from guards.walls import wall_text_reason  # noqa: E402
from pipeline.models import CollectedItem, Tasking, UserRole  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.guard_corpus import CASES, HELDOUT, labelled_set  # noqa: E402

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
SECTIONS = ("protected", "not_protected", "criminal_conduct", "threat", "harmless", "lawful", "login_wall")
HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і"}  # Cyrillic look-alikes
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "$", "t": "7", "l": "|"}


def vocabulary(config: Path) -> list[str]:
    """The corpus' words and phrases and every term of every lexicon (read from the files, not by the code compared)."""
    words: list[str] = []
    for _, _, items, _ in [labelled_set(CASES), labelled_set(HELDOUT)]:
        for item in items:
            text = f"{item['title']} {item['text']}"
            tokens = text.split()
            words += tokens
            words += [" ".join(tokens[i:i + 3]) for i in range(0, len(tokens), 3)]
    for path in sorted((config / "lexicons").glob("*.toml")):
        for name, table in tomllib.loads(path.read_text(encoding="utf-8")).items():
            if isinstance(table, dict) and not name.endswith("_patterns") and name != "lemmas":
                words += [t.lstrip("=") for terms in table.values() if isinstance(terms, list) for t in terms]
            elif name == "lemmas" and isinstance(table, dict):
                words += list(table)
    return words


def obfuscated(word: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return word
    if roll < 0.65:
        return "".join(LEET.get(c, c) if rng.random() < 0.5 else c for c in word)
    if roll < 0.72:
        return rng.choice([" ", ".", "-", "*"]).join(word)
    if roll < 0.8:
        return "".join(HOMOGLYPHS.get(c, c) if rng.random() < 0.4 else c for c in word)
    if roll < 0.86:
        return word.removesuffix("g") + "'" if word.endswith("ing") else word + rng.choice(["z", "in", "s", "ed", "es"])
    if roll < 0.92:
        return word.upper() if rng.random() < 0.5 else word.capitalize()
    return rng.choice(["#", "@", "", "\u00ad", "\u200b"]).join([word[: len(word) // 2], word[len(word) // 2:]])


def mixed_texts(n: int, config: Path) -> list[tuple[str, str]]:
    rng = random.Random(20261202)
    words = vocabulary(config)
    glue = [" ", " ", " ", ", ", ". ", "! ", "\n", " - ", " $150 ", " 312-555-0101 ", " tomorrow ", " gonna "]
    texts = []
    for _ in range(n):
        size = rng.choice([1, 2, 3, 5, 8, 12, 20, 40, 80, 200])
        text = "".join(obfuscated(rng.choice(words), rng) + rng.choice(glue) for _ in range(size)).strip()
        texts.append((obfuscated(rng.choice(words), rng)[:60], text[:4000]))
    return texts


def lexicon_findings(lexicons, title: str, text: str) -> dict:
    """Each section's matches in the joined text (sorted: the order among one section's matches is no decision),
    masked as the stages mask them, and the crawler's own wall check (its own views)."""
    views = ItemText(title, text).views
    found = {s: lexicons.find(s, views) for s in SECTIONS}
    masked = {"criminal_conduct": lexicons.find("criminal_conduct", views, found["harmless"]),
              "threat": lexicons.find("threat", views, found["harmless"]),
              "protected": lexicons.find("protected", views, found["not_protected"])}
    row = lambda ms: sorted([m.category, m.term, m.lang, m.start, m.end, m.obfuscated] for m in ms)
    return {"found": {s: row(ms) for s, ms in found.items()}, "masked": {s: row(ms) for s, ms in masked.items()},
            "deobfuscated": views.deobfuscated.text if views.deobfuscated is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mixed", type=int, default=3000, help="random multilingual, obfuscated texts")
    args = parser.parse_args()
    settings = Settings()
    chain, lexicons = GuardChain.from_settings(settings), load(settings)
    taskings_rows, users, _, _ = labelled_set(CASES)
    taskings = {t.id: t for t in (Tasking.model_validate(r) for r in taskings_rows)}
    roles = {u.name: u.role for u in (UserRole.model_validate(r) for r in users)}
    bench_guards.utcnow = lambda: NOW  # the benchmark's items and tasking, at a fixed time
    bench = Tasking(id="T-B", kind="criminal_predicate", case_number="B-1", requested_by="alice", approved_by="sam",
                    predicate="Reasonable suspicion, from theft reports RD-1 to RD-9, that forum users sell converters cut from cars.",
                    criminal_activity="theft and sale of stolen catalytic converters", approved_at=NOW - timedelta(days=1),
                    expires_at=NOW + timedelta(days=30), scope={"domains": ["forum.example"], "keywords": ["converter", "converters"]})
    taskings[bench.id] = bench
    context = GuardContext(taskings=taskings, roles=roles, now=NOW, settings=settings)
    sets: list[tuple[str, CollectedItem]] = []
    for name, directory in (("corpus", CASES), ("heldout", HELDOUT)):
        sets += [(name, CollectedItem.model_validate(i)) for i in labelled_set(directory)[2]]
    sets += [("bench", CollectedItem.model_validate_json(r)) for r in bench_guards.make_items(3000, bench)]
    template = labelled_set(CASES)[2][0]
    ids = sorted(taskings)
    for n, (title, text) in enumerate(mixed_texts(args.mixed, settings.config_dir)):
        sets.append(("mixed", CollectedItem.model_validate(template | {"id": f"mixed-{n}", "tasking_id": ids[n % len(ids)],
                                                                       "title": title, "text": text, "author": f"u{n % 7}"})))
    with args.out.open("w", encoding="utf-8") as out:
        for name, item in sets:
            decision, stored = chain.apply(item, context)
            row = {"set": name, "decision": decision.model_dump(mode="json"), "stored": [stored.title, stored.text],
                   "lexicons": lexicon_findings(lexicons, item.title, item.text),
                   "wall": wall_text_reason(item.text, lexicons)}
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{len(sets)} items: " + ", ".join(f"{s} {sum(n == s for n, _ in sets)}" for s in ("corpus", "heldout", "bench", "mixed")))


if __name__ == "__main__":
    main()
