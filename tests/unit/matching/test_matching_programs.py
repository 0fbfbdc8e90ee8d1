"""Lender program documents: the samples load; errors name the file, line, field, value and fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from gateway.matching import (
    LenderKind,
    LoanKind,
    ProgramError,
    ProgramSetError,
    load_program,
    load_programs,
    parse_program,
    sample_programs_dir,
)

CU = sample_programs_dir() / "lakeshore-cu-auto.yaml"


def _cu_text() -> str:
    return CU.read_text(encoding="utf-8")


def _error(text: str, name: str = "cu.yaml") -> ProgramError:
    with pytest.raises(ProgramError) as info:
        parse_program(text, source_name=name)
    return info.value


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def test_every_sample_program_loads_and_the_five_lender_kinds_are_there() -> None:
    programs = load_programs(sample_programs_dir())
    kinds = {p.lender_kind for p in programs}
    assert {
        LenderKind.BANK,
        LenderKind.CREDIT_UNION,
        LenderKind.CAPTIVE,
        LenderKind.SUBPRIME,
        LenderKind.TITLE_LENDER,
    } <= kinds
    title = next(p for p in programs if p.lender_kind is LenderKind.TITLE_LENDER)
    assert title.loan_kind is LoanKind.EQUITY
    assert all(p.currency == "USD" for p in programs)


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "words"),
    [
        # a bound: names the bound and the field's meaning
        ("cap_apr: 18.00", "cap_apr: 250", "rate_grid.cap_apr", "cap_apr", ["199.99"]),
        # a typo: suggests the right key
        ("max_pti_pct: 18", "max_pti: 18", "affordability.max_pti", "max_pti", ["max_pti_pct"]),
        # a bad enum value lists the choices
        ("score_model: fico_8", "score_model: fico_99", "credit.score_model", "score_model",
         ["fico_auto_8"]),
        # an impossible date
        ("effective_from: 2026-02-01", "effective_from: 2026-02-31", "effective_from",
         "effective_from", ["date"]),
        # more than two decimals in an APR
        ("floor_apr: 4.99", "floor_apr: 4.999", "rate_grid.floor_apr", "floor_apr",
         ["two decimals"]),
        # a cross-field rule points at the offending cell
        ("- [6.24,  6.49,  6.99,  7.74]", "- [4.24,  6.49,  6.99,  7.74]",
         "rate_grid.rates.B[0][0]", "[4.24,", ["better tier must never get a higher rate"]),
        # term limits must cover every accepted age
        ("max_age_years: 12", "max_age_years: 14", "term_limits.by_age", "by_age:",
         ["cover every age"]),
        # bands must increase
        ("term_bands_months: [36, 48, 60, 72, 84]", "term_bands_months: [36, 48, 48, 72, 84]",
         "rate_grid.term_bands_months", "term_bands_months", ["strictly increasing"]),
        # an unknown excluded flag
        ("excluded_flags: [salvage, flood, frame_damage, odometer_rollback]",
         "excluded_flags: [salvage, fload]", "vehicle.excluded_flags[1]", "excluded_flags",
         ["flood"]),
        # a required field left out
        ("    - {name: A, min_score: 720, max_ltv_pct: 125}", "    - {name: A, max_ltv_pct: 125}",
         "credit.tiers[0].min_score", "{name: A, max_ltv_pct", ["add `min_score:`"]),
    ],
)  # fmt: skip
def test_errors_name_the_line_field_value_and_fix(
    old: str, new: str, field: str, needle: str, words: list[str]
) -> None:
    text = _cu_text()
    assert old in text
    bad = text.replace(old, new, 1)
    err = _error(bad)
    issue = err.issues[0]
    assert issue.source == "cu.yaml" == err.file
    assert (err.line, err.field) == (issue.line, issue.field)
    assert issue.field == field
    assert issue.line == _line_of(bad, needle)
    rendered = str(err)
    assert f"cu.yaml:{issue.line}:" in rendered
    for word in words:
        assert word in rendered


def test_duplicate_keys_are_errors_not_silently_the_last() -> None:
    text = _cu_text().replace("lender: Lakeshore", "lender: Someone\nlender: Lakeshore", 1)
    err = _error(text)
    assert err.issues[0].field == "lender"
    assert "duplicate key" in str(err)


def test_syntax_errors_have_a_position() -> None:
    err = _error("program_id: x\ncredit: [unclosed\n")
    assert err.line is not None
    assert "not valid YAML" in str(err)


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert "mapping" in str(_error("- 1\n- 2\n"))


def test_json_programs_load_with_line_numbers(tmp_path: Path) -> None:
    doc = load_program(CU).model_dump(mode="json")
    path = tmp_path / "cu.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    assert load_program(path) == load_program(CU)
    doc["residual"]["max_ltv_pct"] = -5
    text = json.dumps(doc, indent=2)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramError) as info:
        load_program(path)
    issue = info.value.issues[0]
    assert issue.field == "residual.max_ltv_pct"
    assert issue.line == _line_of(text, '"max_ltv_pct": -5')


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        # numbers and booleans are not converted from anything else
        ("version: 2", "version: '2'", "version", ["valid integer", "'2'"]),
        ("version: 2", "version: true", "version", ["valid integer", "True"]),
        ("cap_apr: 18.00", "cap_apr: '18.00'", "rate_grid.cap_apr", ["valid number"]),
        ("min_condition_grade: 2.0", "min_condition_grade: yes", "vehicle.min_condition_grade",
         ["valid number"]),
        # a number is not a date (it would be read as a Unix timestamp)
        ("effective_from: 2026-02-01", "effective_from: 20260201", "effective_from",
         ["YYYY-MM-DD"]),
        # a flag or a photo listed twice is a mistake, not a stronger rule
        ("excluded_flags: [salvage, flood,", "excluded_flags: [salvage, salvage, flood,",
         "vehicle.excluded_flags", ["salvage listed more than once"]),
        # tags that build other objects, or that the safe loader cannot build at all
        ("lender: Lakeshore Community Credit Union", "lender: !!binary TGFrZXNob3Jl", "lender",
         ["tag"]),
        ("lender: Lakeshore Community Credit Union",
         "lender: !!python/object/apply:os.getcwd []", "lender", ["tag"]),
        ("currency: USD", "<<: {currency: USD}", "", ["merge keys"]),
        # YAML 1.1 would read these as octal and base 60: $3,000 becoming $983.04
        ("min_financed_minor: 300000 ", "min_financed_minor: 0300000 ",
         "amount.min_financed_minor", ["not a decimal integer", "leading zero"]),
        ("version: 2", "version: 1:20", "version", ["not a decimal integer"]),
        ("max_pti_pct: 18", "max_pti_pct: 1:30.5", "affordability.max_pti_pct", ["base-60"]),
        # an explicit tag whose text is not of its type
        ("version: 2", "version: !!int two", "version", ["cannot be read as int"]),
        ("floor_apr: 4.99", "floor_apr: !!float cheap", "rate_grid.floor_apr",
         ["cannot be read as float"]),
        ("taxes_and_fees: true", "taxes_and_fees: !!bool maybe",
         "financed_items.taxes_and_fees", ["cannot be read as bool"]),
        # more digits than Python converts
        ("version: 2", "version: 1" + "0" * 5000, "version", ["too many digits"]),
    ],
)  # fmt: skip
def test_wrong_types_and_yaml_tags_are_refused_where_they_are(
    old: str, new: str, field: str, words: list[str]
) -> None:
    text = _cu_text()
    assert old in text
    bad = text.replace(old, new, 1)
    err = _error(bad)
    assert [(i.field, i.line) for i in err.issues] == [(field, _line_of(bad, new))]
    for word in words:
        assert word in str(err)


def _cu_json(indent: str | int = 2) -> str:
    return json.dumps(load_program(CU).model_dump(mode="json"), indent=indent)


def test_json_is_read_with_json_rules() -> None:
    # Tabs are JSON whitespace (YAML refuses them); JSON's escapes and exponents are JSON's.
    tabbed = _cu_json("\t").replace(
        '"lender": "Lakeshore', '"lender": "\\ud83d\\ude97 Lakeshore', 1
    )
    program = parse_program(tabbed, source_name="cu.json")
    assert program.lender.startswith("\U0001f697 Lakeshore")
    assert program == parse_program(tabbed, source_name="upload")  # valid JSON is JSON
    text = _cu_json().replace('"min_condition_grade": 2.0', '"min_condition_grade": 20e-1', 1)
    assert parse_program(text, source_name="cu.json", syntax="json") == load_program(CU)


@pytest.mark.parametrize(
    ("old", "new", "at"),
    [
        ('"version": 2,', '"version": 2', '"effective_from"'),  # a missing comma: at the next key
        ('"currency": "USD"', "'currency': 'USD'", "'currency'"),  # single quotes
        ('"max_ltv_pct": 120.0\n  }\n}', '"max_ltv_pct": 120.0,\n  }\n}', "}"),  # a trailing comma
    ],
)  # fmt: skip
def test_json_syntax_errors_are_json_errors_with_a_position(old: str, new: str, at: str) -> None:
    text = _cu_json()
    assert old in text
    bad = text.replace(old, new, 1)
    # YAML's flow syntax takes all three without a word.
    err = _error(bad, "cu.json")
    assert "not valid JSON" in str(err)
    lines = bad.splitlines()
    assert err.line is not None and lines[err.line - 1].lstrip().startswith(at)
    with pytest.raises(ProgramError, match="not valid JSON"):
        parse_program(bad, source_name="upload", syntax="json")


def test_load_programs_reports_every_bad_file_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_cu_text(), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(_cu_text(), encoding="utf-8")
    with pytest.raises(ProgramSetError) as info:
        load_programs(tmp_path)
    assert "already used" in str(info.value)
    (tmp_path / "c.yaml").write_text(_cu_text().replace("cap_apr: 18.00", "cap_apr: -1"), "utf-8")
    with pytest.raises(ProgramError) as info2:
        load_programs(tmp_path)
    sources = {i.source for i in info2.value.issues}
    assert sources == {str(tmp_path / "b.yaml"), str(tmp_path / "c.yaml")}


def test_unreadable_files_and_missing_folders_are_program_errors(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="cannot read"):
        load_program(tmp_path / "missing.yaml")
    with pytest.raises(ProgramError, match="not a folder"):
        load_programs(tmp_path / "nope")


def test_effective_dates_are_inclusive_and_ordered() -> None:
    text = (sample_programs_dir() / "first-harbor-bank-used-auto.yaml").read_text("utf-8")
    dated = "\n".join(
        "effective_to: 2026-12-31" if line.startswith("effective_to:") else line
        for line in text.splitlines()
    )
    program = parse_program(dated, source_name="dated")
    assert program.is_effective(date(2026, 1, 1))
    assert program.is_effective(date(2026, 12, 31))
    assert not program.is_effective(date(2027, 1, 1))
    err = _error(dated.replace("effective_to: 2026-12-31", "effective_to: 2025-12-31"))
    assert err.issues[0].field == "effective_to"


def test_equity_programs_cannot_ask_for_a_down_payment() -> None:
    text = (sample_programs_dir() / "sunbelt-title-equity.yaml").read_text("utf-8")
    err = _error(text.replace("max_pti_pct: 25", "max_pti_pct: 25\n  min_down_payment_pct: 10"))
    assert "no down payment" in str(err)
    assert err.issues[0].field == "affordability"


def test_a_json_number_python_will_not_convert_is_refused_with_its_field() -> None:
    text = _cu_json().replace('"version": 2,', '"version": 1' + "0" * 5000 + ",", 1)
    for name, syntax in (("cu.json", None), ("upload", None), ("upload", "json")):
        with pytest.raises(ProgramError) as info:
            parse_program(text, source_name=name, syntax=syntax)  # type: ignore[arg-type]
        assert [(i.field, i.line) for i in info.value.issues] == [
            ("version", _line_of(text, '"version"'))
        ]


def test_json_strings_may_hold_what_yaml_refuses_and_lines_stay_right() -> None:
    # C1 controls, U+FFFE and YAML's own line breaks (NEL, U+2028) are valid in JSON strings.
    odd = "Lakeshore\u0080 \ufffe\u0085\u2028 Credit Union"
    text = _cu_json().replace(
        '"Lakeshore Community Credit Union"', json.dumps(odd, ensure_ascii=False), 1
    )
    assert odd in text
    for name in ("cu.json", "upload"):
        assert parse_program(text, source_name=name).lender == odd
    bad = text.replace('"max_pti_pct": 18', '"max_pti_pct": 180', 1)
    err = _error(bad, "cu.json")
    line = bad[: bad.index('"max_pti_pct"')].count("\n") + 1  # splitlines() would split at NEL
    assert [(i.field, i.line) for i in err.issues] == [("affordability.max_pti_pct", line)]


@pytest.mark.parametrize(
    ("new", "line"),
    [("lender: Lakeshore\x01 Credit Union", 5), ("lender: Lakeshore\x00", 5)],
)
def test_characters_yaml_does_not_allow_are_refused_with_their_position(
    new: str, line: int
) -> None:
    bad = _cu_text().replace("lender: Lakeshore Community Credit Union", new, 1)
    err = _error(bad)
    assert err.line == line and err.issues[0].column == len("lender: Lakeshore") + 1
    assert "not allowed" in str(err)


def test_aliases_that_expand_without_bound_are_refused_quickly() -> None:
    # 25 levels of doubling: 10 × 2**24 values from under 700 bytes
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]" for n in range(1, 25)]
    bomb = _cu_text() + "\n".join(lines) + "\n"
    err = _error(bomb)
    assert "more than 100,000 values" in str(err) and err.line is not None


@pytest.mark.parametrize(
    "text",
    [
        "program_id: &x [*x]\n",
        "program_id: &x {a: *x}\n",
    ],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    err = _error(text)
    assert "refers to a collection that contains it" in str(err)
    assert err.line == 1


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("a: " + "[" * 40 + "]" * 40 + "\n", "deep.yaml"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "deeper.yaml"),
        ('{"a": ' + "[" * 3000 + "]" * 3000 + "}", "deep.json"),
        ('{"a": ' + "[" * 3000 + "]" * 3000 + "}", "upload"),
    ],
)
def test_documents_nested_too_deeply_are_refused(text: str, name: str) -> None:
    assert "nested more than 32 levels deep" in str(_error(text, name))


def test_aliases_within_bounds_still_load() -> None:
    text = (
        _cu_text().replace("  by_odometer:\n", "  by_odometer: &odo\n", 1) + "odometer_copy: *odo\n"
    )
    err = _error(text)  # the alias loads; the unknown key is the only issue
    assert [i.field for i in err.issues] == ["odometer_copy"]


def test_a_term_limit_below_the_minimum_term_is_refused() -> None:
    bad = _cu_text().replace("min_term_months: 12", "min_term_months: 60", 1)
    err = _error(bad)
    limit = "{up_to_years: 12, max_term_months: 48}"
    assert [(i.field, i.line) for i in err.issues] == [
        ("term_limits.by_age[3].max_term_months", _line_of(bad, limit))
    ]
    assert "could never get a term" in str(err)
