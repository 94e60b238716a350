"""The integer fields at every edge, on both of py_host's paths: the pydantic
models (Python values) and raw JSON to the module. docs/ABI.md's rule: an
integer is a JSON number written with no fraction and no exponent (``-0``
is 0), of any length; outside its field's range it is ``out_of_range``.
Anything else, ``1.0``, ``1e2``, ``true``, ``"10"``, is ``invalid_type``.
Every expected result below comes from that rule and the ranges
(timeout 1..=255, retries 0..=255, job_id -2**31..=2**31-1)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import tutorial_input
from hypothesis import given, settings
from hypothesis import strategies as st

import py_host

INTEGER_FIELDS = ("timeout", "retries", "job_id")
ONE_HOST = tutorial_input(host_list=["h"])
HUGE = 10**400
"""An integer of 401 digits, past every integer type the module has."""

# Each edge as a Python value, and as JSON text where the rule says the
# text alone decides (forms Python cannot write: -0, an exponent).
BEYOND_EVERY_RANGE: list[tuple[str, Any, str]] = [
    ("2**64", 2**64, "18446744073709551616"),
    ("2**63", 2**63, "9223372036854775808"),
    ("-2**63 - 1", -(2**63) - 1, "-9223372036854775809"),
    ("-10**30", -(10**30), "-1" + "0" * 30),
    ("10**400", HUGE, "1" + "0" * 400),
    ("-10**400", -HUGE, "-1" + "0" * 400),
]
NOT_INTEGERS: list[tuple[str, Any, str]] = [
    ("1.0", 1.0, "1.0"),
    ("1e2", 1e2, "1e2"),
    ("1E+2", 1e2, "1E+2"),
    ("-0.0", -0.0, "-0.0"),
    ("10.5", 10.5, "10.5"),
    ("-1e30", -1e30, "-1e30"),
    ("true", True, "true"),
    ("false", False, "false"),
    ("null", None, "null"),
    ('"10"', "10", '"10"'),
    ("a list", [10], "[10]"),
    ("an object", {"n": 10}, '{"n": 10}'),
]


@dataclass(frozen=True)
class Edge:
    field: str
    value: Any
    """As a Python value, for the models."""
    text: str
    """As JSON text, for the module: the rule reads the text."""
    expected: int | str
    """The number read, or the error's kind."""


EDGES: dict[str, Edge] = {
    "timeout 1": Edge("timeout", 1, "1", 1),
    "timeout 255": Edge("timeout", 255, "255", 255),
    "timeout 0": Edge("timeout", 0, "0", "out_of_range"),
    "timeout -0": Edge("timeout", -0, "-0", "out_of_range"),
    "timeout 256": Edge("timeout", 256, "256", "out_of_range"),
    "timeout -1": Edge("timeout", -1, "-1", "out_of_range"),
    "retries 0": Edge("retries", 0, "0", 0),
    "retries -0": Edge("retries", -0, "-0", 0),
    "retries 255": Edge("retries", 255, "255", 255),
    "retries 256": Edge("retries", 256, "256", "out_of_range"),
    "retries -1": Edge("retries", -1, "-1", "out_of_range"),
    "job_id -0": Edge("job_id", -0, "-0", 0),
    "job_id -2**31": Edge("job_id", -(2**31), "-2147483648", -(2**31)),
    "job_id 2**31 - 1": Edge("job_id", 2**31 - 1, "2147483647", 2**31 - 1),
    "job_id 2**31": Edge("job_id", 2**31, "2147483648", "out_of_range"),
    "job_id -2**31 - 1": Edge("job_id", -(2**31) - 1, "-2147483649", "out_of_range"),
}
for _field in INTEGER_FIELDS:
    for _name, _value, _text in BEYOND_EVERY_RANGE:
        EDGES[f"{_field} {_name}"] = Edge(_field, _value, _text, "out_of_range")
    for _name, _value, _text in NOT_INTEGERS:
        EDGES[f"{_field} {_name}"] = Edge(_field, _value, _text, "invalid_type")


class Recorder:
    """An executor that fails every attempt and notes each one's timeout, so
    the output and the notes show the three numbers the module read."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def __call__(self, host: str, action: str, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return False


@pytest.fixture(scope="module")
def rust() -> Iterator[py_host.RustModule]:
    with py_host.load() as module:
        yield module


def json_with(field: str, text: str) -> str:
    """The input of one host as JSON with ``field``'s value written as ``text``."""
    fields = {name: json.dumps(value) for name, value in ONE_HOST.items()}
    fields[field] = text
    return "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"


def outcome(
    call: Callable[[py_host.RustModule], object], edge: Edge, rust: py_host.RustModule
) -> tuple[object, tuple[object, ...]]:
    """What ``call`` did: the error's kind and path, or the number read.

    Input the rule refuses runs as a dry run on ``rust``; input it accepts
    runs on a module of its own with a :class:`Recorder`: the timeout it
    saw, the attempts made (1 + retries) and the job_id must be the numbers
    the edge's value is."""
    if isinstance(edge.expected, str):
        try:
            call(rust)
        except py_host.InvalidInput as error:
            return error.kind, error.path
        return "accepted", ()
    recorder = Recorder()
    with py_host.load(executor=recorder) as module:
        output = call(module)
    if isinstance(output, bytes):
        output = py_host.ProcedureOutput.model_validate_json(output)
    assert isinstance(output, py_host.ProcedureOutput)
    read = {
        "timeout": recorder.timeouts[0],
        "retries": output.failures[0].attempts - 1,
        "job_id": output.job_id,
    }
    return read[edge.field], ()


def expected(edge: Edge) -> tuple[int | str, tuple[object, ...]]:
    return edge.expected, (edge.field,) if isinstance(edge.expected, str) else ()


@pytest.mark.parametrize("edge", EDGES.values(), ids=EDGES.keys())
def test_the_models_follow_the_integer_rule(rust: py_host.RustModule, edge: Edge) -> None:
    fields = {**ONE_HOST, edge.field: edge.value}
    if isinstance(edge.expected, str):
        # Refused by the models alone, as start_procedure raises it: the
        # module must not be what covers for a model that accepts too much.
        with pytest.raises(py_host.InvalidInput) as raised:
            py_host.ProcedureInput.model_validate(fields)
        error = raised.value
        assert (error.kind, error.path) == expected(edge)
    else:
        got = outcome(lambda module: module.start_procedure(fields), edge, rust)
        assert got == expected(edge)


@pytest.mark.parametrize("edge", EDGES.values(), ids=EDGES.keys())
def test_the_module_follows_the_integer_rule(rust: py_host.RustModule, edge: Edge) -> None:
    text = json_with(edge.field, edge.text)
    got = outcome(lambda module: module.start_procedure_json(text), edge, rust)
    assert got == expected(edge)


@pytest.mark.parametrize("edge", EDGES.values(), ids=EDGES.keys())
def test_a_model_that_skipped_validation_meets_the_same_rule(
    rust: py_host.RustModule, edge: Edge
) -> None:
    unchecked = py_host.ProcedureInput.model_construct(**{**ONE_HOST, edge.field: edge.value})
    got = outcome(lambda module: module.start_procedure(unchecked), edge, rust)
    assert got == expected(edge)


def test_a_huge_integer_is_not_copied_whole_into_the_message(rust: py_host.RustModule) -> None:
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure_json(json_with("job_id", "9" * 100_000))
    assert raised.value.kind == "out_of_range"
    assert len(raised.value.message) < 200


ANY_NUMBERISH = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.integers(-300, 300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.integers(-300, 300).map(str),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(INTEGER_FIELDS), value=ANY_NUMBERISH)
def test_models_and_module_agree_on_any_value_of_an_integer_field(
    rust: py_host.RustModule, field: str, value: object
) -> None:
    """The same acceptance and the same kind on both paths, for values no
    table lists: the other fields are valid, so each path has one problem
    at most to report."""
    fields = {**ONE_HOST, field: value}
    try:
        py_host.ProcedureInput.model_validate(fields)
        by_models = "accepted"
    except py_host.InvalidInput as error:
        by_models = error.kind
    try:
        rust.start_procedure_json(json.dumps(fields))
        by_module = "accepted"
    except py_host.InvalidInput as error:
        by_module = error.kind
    assert by_models == by_module
