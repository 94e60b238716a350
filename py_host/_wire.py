"""The JSON documents that cross the boundary (docs/ABI.md), and how their
errors become py_host exceptions."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

from .errors import AbiViolation, InvalidInput, ModuleError
from .models import ProcedureInput, ProcedureOutput

INPUT_ERROR_KINDS = frozenset(
    {
        "invalid_utf8",
        "invalid_json",
        "missing_field",
        "unknown_field",
        "duplicate_field",
        "invalid_type",
        "out_of_range",
        "invalid_value",
    }
)
"""The error kinds that mean the caller's input was at fault."""

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class _ErrorBody(BaseModel):
    model_config = _STRICT
    kind: str
    message: str
    path: list[str | int]


class _ErrorReply(BaseModel):
    model_config = _STRICT
    error: _ErrorBody


class _ProcedureReply(BaseModel):
    model_config = _STRICT
    ok: ProcedureOutput | None = None
    error: _ErrorBody | None = None


def module_error(body: _ErrorBody) -> ModuleError:
    """The exception for an error the module reported."""
    cls = InvalidInput if body.kind in INPUT_ERROR_KINDS else ModuleError
    return cls(body.kind, body.message, body.path)


OK_PREFIX = b'{"ok":'
"""How a step reply that carries the output begins."""


def parse_procedure_reply(reply: bytes) -> ProcedureOutput:
    """The output of a ``start_procedure`` reply, or the error it carries."""
    if reply.startswith(OK_PREFIX) and reply.endswith(b"}"):
        # The usual reply, parsed without its envelope: what lies between must
        # be one whole ProcedureOutput, so a reply with anything else is refused.
        try:
            output: ProcedureOutput = _OUTPUT.validate_json(reply[len(OK_PREFIX) : -1])
            return output
        except ValidationError as error:
            raise AbiViolation(f"start_procedure replied with an invalid output: {error}") from None
    try:
        parsed = _ProcedureReply.model_validate_json(reply)
    except ValidationError as error:
        raise AbiViolation(f"start_procedure replied with an invalid document: {error}") from None
    if parsed.error is not None and parsed.ok is None:
        raise module_error(parsed.error)
    if parsed.ok is None or parsed.error is not None:
        raise AbiViolation('start_procedure replied with neither or both of "ok" and "error"')
    return parsed.ok


def check_status(function: str, reply: bytes | None) -> None:
    """Raise the error a print function's reply carries, if it returned one."""
    if reply is None:
        return
    try:
        parsed = _ErrorReply.model_validate_json(reply)
    except ValidationError as error:
        raise AbiViolation(f"{function} replied with an invalid error document: {error}") from None
    raise module_error(parsed.error)


def strict_json(data: bytes) -> Any:
    """``data`` decoded as the module decodes its documents (serde_json):
    UTF-8 only, no key twice in one object, no NaN or Infinity. A number
    with a fraction or an exponent is refused too: no field of an input or a
    round takes one (``10.0`` is not an integer, docs/ABI.md). Raises
    ValueError, or RecursionError for absurd nesting."""
    return _STRICT_DECODER.decode(data.decode("utf-8"))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return fields


def _refuse_number(text: str) -> NoReturn:
    raise ValueError(f"{text} is not an integer")


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_float=_refuse_number, parse_constant=_refuse_number
)
"""Made once: json.loads makes a decoder on every call given any option,
which took a fifth of the time of checking a round."""


def encode_input(procedure: ProcedureInput) -> bytes:
    """The input's fields as JSON, exactly as they are.

    A model that skipped validation (``model_construct``) may hold anything.
    pydantic's serializer writes most wrong values as they are, so the module
    sees and refuses them, but it writes a ``True`` in an int field as ``1``,
    and fails on a missing field: those cases go through ``json.dumps``."""
    fields = vars(procedure)
    try:
        if (
            fields.keys() == _FIELDS
            and type(fields["timeout"]) is not bool
            and type(fields["retries"]) is not bool
            and type(fields["job_id"]) is not bool
        ):
            return _SERIALIZER.to_json(procedure, warnings=False)
        return json.dumps(
            fields, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
    except (PydanticSerializationError, TypeError, ValueError, RecursionError) as error:
        raise InvalidInput("invalid_type", f"cannot encode the input as JSON: {error}") from None


_FIELDS = ProcedureInput.model_fields.keys()
_SERIALIZER = ProcedureInput.__pydantic_serializer__
_OUTPUT = ProcedureOutput.__pydantic_validator__
