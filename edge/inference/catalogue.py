"""Catalogue lookup: a requested make/model/trim (and body) to a catalogue entry, or a reason.

Matching is forgiving about case, spaces, hyphens and underscores ("9-3" = "9_3"), and accepts a
short trim plus a body ("LS" + "Sedan 4D" → "LS Sedan 4D"); it never guesses between several
entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from edge.inference.manifest import CatalogueItem

_SEPARATORS = re.compile(r"[\s\-_]+")


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """Case-, space-, hyphen- and underscore-insensitive form of a catalogue name."""
    return _SEPARATORS.sub(" ", text).strip().casefold()


@dataclass(frozen=True)
class Match:
    entry: CatalogueItem | None
    reason: str | None = None


class Catalogue:
    """The catalogue of a valuation model (from its manifest)."""

    def __init__(self, entries: list[CatalogueItem]) -> None:
        self.entries = entries
        self._by_model: dict[tuple[str, str], list[CatalogueItem]] = {}
        for e in entries:
            self._by_model.setdefault((normalise(e.make), normalise(e.model)), []).append(e)
        self._makes = {normalise(e.make) for e in entries}

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(
        self, make: str | None, model: str | None, trim: str | None, body: str | None = None
    ) -> Match:
        """The entry for this car, or ``Match(None, reason)`` saying why there is none."""
        if not make or not model or not trim:
            missing = [n for n, v in (("make", make), ("model", model), ("trim", trim)) if not v]
            return Match(
                None, f"{', '.join(missing)} not known: the catalogue needs make, model and trim"
            )
        mk, md, tr = normalise(make), normalise(model), normalise(trim)
        if mk not in self._makes:
            return Match(None, f"make {make!r} is not in the valuation catalogue")
        candidates = self._by_model.get((mk, md))
        if not candidates:
            models = sorted({e.model for e in self.entries if normalise(e.make) == mk})
            return Match(
                None,
                f"model {make} {model!r} is not in the valuation catalogue "
                f"(catalogued {make} models: {', '.join(models)})",
            )
        found = self._find_trim(candidates, tr, normalise(body) if body else None)
        if isinstance(found, str):
            return Match(None, found.format(make=make, model=model, trim=trim))
        if body and not self._body_agrees(found, body):
            return Match(
                None,
                f"body {body!r} does not match the catalogue's {found.body} for "
                f"{found.make} {found.model} {found.trim}",
            )
        return Match(found)

    @staticmethod
    def _find_trim(
        candidates: list[CatalogueItem], tr: str, body: str | None
    ) -> CatalogueItem | str:
        exact = [e for e in candidates if normalise(e.trim) == tr]
        if exact:
            return exact[0]
        if body:
            with_body = [e for e in candidates if normalise(e.trim) == f"{tr} {body}"]
            if with_body:
                return with_body[0]
        prefixed = [e for e in candidates if normalise(e.trim).startswith(tr + " ")]
        if body and len(prefixed) > 1:
            prefixed = [e for e in prefixed if normalise(e.body) in body]
        if len(prefixed) == 1:
            return prefixed[0]
        trims = ", ".join(sorted(e.trim for e in candidates))
        if len(prefixed) > 1:
            return (
                "trim {trim!r} of {make} {model} is ambiguous in the valuation catalogue "
                f"({trims}); give the full trim"
            )
        return f"trim {{trim!r}} of {{make}} {{model}} is not in the valuation catalogue ({trims})"

    @staticmethod
    def _body_agrees(entry: CatalogueItem, body: str) -> bool:
        b = normalise(body)
        return normalise(entry.body) in b or b in normalise(entry.trim)
