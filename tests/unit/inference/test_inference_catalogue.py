"""Catalogue lookup against the shipped manifest's catalogue (pure; no runtime)."""

from __future__ import annotations

import pytest

from edge.inference.catalogue import Catalogue, normalise
from edge.inference.manifest import read_manifest
from models import model_dir


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    spec = read_manifest(model_dir("valuation")).valuation
    assert spec is not None
    return Catalogue(spec.catalogue)


def test_catalogue_has_every_trim_of_the_data(catalogue: Catalogue) -> None:
    assert len(catalogue) == 78
    assert [e.index for e in catalogue.entries] == list(range(78))


def test_exact_and_forgiving_matches(catalogue: Catalogue) -> None:
    e = catalogue.lookup("Chevrolet", "Malibu", "LS Sedan 4D").entry
    assert e is not None and e.trim == "LS Sedan 4D"
    assert catalogue.lookup("chevrolet", " malibu ", "ls  sedan 4d").entry == e
    assert catalogue.lookup("Chevrolet", "Malibu", "LS", "Sedan 4D").entry == e
    assert catalogue.lookup("SAAB", "9-3", "Linear Sedan 4D").entry is not None  # "9_3"


@pytest.mark.parametrize(
    ("make", "model", "trim", "body", "needle"),
    [
        ("Ford", "Focus", "SE", None, "make 'Ford'"),
        ("Chevrolet", "Tahoe", "LS", None, "model Chevrolet 'Tahoe'"),
        ("Chevrolet", "Malibu", "LTZ", None, "trim 'LTZ'"),
        ("Chevrolet", "Malibu", "LS Sedan 4D", "Coupe 2D", "body 'Coupe 2D'"),
        ("Chevrolet", None, "LS", None, "model not known"),
    ],
)
def test_unknown_cars_get_a_reason(
    catalogue: Catalogue, make: str, model: str | None, trim: str, body: str | None, needle: str
) -> None:
    match = catalogue.lookup(make, model, trim, body)
    assert match.entry is None
    assert match.reason is not None and needle in match.reason


def test_ambiguous_short_trim_is_not_guessed(catalogue: Catalogue) -> None:
    # Malibu has "LS Sedan 4D" and "LS MAXX Hback 4D": "LS" alone must not pick one...
    match = catalogue.lookup("Chevrolet", "Malibu", "LS")
    assert match.entry is None and match.reason is not None and "ambiguous" in match.reason
    # ...but the body settles it.
    hatch = catalogue.lookup("Chevrolet", "Malibu", "LS", "Hatchback 4D").entry
    assert hatch is not None and hatch.trim == "LS MAXX Hback 4D"
    assert normalise("9-2X_AWD") == "9 2x awd"
