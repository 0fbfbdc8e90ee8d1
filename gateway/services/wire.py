"""A fast path for decoding appraisal messages: msgspec mirrors of the pydantic wire models.

The pydantic models in ``edge.protocol`` are the contract. The gateway validates every appraisal
it ingests, and at thousands a second pydantic's validation and re-serialisation were half of the
ingest worker's time. This module derives msgspec structs from the same models (field names,
types, defaults, bounds, patterns, aliases), so nothing is written twice, and decodes with them.

The mirror only ever *accepts less*: a payload it accepts is one the pydantic model accepts with
the same values (checked by differential tests on generated and mutated payloads), and anything
it refuses goes to :func:`edge.protocol.decode`, which accepts or refuses it and names the
problem. So the fast path decides nothing on its own. Where the two libraries differ, the mirror
is made stricter or steps aside:

- patterns end in ``\\Z`` rather than ``$`` (Python's ``$`` also matches before a final newline,
  the Rust engine pydantic uses does not);
- floats are bounded by the largest finite float (the contract refuses infinities);
- a timestamp with more than six fractional digits is left to pydantic (msgspec rounds the
  seventh, pydantic truncates), and so is a payload with a field the models do not have
  (pydantic ignores it; it could also be nested deeper than pydantic allows) or with any escape
  sequence (``\\u0000`` is a NUL, which the contract refuses);
- a model with a validator or serializer of its own cannot be mirrored (import fails), except
  the envelope's two, which :func:`decode_appraisal` applies itself.

The stored report is the body's text as the kiosk sent it (a kiosk writes it with pydantic, so it
is what pydantic would have stored), which the mirror has validated: only the model's fields, no
escape sequences, every value within the contract. Read back with ``AppraisalBody`` it is the
same body; the API returns it in the model's own form.

The gateway reads both forms through the protocols below (``EnvelopeView``, ``AppraisalView``),
which name what it uses of them.
"""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from functools import cache
from typing import (
    Annotated,
    Any,
    Literal,
    Protocol,
    TypeGuard,
    Union,
    get_args,
    get_origin,
)

import annotated_types
import msgspec
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_FOR_CHANNEL,
    AppraisalBody,
    Channel,
    Envelope,
    ParsedTopic,
    ValuationStatus,
)

logger = logging.getLogger(__name__)

APPRAISAL_SCHEMA = SCHEMA_FOR_CHANNEL[Channel.APPRAISALS]
_FLOAT_MAX = sys.float_info.max
# The envelope's own validator and serializer, applied by decode_appraisal (seq required) or
# irrelevant to it (created_at's spelling when the envelope is written, which the gateway never
# does with a mirror). A new one stops the import: the fast path must learn it first.
_ENVELOPE_DECORATORS = {"_seq_rule", "_utc"}


class PhotoView(Protocol):
    """What the gateway reads of a photo record (a ``PhotoRecord`` or its mirror)."""

    @property
    def view(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def phash(self) -> str | None: ...


class VehicleView(Protocol):
    @property
    def vin(self) -> str | None: ...
    @property
    def vin_valid(self) -> bool: ...
    @property
    def odometer_km(self) -> float | None: ...


class ValuationView(Protocol):
    @property
    def status(self) -> ValuationStatus: ...
    @property
    def value_minor(self) -> int | None: ...
    @property
    def currency(self) -> str: ...


class AppraisalView(Protocol):
    """What the gateway reads of an appraisal body (an ``AppraisalBody`` or its mirror)."""

    @property
    def appraisal_id(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def vehicle(self) -> VehicleView: ...
    @property
    def valuation(self) -> ValuationView: ...
    @property
    def photos(self) -> Sequence[PhotoView]: ...


class EnvelopeView(Protocol):
    """What the gateway reads of an envelope (an ``Envelope`` or an appraisal's mirror)."""

    @property
    def schema_(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def kiosk_id(self) -> str: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def body(self) -> Any: ...


class MirrorError(TypeError):
    """A model uses a type or constraint the mirror cannot reproduce exactly."""


def _decorators(model: type[BaseModel]) -> set[str]:
    infos = model.__pydantic_decorators__
    names: set[str] = set()
    for group in (
        infos.validators,
        infos.field_validators,
        infos.root_validators,
        infos.field_serializers,
        infos.model_serializers,
        infos.model_validators,
        infos.computed_fields,
    ):
        names.update(group)
    return names


def _strict_pattern(pattern: str) -> str:
    if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
        raise MirrorError(f"pattern {pattern!r} is not anchored at both ends")
    return pattern[:-1] + r"\Z"


def _constraint_kwargs(constraints: list[Any]) -> dict[str, Any]:
    """pydantic field metadata as ``msgspec.Meta`` keyword arguments."""
    kwargs: dict[str, Any] = {}
    for item in constraints:
        if isinstance(item, annotated_types.Ge):
            kwargs["ge"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            kwargs["gt"] = item.gt
        elif isinstance(item, annotated_types.Le):
            kwargs["le"] = item.le
        elif isinstance(item, annotated_types.Lt):
            kwargs["lt"] = item.lt
        elif isinstance(item, annotated_types.MaxLen):
            kwargs["max_length"] = item.max_length
        elif isinstance(item, annotated_types.MinLen):
            kwargs["min_length"] = item.min_length
        elif isinstance(item, FieldInfo):  # Annotated[X, Field(...)] nested in a type
            kwargs.update(_constraint_kwargs(list(item.metadata)))
        elif (pattern := getattr(item, "pattern", None)) is not None and _only_pattern(item):
            kwargs["pattern"] = _strict_pattern(pattern)
        else:
            raise MirrorError(f"constraint {item!r} has no mirror")
    return kwargs


def _meta(base: Any, constraints: list[Any]) -> Any:
    """``base`` with ``constraints`` (pydantic field metadata) as a msgspec ``Meta``."""
    kwargs = _constraint_kwargs(constraints)
    if base is float:  # the contract refuses infinities (allow_inf_nan=False); JSON has no NaN
        if "gt" not in kwargs:
            kwargs.setdefault("ge", -_FLOAT_MAX)
        if "lt" not in kwargs:
            kwargs.setdefault("le", _FLOAT_MAX)
    if not kwargs:
        return base
    return Annotated[base, msgspec.Meta(**kwargs)]


def _only_pattern(item: Any) -> bool:
    """True for pydantic's general metadata that carries a pattern and nothing else."""
    data = getattr(item, "__dict__", {})
    return set(data) == {"pattern"}


def _mirror_type(annotation: Any, constraints: list[Any]) -> Any:
    """The msgspec type for a pydantic annotation with its field-level ``constraints``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _mirror_type(inner, [*extra, *constraints])
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        # A field's constraints bind the value, never its None.
        mirrored = [a if a is type(None) else _mirror_type(a, constraints) for a in args]
        return Union[tuple(mirrored)]  # noqa: UP007 (built from a runtime tuple)
    if origin is list:
        (item,) = get_args(annotation)
        return _meta(list[_mirror_type(item, [])], constraints)  # type: ignore[misc]
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str:
            raise MirrorError(f"dict keys of {key!r} have no mirror")
        return _meta(dict[str, _mirror_type(value, [])], constraints)  # type: ignore[misc]
    if origin is tuple:
        args = get_args(annotation)
        if Ellipsis in args:
            raise MirrorError("variable-length tuples have no mirror")
        items = tuple(_mirror_type(a, []) for a in args)
        return _meta(tuple.__class_getitem__(items), constraints)
    if origin is Literal:
        if constraints or not all(isinstance(v, str) for v in get_args(annotation)):
            raise MirrorError(f"{annotation!r} has no mirror")
        return annotation
    if origin is not None:
        raise MirrorError(f"{annotation!r} has no mirror")
    if annotation is AwareDatetime:
        return Annotated[datetime, msgspec.Meta(tz=True)]
    if annotation is datetime:
        return datetime
    if annotation in (str, int, float):
        return _meta(annotation, constraints)
    if annotation is bool and not constraints:
        return bool
    if isinstance(annotation, type) and issubclass(annotation, Enum) and not constraints:
        if not all(isinstance(member.value, str) for member in annotation):
            raise MirrorError(f"{annotation!r}: only string enums have a mirror")
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not constraints:
        return mirror(annotation)
    raise MirrorError(f"{annotation!r} has no mirror")


def _holds_datetime(annotation: Any) -> bool:
    if annotation is datetime or annotation is AwareDatetime:
        return True
    return any(_holds_datetime(arg) for arg in get_args(annotation))


def _check_config(model: type[BaseModel], allowed: set[str]) -> None:
    config = model.model_config
    if config.get("extra") != "ignore" or config.get("allow_inf_nan") is not False:
        raise MirrorError(f"{model.__name__}: the mirror assumes extra='ignore', no inf/nan")
    unknown = _decorators(model) - allowed
    if unknown:
        raise MirrorError(f"{model.__name__} has validators or serializers: {sorted(unknown)}")


@cache
def mirror(
    model: type[BaseModel],
    allowed_decorators: frozenset[str] = frozenset(),
    raw_fields: frozenset[str] = frozenset(),
) -> type:
    """A frozen msgspec struct with ``model``'s fields (by their JSON names), types and rules.

    ``raw_fields`` are kept as their JSON text (``msgspec.Raw``), for the caller to decode.
    """
    _check_config(model, set(allowed_decorators))
    fields: list[tuple[str, Any, Any]] = []
    for name, info in model.model_fields.items():
        if name in raw_fields:
            typ: Any = msgspec.Raw
        else:
            typ = _mirror_type(info.annotation, list(info.metadata))
        wire_name = info.alias or name
        if _holds_datetime(info.annotation) and not wire_name.endswith("_at"):
            raise MirrorError(
                f"{model.__name__}.{wire_name}: a timestamp's name must end in '_at' (the fast "
                "path finds timestamps with too many fractional digits by that suffix)"
            )
        if info.default_factory is not None:
            factory: Any = info.default_factory  # never one taking the data (not in the contract)
            default: Any = msgspec.field(default_factory=factory, name=wire_name)
        elif info.default is PydanticUndefined:
            default = msgspec.field(name=wire_name)
        else:
            default = msgspec.field(default=info.default, name=wire_name)
        fields.append((name, typ, default))
    struct: type = msgspec.defstruct(
        f"{model.__name__}Mirror" + ("Raw" if raw_fields else ""),
        fields,
        kw_only=True,
        frozen=True,
        # A field this gateway does not know (from a newer kiosk) sends the message to pydantic,
        # which ignores it. Refusing here also bounds the nesting to the schema's own (pydantic
        # refuses JSON nested deeper than about 200 levels, msgspec does not).
        forbid_unknown_fields=True,
        module=__name__,
    )
    return struct


# The envelope with its body kept as text: the body is decoded (validated) on its own, and its
# text, as the kiosk sent it, is the stored report.
_ENVELOPE = mirror(Envelope[AppraisalBody], frozenset(_ENVELOPE_DECORATORS), frozenset({"body"}))
_ENVELOPE_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_ENVELOPE)
_BODY_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(mirror(AppraisalBody))
# A timestamp with seven or more fractional digits (msgspec rounds them, pydantic truncates),
# found after a name ending in "_at": every timestamp field's does (the mirror refuses a model
# where one does not), and escapes, which could spell one otherwise, never get this far.
_LONG_FRACTION = re.compile(rb'_at"\s*:\s*"[^"]{19}[.,][0-9]{7}')


class PhotoFacts(msgspec.Struct, frozen=True, gc=False):
    view: str
    sha256: str
    phash: str | None


class VehicleFacts(msgspec.Struct, frozen=True, gc=False):
    vin: str | None
    vin_valid: bool
    odometer_km: float | None


class ValuationFacts(msgspec.Struct, frozen=True, gc=False):
    status: ValuationStatus
    value_minor: int | None
    currency: str


class DecodedAppraisal(msgspec.Struct, frozen=True, gc=False):
    """What the gateway reads of an appraisal the mirror decoded, and its stored report.

    Kept instead of the whole decoded report: a batch holds hundreds of messages until its
    commit, and the whole report is hundreds of objects (a float per month of the residual
    curve, a dict per readiness monitor …). Made and dropped one message at a time, their
    memory is reused at once; held for a batch, they cost the decoder fresh memory (and cache
    misses) for every one.
    """

    appraisal_id: str
    started_at: datetime
    vehicle: VehicleFacts
    valuation: ValuationFacts
    photos: tuple[PhotoFacts, ...]
    report: bytes


class DecodedEnvelope(msgspec.Struct, frozen=True, gc=False):
    """An appraisal message the mirror decoded (an :class:`EnvelopeView`)."""

    schema_: str
    message_id: str
    kiosk_id: str
    seq: int | None
    created_at: datetime
    body: DecodedAppraisal


def decode_appraisal(topic: ParsedTopic, payload: bytes) -> DecodedEnvelope | None:
    """The appraisal message in ``payload``, or None for pydantic to decide.

    None means "not decided here": anything malformed, unusual or on another channel.
    """
    if (
        topic.channel is not Channel.APPRAISALS
        or len(payload) > MAX_PAYLOAD_BYTES
        or b"\x00" in payload
        # An escape could spell a NUL (which the contract refuses), a field's name or a
        # timestamp that the byte checks here would not see. Kiosks escape only quotes,
        # backslashes and control characters inside text, which is rare.
        or b"\\" in payload
        or _LONG_FRACTION.search(payload) is not None
    ):
        return None
    try:
        envelope = _ENVELOPE_DECODER.decode(payload)
        if (
            envelope.schema_ != APPRAISAL_SCHEMA
            or envelope.seq is None  # the envelope's own rule: seq on every message but status
            or envelope.kiosk_id != topic.kiosk_id
        ):
            return None
        report = bytes(envelope.body)
        body = _BODY_DECODER.decode(report)
    except (ValueError, RecursionError):  # msgspec's errors and bad UTF-8 inside a string
        return None
    vehicle, valuation = body.vehicle, body.valuation
    return DecodedEnvelope(
        envelope.schema_,
        envelope.message_id,
        envelope.kiosk_id,
        envelope.seq,
        envelope.created_at,
        DecodedAppraisal(
            body.appraisal_id,
            body.started_at,
            VehicleFacts(vehicle.vin, vehicle.vin_valid, vehicle.odometer_km),
            ValuationFacts(valuation.status, valuation.value_minor, valuation.currency),
            tuple(PhotoFacts(p.view, p.sha256, p.phash) for p in body.photos),
            report,
        ),
    )


def is_appraisal(body: object) -> TypeGuard[AppraisalView]:
    """True for an appraisal body, decoded by pydantic or by the mirror."""
    return isinstance(body, AppraisalBody | DecodedAppraisal)


def report_json(body: AppraisalView) -> bytes:
    """The stored report of an appraisal body, as UTF-8 JSON: the body's text as the kiosk sent
    it when the mirror decoded it, pydantic's serialisation otherwise. Either reads back (with
    ``AppraisalBody.model_validate``) as the same body."""
    if isinstance(body, DecodedAppraisal):
        return body.report
    assert isinstance(body, BaseModel)
    return body.__pydantic_serializer__.to_json(body)


def public_report(report: dict[str, Any]) -> dict[str, Any]:
    """A stored report in the contract's own form: every field, defaults filled in.

    Reports are stored as the kiosk sent them (``gateway.services.wire``): a kiosk that left out
    a field with a default, or wrote a time as ``+00:00`` rather than ``Z``, is shown here as
    pydantic writes it. A report that no longer validates (an older schema) is shown as stored.
    """
    try:
        return AppraisalBody.model_validate(report).model_dump(mode="json")
    except ValidationError:
        logger.warning("a stored report does not validate against the current contract")
        return report


__all__ = [
    "APPRAISAL_SCHEMA",
    "AppraisalView",
    "DecodedAppraisal",
    "DecodedEnvelope",
    "EnvelopeView",
    "MirrorError",
    "PhotoView",
    "ValuationView",
    "VehicleView",
    "decode_appraisal",
    "is_appraisal",
    "mirror",
    "public_report",
    "report_json",
]
