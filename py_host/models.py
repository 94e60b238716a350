"""The procedure's input and output: pydantic mirrors of the Rust structs
(``src/model.rs``), with the same types, ranges and rules, so most bad
input is refused here with the field's name before anything crosses."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, SchemaValidator

from . import _messages as messages
from .errors import ErrorDetail, InvalidInput

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
MAX_HOSTS = messages.MAX_HOSTS

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HostName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=rf"^{_LABEL}(?:\.{_LABEL})*$")
]
"""An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens."""

ActionName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
"""A name the executor looks up, never a command line."""

# A refusal is worded as the module words it (py_host/_messages.py) once
# validation has failed (_reworded), costing a valid input nothing.


def _repeats(
    hosts: list[Any], skip: Collection[int] = (), at: tuple[str, ...] = ()
) -> list[InitErrorDetails]:
    """Each host that repeats an earlier one ignoring case, among the host
    names not at ``skip``; its location is its index after ``at``."""
    seen: set[str] = set()
    problems: list[InitErrorDetails] = []
    for index, host in enumerate(hosts):
        if index in skip or not isinstance(host, str):
            continue
        # A host name is ASCII: lower() is the module's caseless comparison.
        key = host.lower()
        if key in seen:
            problems.append(
                _problem("invalid_value", messages.repeated_host(index, host), (*at, index), host)
            )
        seen.add(key)
    return problems


def _problem(kind: str, message: str, loc: tuple[str | int, ...], value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


FIELDS = ("timeout", "retries", "host_list", "action", "job_id")
"""ProcedureInput's fields, in the order the module looks for missing ones."""

_OWN_KINDS = frozenset({"invalid_value"})
"""The error type of a repeated host: the module's error kind."""

_INTEGERS = {"timeout": (1, 255), "retries": (0, 255), "job_id": (I32_MIN, I32_MAX)}
"""The integer fields and the ranges their rules allow."""

_PYDANTIC_KINDS: dict[str, str] = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "model_type": "invalid_json",
    "model_attributes_type": "invalid_json",
    "dict_type": "invalid_json",
    "json_invalid": "invalid_json",
}
"""pydantic's own error types, in the module's error kinds; any other is
``invalid_type``."""


def _reworded(error: ValidationError, data: Any) -> ValidationError:
    """``error``'s problems in the module's words and in the order the
    module meets them (the ABI document's): reading the input's fields in
    its order, then missing fields, then the rules on values. So the first
    is the one error the module would report."""
    keys = list(data) if isinstance(data, Mapping) else []
    lines = error.errors()
    not_names = {
        line["loc"][1] for line in lines if len(line["loc"]) == 2 and line["loc"][0] == "host_list"
    }
    hosts = data.get("host_list") if isinstance(data, Mapping) else None
    if not_names and isinstance(hosts, list):
        # The hosts were not all names, so the check for repeats did not run.
        repeats = _repeats(
            hosts, {index for index in not_names if isinstance(index, int)}, ("host_list",)
        )
        lines += ValidationError.from_exception_data("", repeats).errors() if repeats else []
    ordered: list[tuple[tuple[int, int, int], InitErrorDetails]] = []
    for line in lines:
        loc, value = line["loc"], line["input"]
        kind, message = _words(line["type"], loc, value, line["msg"])
        field = loc[0] if loc else None
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        if kind == "invalid_json":
            order = (0, 0, 0)
        elif kind == "missing_field":
            order = (2, FIELDS.index(str(field)), 0)
        elif kind == "invalid_value" or (
            kind == "out_of_range" and field == "timeout" and value == 0
        ):
            # The rules on values, checked once the whole object is read.
            order = (3, ("timeout", "action", "host_list").index(str(field)), index)
        else:
            order = (1, keys.index(field) if field in keys else len(keys), index)
        ordered.append((order, _problem(kind, message, loc, value)))
    ordered.sort(key=lambda pair: pair[0])
    return ValidationError.from_exception_data(error.title, [line for _, line in ordered])


def _words(
    pydantic_type: str, loc: tuple[str | int, ...], value: Any, pydantic_message: str
) -> tuple[str, str]:
    """The module's error kind and message for one of pydantic's errors."""
    field = loc[0] if loc else None
    if pydantic_type in _OWN_KINDS:
        return pydantic_type, pydantic_message
    kind = _PYDANTIC_KINDS.get(pydantic_type)
    if kind == "missing_field":
        return kind, messages.missing(str(field))
    if kind == "unknown_field":
        return kind, messages.unknown(field)
    if kind == "invalid_json":
        if pydantic_type == "json_invalid":
            return kind, pydantic_message
        return kind, messages.not_an_object(value)
    is_str = isinstance(value, str)
    if len(loc) == 1 and field in _INTEGERS:
        whole = isinstance(value, int) and not isinstance(value, bool)
        low, high = _INTEGERS[str(field)]
        message = messages.integer(str(field), low, high, value)
        return ("out_of_range" if whole else "invalid_type"), message
    if loc == ("host_list",) and pydantic_type in ("too_short", "too_long"):
        return "invalid_value", messages.host_count(len(value))
    if loc == ("host_list",):
        return "invalid_type", messages.host_list_type(value)
    if len(loc) == 2 and field == "host_list":
        return ("invalid_value" if is_str else "invalid_type"), messages.host(int(loc[1]), value)
    if loc == ("action",):
        return ("invalid_value" if is_str else "invalid_type"), messages.action(value)
    return "invalid_type", pydantic_message


def invalid_input(error: ValidationError) -> InvalidInput:
    """The models' refusal as the same :class:`InvalidInput` the module
    raises, with every problem in ``errors``."""
    errors = [
        ErrorDetail(
            line["type"],
            tuple(segment for segment in line["loc"] if isinstance(segment, (str, int))),
            line["msg"],
        )
        for line in error.errors()
    ]
    first = errors[0]
    return InvalidInput(first.kind, first.message, first.path, errors=errors)


class _RaisingInvalidInput:
    """A model's validator that raises :class:`InvalidInput`, py_host's own
    error and a ValueError, where pydantic's raises its ValidationError
    (which cannot be subclassed, so it cannot be made a py_host error).
    pydantic validates through this for the model's constructor and each
    ``model_validate*``; a model nested in another validates as usual."""

    def __init__(self, validator: SchemaValidator) -> None:
        self._validator = validator

    def validate_python(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._validator.validate_python(*args, **kwargs)
        except ValidationError as error:
            raise invalid_input(error) from None

    def validate_json(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._validator.validate_json(*args, **kwargs)
        except ValidationError as error:
            raise invalid_input(error) from None

    def validate_strings(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._validator.validate_strings(*args, **kwargs)
        except ValidationError as error:
            raise invalid_input(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._validator, name)


def _raise_invalid_input(model: type[BaseModel]) -> None:
    validator = cast(SchemaValidator, model.__pydantic_validator__)
    model.__pydantic_validator__ = cast(SchemaValidator, _RaisingInvalidInput(validator))


class ProcedureInput(BaseModel):
    """Run ``action`` on every host of ``host_list``.

    Strict like the module: an integer field takes an ``int`` of any size
    (out of range: ``out_of_range``) and nothing else, not ``True``,
    ``10.0`` or ``"10"`` (``invalid_type``), as the ABI's rule for JSON
    integers says (docs/ABI.md in the source distribution); and no unknown fields.

    Constructing one, or ``model_validate`` and ``model_validate_json``,
    raises :class:`~py_host.InvalidInput` for a bad input (a ValueError, as
    pydantic's ValidationError is), with the module's kinds, paths and
    words, every problem in its ``errors``.
    """

    # Each field's docstring is its description in the JSON Schema and in
    # an editor's hover, word for word the Rust type's (docs/schemas/).
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    timeout: Annotated[int, Field(ge=1, le=255)]
    """Seconds each attempt may take, 1 to 255."""
    retries: Annotated[int, Field(ge=0, le=255)]
    """Attempts after the first for a host that failed, 0 to 255."""
    host_list: Annotated[list[HostName], Field(min_length=1, max_length=MAX_HOSTS)]
    """Host names (RFC 1123), unique ignoring case, in the order to report them."""
    action: ActionName
    """The action's name, as the host's executor knows it."""
    job_id: Annotated[int, Field(ge=I32_MIN, le=I32_MAX)]
    """The caller's number for this procedure, given back in its output."""

    @field_validator("host_list")
    @classmethod
    def _hosts_are_unique(cls, hosts: list[str]) -> list[str]:
        repeats = _repeats(hosts)
        if repeats:
            raise ValidationError.from_exception_data("host_list", repeats)
        return hosts

    @model_validator(mode="wrap")
    @classmethod
    def _in_the_modules_words(
        cls, data: Any, handler: Callable[[Any], ProcedureInput]
    ) -> ProcedureInput:
        try:
            return handler(data)
        except ValidationError as error:
            raise _reworded(error, data) from None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _raise_invalid_input(cls)


_raise_invalid_input(ProcedureInput)


class HostFailure(BaseModel):
    """Why one host failed, after how many attempts."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    host: str
    """The host, as `host_list` names it."""
    attempts: Annotated[int, Field(ge=1, le=256)]
    """1 to 256: the first attempt and up to 255 retries."""
    reason: str
    """The reason the executor gave for the last failed attempt."""


class ProcedureOutput(BaseModel):
    """What the procedure did."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    job_id: Annotated[int, Field(ge=I32_MIN, le=I32_MAX)]
    """The input's `job_id`."""
    result: Literal["success", "partial", "failure"]
    """`success`: every host succeeded; `partial`: some failed; `failure`: all failed."""
    message: str
    """For people: how many hosts failed, or that nothing ran."""
    failed_hosts: list[str]
    """The hosts that failed, in input order."""
    failures: list[HostFailure]
    """One entry per failed host, in the same order as `failed_hosts`."""
    dry_run: bool
    """True when no executor was granted, so nothing ran."""
