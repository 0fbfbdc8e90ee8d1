"""Rule outcome codes and the sentences a dealer reads.

Every rule the engine applies has a *pass* code and one or more *fail* or *note* codes. In batch
mode a pair's outcome is a bit mask of its fail and note codes (a rule with no bit set passed);
:func:`render_reason` turns a code and its parameters into a sentence when a person needs one.

Codes are part of the API (stored with matches, shown to lenders): add new ones, never rename.
Parameter names ending in ``_minor`` are money in cents, ``_pct`` percentages.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, NamedTuple, cast

import numpy as np
import numpy.typing as npt


class Rule(StrEnum):
    """The rules, in the order the engine reports them."""

    EFFECTIVE_DATES = "effective_dates"
    LOAN_KIND = "loan_kind"
    CURRENCY = "currency"
    VALUATION = "valuation"
    CREDIT = "credit"
    VEHICLE_AGE = "vehicle_age"
    ODOMETER = "odometer"
    FLAGS = "flags"
    CONDITION = "condition"
    PHOTOS = "photos"
    TERM = "term"
    RATE = "rate"
    AMOUNT = "amount"
    DOWN_PAYMENT = "down_payment"
    FINANCED_ITEMS = "financed_items"
    LTV = "ltv"
    RESIDUAL = "residual"
    PAYMENT_TO_INCOME = "payment_to_income"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 — a rule outcome, not a password
    FAIL = "fail"
    NOTE = "note"  # passed, with something the dealer should know (e.g. the term was shortened)
    SKIPPED = "skipped"  # not checked: a gating rule already rules the program out


class Code(StrEnum):
    """Outcome codes. Fail and note codes own one bit each in a batch's outcome mask."""

    # pass codes (no bit)
    PROGRAM_IN_FORCE = "program_in_force"
    LOAN_KIND_OFFERED = "loan_kind_offered"
    CURRENCY_MATCHES = "currency_matches"
    VALUATION_AVAILABLE = "valuation_available"
    CREDIT_TIER_ASSIGNED = "credit_tier_assigned"
    VEHICLE_AGE_OK = "vehicle_age_ok"
    ODOMETER_OK = "odometer_ok"
    NO_EXCLUDED_FLAGS = "no_excluded_flags"
    CONDITION_OK = "condition_ok"
    PHOTOS_OK = "photos_ok"
    TERM_OK = "term_ok"
    RATE_FOUND = "rate_found"
    AMOUNT_OK = "amount_ok"
    DOWN_PAYMENT_OK = "down_payment_ok"
    FINANCED_ITEMS_OK = "financed_items_ok"
    LTV_OK = "ltv_ok"
    RESIDUAL_OK = "residual_ok"
    PTI_OK = "pti_ok"
    NOT_EVALUATED = "not_evaluated"  # the status of rules skipped after a gating failure
    # fail and note codes (one bit each, in this order)
    PROGRAM_NOT_IN_FORCE = "program_not_in_force"
    LOAN_KIND_NOT_OFFERED = "loan_kind_not_offered"
    CURRENCY_MISMATCH = "currency_mismatch"
    MANUAL_APPRAISAL_REQUIRED = "manual_appraisal_required"
    CREDIT_SCORE_BELOW_MINIMUM = "credit_score_below_minimum"
    VEHICLE_TOO_OLD = "vehicle_too_old"
    VEHICLE_AGE_UNKNOWN = "vehicle_age_unknown"
    ODOMETER_TOO_HIGH = "odometer_too_high"
    ODOMETER_UNKNOWN = "odometer_unknown"
    EXCLUDED_FLAG = "excluded_flag"
    CONDITION_TOO_LOW = "condition_too_low"
    PHOTOS_MISSING = "photos_missing"
    TERM_SHORTENED = "term_shortened"
    TERM_TOO_SHORT = "term_too_short"
    RATE_NOT_OFFERED = "rate_not_offered"
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum"
    AMOUNT_ABOVE_MAXIMUM = "amount_above_maximum"
    AMOUNT_BELOW_LONG_TERM_MINIMUM = "amount_below_long_term_minimum"
    DOWN_PAYMENT_TOO_LOW = "down_payment_too_low"
    TAXES_FEES_NOT_FINANCED = "taxes_fees_not_financed"
    BACKEND_NOT_FINANCED = "backend_not_financed"
    BACKEND_ABOVE_LIMIT = "backend_above_limit"
    LTV_ABOVE_MAXIMUM = "ltv_above_maximum"
    RESIDUAL_LTV_EXCEEDED = "residual_ltv_exceeded"
    RESIDUAL_CURVE_MISSING = "residual_curve_missing"
    PTI_EXCEEDED = "pti_exceeded"


# rule → (pass code, its fail/note codes)
RULE_CODES: Final[dict[Rule, tuple[Code, tuple[Code, ...]]]] = {
    Rule.EFFECTIVE_DATES: (Code.PROGRAM_IN_FORCE, (Code.PROGRAM_NOT_IN_FORCE,)),
    Rule.LOAN_KIND: (Code.LOAN_KIND_OFFERED, (Code.LOAN_KIND_NOT_OFFERED,)),
    Rule.CURRENCY: (Code.CURRENCY_MATCHES, (Code.CURRENCY_MISMATCH,)),
    Rule.VALUATION: (Code.VALUATION_AVAILABLE, (Code.MANUAL_APPRAISAL_REQUIRED,)),
    Rule.CREDIT: (Code.CREDIT_TIER_ASSIGNED, (Code.CREDIT_SCORE_BELOW_MINIMUM,)),
    Rule.VEHICLE_AGE: (Code.VEHICLE_AGE_OK, (Code.VEHICLE_TOO_OLD, Code.VEHICLE_AGE_UNKNOWN)),
    Rule.ODOMETER: (Code.ODOMETER_OK, (Code.ODOMETER_TOO_HIGH, Code.ODOMETER_UNKNOWN)),
    Rule.FLAGS: (Code.NO_EXCLUDED_FLAGS, (Code.EXCLUDED_FLAG,)),
    Rule.CONDITION: (Code.CONDITION_OK, (Code.CONDITION_TOO_LOW,)),
    Rule.PHOTOS: (Code.PHOTOS_OK, (Code.PHOTOS_MISSING,)),
    Rule.TERM: (Code.TERM_OK, (Code.TERM_TOO_SHORT, Code.TERM_SHORTENED)),
    Rule.RATE: (Code.RATE_FOUND, (Code.RATE_NOT_OFFERED,)),
    Rule.AMOUNT: (
        Code.AMOUNT_OK,
        (
            Code.AMOUNT_BELOW_MINIMUM,
            Code.AMOUNT_ABOVE_MAXIMUM,
            Code.AMOUNT_BELOW_LONG_TERM_MINIMUM,
        ),
    ),
    Rule.DOWN_PAYMENT: (Code.DOWN_PAYMENT_OK, (Code.DOWN_PAYMENT_TOO_LOW,)),
    Rule.FINANCED_ITEMS: (
        Code.FINANCED_ITEMS_OK,
        (Code.BACKEND_ABOVE_LIMIT, Code.TAXES_FEES_NOT_FINANCED, Code.BACKEND_NOT_FINANCED),
    ),
    Rule.LTV: (Code.LTV_OK, (Code.LTV_ABOVE_MAXIMUM,)),
    Rule.RESIDUAL: (Code.RESIDUAL_OK, (Code.RESIDUAL_LTV_EXCEEDED, Code.RESIDUAL_CURVE_MISSING)),
    Rule.PAYMENT_TO_INCOME: (Code.PTI_OK, (Code.PTI_EXCEEDED,)),
}

NOTE_CODES: Final[frozenset[Code]] = frozenset(
    {Code.TERM_SHORTENED, Code.TAXES_FEES_NOT_FINANCED, Code.BACKEND_NOT_FINANCED}
)
PASS_CODES: Final[frozenset[Code]] = frozenset(ok for ok, _ in RULE_CODES.values()) | {
    Code.NOT_EVALUATED
}
_BIT_CODES: Final[tuple[Code, ...]] = tuple(c for c in Code if c not in PASS_CODES)
BIT: Final[dict[Code, int]] = {c: 1 << i for i, c in enumerate(_BIT_CODES)}
"""The outcome-mask bit of each fail and note code."""
FAIL_MASK: Final[int] = sum(b for c, b in BIT.items() if c not in NOTE_CODES)
"""Bits that make a pair ineligible."""
GATING_CODES: Final[tuple[Code, ...]] = (
    Code.PROGRAM_NOT_IN_FORCE,
    Code.LOAN_KIND_NOT_OFFERED,
    Code.CURRENCY_MISMATCH,
    Code.MANUAL_APPRAISAL_REQUIRED,
)
"""Rules that rule a program out before anything else means something: when one fails, the
other rules are reported as skipped (a title lender has nothing to say about a purchase loan)."""
GATING_MASK: Final[int] = sum(BIT[c] for c in GATING_CODES)
RULE_OF: Final[dict[Code, Rule]] = {
    code: rule for rule, (ok, others) in RULE_CODES.items() for code in (ok, *others)
}

_TEMPLATES: Final[dict[Code, str]] = {
    Code.PROGRAM_IN_FORCE: "The program is in force.",
    Code.LOAN_KIND_OFFERED: "The lender offers this kind of loan.",
    Code.CURRENCY_MATCHES: "The appraisal is in the program's currency.",
    Code.VALUATION_AVAILABLE: "The car has a valuation to lend against.",
    Code.CREDIT_TIER_ASSIGNED: "The applicant's score places them in tier {tier}.",
    Code.VEHICLE_AGE_OK: "Cars up to {max_age_years} years old are accepted.",
    Code.ODOMETER_OK: "Cars with up to {max_odometer_km} km are accepted.",
    Code.NO_EXCLUDED_FLAGS: "The car carries none of the flags this lender excludes.",
    Code.CONDITION_OK: "The condition grade meets the minimum of {min_grade}.",
    Code.PHOTOS_OK: "Every photo the lender requires is present.",
    Code.TERM_OK: "The requested term is offered for this car.",
    Code.RATE_FOUND: "The rate sheet prices this tier, term and vehicle age.",
    Code.AMOUNT_OK: "The amount financed is within the lender's limits.",
    Code.DOWN_PAYMENT_OK: "The down payment meets the lender's minimum.",
    Code.FINANCED_ITEMS_OK: "Everything in the loan amount may be financed.",
    Code.LTV_OK: "The loan-to-value at signing is within the tier's limit of {max_ltv_pct}.",
    Code.RESIDUAL_OK: "The loan stays within {max_ltv_pct} of the car's forecast value for the "
    "whole term.",
    Code.PTI_OK: "The payment is within the lender's payment-to-income limit.",
    Code.NOT_EVALUATED: "Not checked: this program cannot lend on this deal (see above).",
    Code.PROGRAM_NOT_IN_FORCE: "The program is not in force on {as_of} (in force from "
    "{effective_from}; last day: {effective_to}).",
    Code.LOAN_KIND_NOT_OFFERED: "This lender offers {offered} loans, not {requested} loans.",
    Code.CURRENCY_MISMATCH: "The appraisal is in {appraisal_currency} but the program lends in "
    "{program_currency}.",
    Code.MANUAL_APPRAISAL_REQUIRED: "The car needs a manual appraisal before any lender can "
    "offer against it: {reason}.",
    Code.CREDIT_SCORE_BELOW_MINIMUM: "A credit score of {score} is below this lender's minimum "
    "of {min_score}.",
    Code.VEHICLE_TOO_OLD: "The car is {age_years} years old; this lender takes cars up to "
    "{max_age_years} years.",
    Code.VEHICLE_AGE_UNKNOWN: "The car's model year is unknown, so its age cannot be checked; "
    "enter the model year.",
    Code.ODOMETER_TOO_HIGH: "The odometer reads {odometer_km} km; this lender takes cars up to "
    "{max_odometer_km} km.",
    Code.ODOMETER_UNKNOWN: "The odometer reading is missing; read it from the dashboard.",
    Code.EXCLUDED_FLAG: "The car is flagged {flags}, which this lender does not finance.",
    Code.CONDITION_TOO_LOW: "The condition grade {grade} is below this lender's minimum of "
    "{min_grade}.",
    Code.PHOTOS_MISSING: "The lender requires photos that are missing or failed their checks: "
    "{views}.",
    Code.TERM_SHORTENED: "The term is shortened from {requested_months} to {offered_months} "
    "months, the longest this lender offers for the car's {limited_by}.",
    Code.TERM_TOO_SHORT: "A {term_months}-month term is shorter than this lender's minimum of "
    "{min_term_months} months.",
    Code.RATE_NOT_OFFERED: "The rate sheet has no rate for tier {tier} at {term_months} months "
    "for the car's age in years ({age_years}).",
    Code.AMOUNT_BELOW_MINIMUM: "The amount financed, {amount_minor}, is below this lender's "
    "minimum of {min_minor}.",
    Code.AMOUNT_ABOVE_MAXIMUM: "The amount financed, {amount_minor}, is above this lender's "
    "maximum of {max_minor}.",
    Code.AMOUNT_BELOW_LONG_TERM_MINIMUM: "Terms over {term_over_months} months need at least "
    "{min_minor} financed; this deal finances {amount_minor}.",
    Code.DOWN_PAYMENT_TOO_LOW: "The down payment of {down_minor} is below the {required_minor} "
    "this lender requires.",
    Code.TAXES_FEES_NOT_FINANCED: "This lender does not finance taxes and fees: {amount_minor} "
    "is due at signing.",
    Code.BACKEND_NOT_FINANCED: "This lender does not finance GAP or service contracts: "
    "{amount_minor} is due at signing or must be dropped.",
    Code.BACKEND_ABOVE_LIMIT: "Backend products of {backend_minor} exceed this lender's limit "
    "of {max_minor} ({max_pct} of the car's value).",
    Code.LTV_ABOVE_MAXIMUM: "Financing {amount_minor} against a value of {value_minor} is "
    "{ltv_pct} loan-to-value; tier {tier} allows up to {max_ltv_pct} (at most {max_amount_minor}).",
    Code.RESIDUAL_LTV_EXCEEDED: "In month {month} the balance would be {peak_ltv_pct} of the "
    "car's forecast value, above this lender's {max_ltv_pct} limit; finance at most "
    "{max_amount_minor} or shorten the term.",
    Code.RESIDUAL_CURVE_MISSING: "The appraisal has no residual-value forecast, so the value "
    "over the term cannot be checked.",
    Code.PTI_EXCEEDED: "A payment of {payment_minor} is {pti_pct} of monthly income; this lender "
    "allows up to {max_pti_pct}.",
}

_SYMBOLS: Final[dict[str, str]] = {"USD": "$", "CAD": "CA$", "EUR": "€", "GBP": "£"}


_GROUP = [str(n) for n in range(1000)]  # a leading group of digits
_COMMA_GROUP = [f",{n:03d}" for n in range(1000)]  # a following group
_CENTS = [f".{n:02d}" for n in range(100)]


def _grouped(n: int) -> str:
    """``1234567`` → ``1,234,567`` (``f"{n:,}"``; below a million from tables, which is faster)."""
    if 0 <= n < 1000:
        return _GROUP[n]
    if 0 <= n < 1_000_000:
        return _GROUP[n // 1000] + _COMMA_GROUP[n % 1000]
    return f"{n:,}"


def format_money(minor: int, currency: str = "USD") -> str:
    """``123456`` → ``$1,234.56`` (or ``1,234.56 XYZ`` for currencies without a symbol here)."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(int(minor)), 100)
    symbol = _SYMBOLS.get(currency)
    body = _grouped(units) + _CENTS[cents]
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


_NONE_SHOWN: Final[dict[str, str]] = {"effective_to": "open-ended", "age_years": "unknown"}


def _display(key: str, value: object, currency: str) -> str:
    """Any parameter value as text, whatever its type (the defensive path)."""
    if value is None:
        return _NONE_SHOWN.get(key, "unknown")
    try:
        return _FORMAT[_kind(key)](value, currency)
    except (TypeError, ValueError):
        return str(value)


def _money(value: Any, currency: str) -> str:
    return format_money(int(value), currency)


def _pct(value: Any, currency: str) -> str:
    return f"{value:.1f}%"


def _km(value: Any, currency: str) -> str:
    return f"{round(value):,}"


def _other(value: Any, currency: str) -> str:
    if value is None:  # "open-ended", "unknown": the key decides (render_reason's _display)
        raise TypeError("no value")
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v).replace("_", " ") for v in sorted(value, key=str))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_FORMAT: Final[dict[str, Callable[[Any, str], str]]] = {
    "money": _money,
    "pct": _pct,
    "km": _km,
    "other": _other,
}


def _kind(key: str) -> str:
    for suffix, kind in (("_minor", "money"), ("_pct", "pct"), ("_km", "km")):
        if key.endswith(suffix):
            return kind
    return "other"


# code → (template, ((field, formatter), ...)); looked up by plain strings too (StrEnum hashing)
_SPECS: Final[dict[str, tuple[str, tuple[tuple[str, Callable[[Any, str], str]], ...]]]] = {
    code: (
        template,
        tuple((f, _FORMAT[_kind(f)]) for _, f, _, _ in string.Formatter().parse(template) if f),
    )
    for code, template in _TEMPLATES.items()
}


def render_reason(code: str | Code, params: Mapping[str, object] | None = None) -> str:
    """The sentence for an outcome ``code`` with its ``params`` (``currency`` selects symbols).

    Unknown codes and missing or odd parameters never raise: a dealer screen must always get
    text (a missing parameter shows as ``?``).
    """
    spec = _SPECS.get(code)
    if spec is None:
        return f"Outcome {code}."
    template, fields = spec
    if not fields:
        return template
    params = params or {}
    currency = str(params.get("currency", "USD"))
    try:
        return template.format_map({f: fmt(params[f], currency) for f, fmt in fields})
    except (KeyError, TypeError, ValueError):
        shown = {f: _display(f, params[f], currency) if f in params else "?" for f, _ in fields}
        return template.format_map(shown)


_Field = tuple[str, bool, Callable[[Any, str], str]]  # (name, is money, formatter)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


# code → the template as (literal text, field or "") pieces, each field with its formatter
_PIECES: Final[dict[str, tuple[tuple[str, str, Callable[[Any, str], str] | None], ...]]] = {
    code: tuple(
        (lit, f or "", _FORMAT[_kind(f)] if f else None)
        for lit, f, _, _ in string.Formatter().parse(template)
    )
    for code, template in _TEMPLATES.items()
}


class Partial(NamedTuple):
    """A sentence template with some fields already rendered: the rest are positional ``{}``
    fields, formatted from a pair's parameters by :meth:`SentenceWriter.fill`.

    ``pieces`` is the text around the remaining fields (one more piece than fields, no
    escaping), with each field's own text written into it, for :func:`fill_columns`: money as
    its digits with the currency's symbol or code in the pieces either side; ``None`` where that
    cannot be done.
    """

    code: str
    template: str
    fields: tuple[_Field, ...]
    pieces: tuple[str, ...] | None = None


def _field_edges(fmt: Callable[[Any, str], str], currency: str) -> tuple[str, str] | None:
    """The text :func:`fill_columns` puts before and after a remaining field's own text (money:
    the currency's symbol before its digits, or its code after them)."""
    if fmt is _money:
        symbol = _SYMBOLS.get(currency)
        return (symbol, "") if symbol else ("", f" {currency}")
    return ("", "") if fmt in (_pct, _km, _other) else None


def partial(code: str | Code, fixed: Mapping[str, Any]) -> Partial | None:
    """``code``'s template with the fields in ``fixed`` rendered now, as :func:`render_reason`
    renders them (``fixed["currency"]`` selects money symbols); ``None`` for an unknown code or
    when a fixed value needs :func:`render_reason`'s defensive path."""
    pieces = _PIECES.get(code)
    if pieces is None:
        return None
    currency = str(fixed.get("currency", "USD"))
    text: list[str | None] = []  # the sentence's text, None where a remaining field goes
    fields: list[_Field] = []
    for lit, f, fmt in pieces:
        text.append(lit)
        if fmt is None:
            continue
        if f in fixed:
            try:
                text.append(fmt(fixed[f], currency))
            except (TypeError, ValueError):
                return None
        else:
            text.append(None)
            fields.append((f, fmt is _money, fmt))
    if not fields:
        return Partial(str(code), "".join(t for t in text if t is not None), ())
    template = "".join("{}" if t is None else _escape(t) for t in text)
    return Partial(str(code), template, tuple(fields), _pieces(text, fields, currency))


def _pieces(text: list[str | None], fields: list[_Field], currency: str) -> tuple[str, ...] | None:
    edges = [_field_edges(fmt, currency) for _, _, fmt in fields]
    if None in edges:
        return None
    pieces: list[str] = []
    current = ""
    around = iter(cast(list[tuple[str, str]], edges))
    for t in text:
        if t is not None:
            current += t
            continue
        before, after = next(around)
        pieces.append(current + before)
        current = after
    pieces.append(current)
    return tuple(pieces)


_WHOLE: Final[dict[str, Partial]] = {
    code: p for code in _TEMPLATES if (p := partial(code, {})) is not None
}


class SentenceWriter:
    """Renders sentences exactly as :func:`render_reason` does, remembering the money amounts it
    has formatted: one writer per match, where the same amounts recur across programs.

    Any parameter the fast path cannot format sends the sentence through :func:`render_reason`,
    so the text never differs.
    """

    __slots__ = ("_money",)

    def __init__(self) -> None:
        self._money: dict[tuple[Any, str], str] = {}

    def render(self, code: str | Code, params: Mapping[str, Any]) -> str:
        """The sentence for ``code`` with ``params``."""
        whole = _WHOLE.get(code)
        if whole is None:
            return render_reason(code, params)
        return self.fill(whole, params)

    def fill(self, partial: Partial, params: Mapping[str, Any]) -> str:
        """The sentence of ``partial`` with its remaining fields taken from ``params`` (which
        holds every parameter of the sentence, so a fallback renders the whole of it)."""
        fields = partial.fields
        if not fields:
            return partial.template
        currency = params.get("currency", "USD")
        if type(currency) is not str:
            currency = str(currency)
        money = self._money
        parts = []
        try:
            for f, is_money, fmt in fields:
                value = params[f]
                if is_money:
                    key = (value, currency)
                    text = money.get(key)
                    if text is None:
                        text = money[key] = fmt(value, currency)
                    parts.append(text)
                else:
                    parts.append(fmt(value, currency))
        except (KeyError, TypeError, ValueError):
            return render_reason(partial.code, params)
        return partial.template.format(*parts)

    def fill_many(
        self,
        code: str | Code,
        partials: Sequence[Partial | None],
        params: Sequence[Mapping[str, Any]],
    ) -> list[str]:
        """The sentences of one ``code`` for many pairs (``partials[i]`` with ``params[i]``),
        formatted field by field across the pairs: the same text as :meth:`fill` row by row.

        Every partial must leave the same fields open (made by :func:`partial` with the same
        fixed field names); ``None`` partials and values the fast path cannot format go through
        :meth:`render` row by row.
        """
        if not params:
            return []
        first = partials[0]
        if first is None or any(p is None for p in partials):
            return self._row_by_row(code, partials, params)
        columns = []
        try:
            for name, is_money, fmt in first.fields:
                values = [prm[name] for prm in params]
                if is_money:
                    columns.append(self._money_column(values, params))
                elif fmt is _pct:
                    columns.append([f"{value:.1f}%" for value in values])  # _pct, inline
                else:
                    columns.append([fmt(value, "") for value in values])
        except (KeyError, TypeError, ValueError):
            return self._row_by_row(code, partials, params)
        if len(columns) == 1:
            return [p.template.format(a) for p, a in zip(partials, columns[0], strict=True)]  # type: ignore[union-attr]
        return [
            p.template.format(*row)  # type: ignore[union-attr]
            for p, row in zip(partials, zip(*columns, strict=True), strict=True)
        ]

    def _row_by_row(
        self,
        code: str | Code,
        partials: Sequence[Partial | None],
        params: Sequence[Mapping[str, Any]],
    ) -> list[str]:
        return [
            self.render(code, prm) if p is None else self.fill(p, prm)
            for p, prm in zip(partials, params, strict=True)
        ]

    def _money_column(self, values: list[Any], params: Sequence[Mapping[str, Any]]) -> list[str]:
        currency = params[0].get("currency", "USD")
        symbol = _SYMBOLS.get(currency) if type(currency) is str else None
        if symbol is None or any(prm.get("currency", "USD") != currency for prm in params):
            money = self._money
            out = []
            for value, prm in zip(values, params, strict=True):
                cur = str(prm.get("currency", "USD"))
                key = (value, cur)
                text = money.get(key)
                if text is None:
                    text = money[key] = _money(value, cur)
                out.append(text)
            return out
        # format_money's own arithmetic, inline, for whole non-negative cents
        memo = self._money
        out = []
        for v in values:
            key = (v, currency)
            text = memo.get(key)
            if text is None:
                text = memo[key] = (
                    f"{symbol}{v // 100:,}.{v % 100:02d}"
                    if type(v) is int and v >= 0
                    else _money(v, currency)
                )
            out.append(text)
        return out


def fill_columns(
    fields: Sequence[_Field],
    pieces: Sequence[Sequence[str]],
    columns: Sequence[npt.NDArray[Any]],
    lists: Sequence[list[Any]] | None = None,
) -> list[str] | None:
    """Sentences of one code, row ``i`` from piece ``pieces[k][i]`` of each row's partial (one
    column per piece of :attr:`Partial.pieces`; every partial must have them) and value
    ``columns[k][i]`` of each of ``fields`` (the fields the partials leave open, in their order):
    the same text :meth:`SentenceWriter.fill` gives row by row.

    Each distinct value is formatted once, and each sentence joined from its pieces at C level.
    ``None`` when the values need the row-by-row path: a negative or non-integer amount, a
    non-finite distance, text that is not an integer. ``lists``, when given, are the columns'
    values as Python values (``column.tolist()``), which the caller often has already.
    """
    if not columns or not len(columns[0]):
        return [] if columns else None
    texts: list[list[str]] = []
    for k, ((_, is_money, fmt), column) in enumerate(zip(fields, columns, strict=True)):
        kind = column.dtype.kind
        known = lists[k] if lists is not None else None
        if is_money:
            if kind not in "iu" or np.minimum.reduce(column) < 0:
                return None
            texts.append(_each_once(column, _money_digits, known))
        elif fmt is _pct:
            if kind not in "fiu":
                return None
            texts.append(_each_once(column, _pct_texts, known))
        elif fmt is _km:
            if kind == "f":
                if not (np.abs(column) < 2.0**52).all():
                    return None
                column = np.rint(column).astype(np.int64)  # round() to even, as _km does
            elif kind not in "iu":
                return None
            texts.append(_each_once(column, _KM_TEXTS))
        elif kind in "iu":
            texts.append(_each_once(column, _INT_TEXTS, known))
        else:
            return None
    interleaved: list[Sequence[Any]] = [pieces[0]]
    for text, after in zip(texts, pieces[1:], strict=True):
        interleaved += (text, after)
    return list(map("".join, zip(*interleaved, strict=True)))


def _money_digits(minors: list[int]) -> list[str]:
    """``123456`` → ``1,234.56`` for each: :func:`format_money` of non-negative amounts, without
    the currency. Many amounts of the same magnitude are joined from tables of digit groups."""
    if len(minors) < 48:
        return [_grouped(m // 100) + _CENTS[m % 100] for m in minors]
    units, cents = np.divmod(np.array(minors, np.int64), 100)
    least, most = int(units.min()), int(units.max())
    if most < 1000:
        groups = [map(_GROUP.__getitem__, units.tolist())]
    elif least >= 1000 and most < 1_000_000:
        thousands, ones = np.divmod(units, 1000)
        groups = [
            map(_GROUP.__getitem__, thousands.tolist()),
            map(_COMMA_GROUP.__getitem__, ones.tolist()),
        ]
    else:
        return list(map("{:,}.{:02d}".format, units.tolist(), cents.tolist()))
    return list(map("".join, zip(*groups, map(_CENTS.__getitem__, cents.tolist()), strict=True)))


def _each_once(
    column: npt.NDArray[Any],
    render: Callable[[list[Any]], list[str]],
    values: list[Any] | None = None,
) -> list[str]:
    """``render`` of the column's values (as Python values: ``values`` when given), given each
    distinct value once."""
    if values is None:
        values = column.tolist()
    distinct = list(dict.fromkeys(values))
    if len(distinct) * 4 > len(values) * 3:  # mostly distinct: looking them up costs more
        return render(values)
    if len(distinct) == 1:  # a constant column (the car's value, its odometer)
        return render(distinct) * len(values)
    shown = dict(zip(distinct, render(distinct), strict=True))
    return list(map(shown.__getitem__, values))


def _each(render: Callable[[Any], str]) -> Callable[[list[Any]], list[str]]:
    def render_all(values: list[Any]) -> list[str]:
        return list(map(render, values))

    return render_all


# "{:.1f}%" of every tenth from 0.0 to 999.9, by tenths
_PCT_TABLE = [whole + tenth for whole in _GROUP for tenth in [f".{n}%" for n in range(10)]]


def _pct_texts(values: list[Any]) -> list[str]:
    """``"{:.1f}%"`` of each value (:func:`_pct`). Many values are rounded to tenths in numpy and
    looked up where that is what ``format`` writes: below 1000 and away from a tie (the product
    by ten is exact to well under 1e-6 there); other values are formatted by ``format``."""
    if len(values) < 64:
        return list(map("{:.1f}%".format, values))
    x = np.array(values, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        tenths = x * 10.0
        rounded = np.rint(tenths)
        odd = ~((tenths >= 0) & (rounded < 10_000)) | (
            np.abs(np.abs(tenths - rounded) - 0.5) <= 1e-6
        )
    odd |= np.signbit(x)
    out = list(map(_PCT_TABLE.__getitem__, np.where(odd, 0, rounded).astype(np.int64).tolist()))
    for i in odd.nonzero()[0].tolist():
        out[i] = f"{values[i]:.1f}%"
    return out


_KM_TEXTS = _each(_grouped)
_INT_TEXTS = _each(str)


def status_of(code: Code) -> Status:
    """Pass, fail, note or skipped for an outcome code."""
    if code is Code.NOT_EVALUATED:
        return Status.SKIPPED
    if code in NOTE_CODES:
        return Status.NOTE
    return Status.FAIL if code in BIT else Status.PASS


def codes_in(mask: int) -> list[Code]:
    """The fail and note codes set in an outcome mask, in rule order."""
    return [c for c in _BIT_CODES if mask & BIT[c]]
