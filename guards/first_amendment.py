"""Rule 3, First Amendment protection (28CFR23.20(b), D3.II).

Content about political, religious or social views, associations or activities is never stored on
that basis. Explainable by construction: the verdict lists every lexicon term that fired.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import regex

from guards.base import GuardContext, Stage, Verdict
from pipeline.errors import FcmonError
from pipeline.models import CollectedItem
from pipeline.settings import Settings

LEXICON_FILE = "lexicons/first_amendment.toml"


class Lexicon:
    """Named term lists compiled to one whole-word pattern per category."""

    def __init__(self, categories: dict[str, list[str]]):
        self.patterns = {
            name: regex.compile(r"(?<!\w)(?:" + "|".join(regex.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")(?!\w)",
                                regex.IGNORECASE)
            for name, terms in categories.items() if terms
        }

    def signals(self, text: str) -> list[str]:
        found: list[str] = []
        for name, pattern in self.patterns.items():
            terms = sorted({m.group(0).lower() for m in pattern.finditer(text)})
            found.extend(f"{name}:{term}" for term in terms)
        return found


class FirstAmendment(Stage):
    rule = "first_amendment"
    clause = "28CFR23.20(b); D3.II"

    def __init__(self, protected: Lexicon, criminal_conduct: Lexicon):
        self.protected, self.criminal_conduct = protected, criminal_conduct

    @classmethod
    def from_settings(cls, settings: Settings) -> FirstAmendment:
        path = Path(settings.config_dir) / LEXICON_FILE
        try:
            data = tomllib.loads(path.read_text())
            return cls(Lexicon(data["protected"]), Lexicon(data["criminal_conduct"]))
        except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
            raise FcmonError(f"cannot load the First Amendment lexicons from {path} ({exc})",
                             "restore config/lexicons/first_amendment.toml") from exc

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        text = f"{item.title}\n{item.text}"
        protected = self.protected.signals(text)
        if not protected:
            return self.passed("no political, religious or social activity detected")
        conduct = self.criminal_conduct.signals(text)
        if conduct:
            return self.quarantined("protected activity together with signs of criminal conduct: a supervisor decides",
                                    *protected, *conduct)
        return self.rejected("about protected political, religious or social activity with no direct link to criminal conduct",
                             *protected)
