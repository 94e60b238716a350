"""Errors a person can read: docs/ABI.md's "Messages", the same words from
the module (every host's) and from py_host's models.

Each expected message is written out from the document's table, not taken
from either side; the shared vectors (tests/vectors.py) pin the module's
words on all three hosts, and here the models are held to the same vectors.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import pydantic
import pytest
from conftest import tutorial_input
from vectors import ELLIPSIS, VECTORS

import py_host

HOST_NAME = "must be a host name (letters, digits, hyphens and dots, RFC 1123); got"
ACTION = (
    'action must be an action name: 1 to 64 ASCII letters, digits, "_", "-" or ".", '
    "starting with a letter or digit; got"
)
NOT_ASCII = "is not an ASCII letter, digit, hyphen or dot"

# (changes to the tutorial's input, kind, path, message)
CASES: list[tuple[dict[str, Any], str, list[str | int], str]] = [
    # The issue's own examples.
    (
        {"timeout": 300},
        "out_of_range",
        ["timeout"],
        "timeout must be a whole number from 1 to 255; got 300",
    ),
    (
        {"retries": "ten"},
        "invalid_type",
        ["retries"],
        'retries must be a whole number from 0 to 255; got "ten"',
    ),
    (
        {"retries": None},
        "invalid_type",
        ["retries"],
        "retries must be a whole number from 0 to 255; got null",
    ),
    (
        {"host_list": ["a", "b", "bad host"]},
        "invalid_value",
        ["host_list", 2],
        f'host_list[2] {HOST_NAME} "bad host" (" " {NOT_ASCII})',
    ),
    # And one of each other row of the table.
    (
        {"timeout": 0},
        "out_of_range",
        ["timeout"],
        "timeout must be a whole number from 1 to 255; got 0",
    ),
    (
        {"timeout": True},
        "invalid_type",
        ["timeout"],
        "timeout must be a whole number from 1 to 255; got true",
    ),
    (
        {"job_id": -(10**400)},
        "out_of_range",
        ["job_id"],
        "job_id must be a whole number from -2147483648 to 2147483647; got a number of 401 digits",
    ),
    (
        {"host_list": "server1"},
        "invalid_type",
        ["host_list"],
        'host_list must be a list of host names; got "server1"',
    ),
    (
        {"host_list": []},
        "invalid_value",
        ["host_list"],
        "host_list must name from 1 to 100000 hosts; got 0",
    ),
    ({"host_list": ["a", 7]}, "invalid_type", ["host_list", 1], f"host_list[1] {HOST_NAME} 7"),
    (
        {"host_list": ["a", "b-"]},
        "invalid_value",
        ["host_list", 1],
        f'host_list[1] {HOST_NAME} "b-" (a label starts or ends with a hyphen)',
    ),
    (
        {"host_list": ["x" * 64 + ".example"]},
        "invalid_value",
        ["host_list", 0],
        f"host_list[0] {HOST_NAME} a string of 72 characters (a label is longer than 63 bytes)",
    ),
    (
        {"host_list": ["a\u0000b"]},
        "invalid_value",
        ["host_list", 0],
        f'host_list[0] {HOST_NAME} "a\\u0000b" ("\\u0000" {NOT_ASCII})',
    ),
    (
        {"host_list": ["server1", "SERVER1"]},
        "invalid_value",
        ["host_list", 1],
        'host_list[1] must not repeat an earlier host (names ignore case); got "SERVER1"',
    ),
    ({"action": "rm/-rf"}, "invalid_value", ["action"], f'{ACTION} "rm/-rf"'),
    ({"action": ["reboot"]}, "invalid_type", ["action"], f"{ACTION} a list"),
    ({"action": "a" * 65}, "invalid_value", ["action"], f"{ACTION} a string of 65 characters"),
    (
        {"dry_run": True},
        "unknown_field",
        ["dry_run"],
        "ProcedureInput has only the fields timeout, retries, host_list, action and job_id; "
        'got "dry_run"',
    ),
]


def without(field: str) -> dict[str, Any]:
    fields = tutorial_input()
    del fields[field]
    return fields


@pytest.mark.parametrize(
    ("fields", "kind", "path", "message"),
    [
        *[
            (tutorial_input(**changes), kind, path, message)
            for changes, kind, path, message in CASES
        ],
        (without("retries"), "missing_field", ["retries"], "retries is missing"),
    ],
)
def test_the_module_and_the_models_say_the_same(
    rust: py_host.RustModule, fields: dict[str, Any], kind: str, path: list[str | int], message: str
) -> None:
    with pytest.raises(py_host.InvalidInput) as by_the_module:
        rust.start_procedure_json(json.dumps(fields))
    with pytest.raises(py_host.InvalidInput) as by_the_models:
        rust.start_procedure(fields)
    for raised in (by_the_module.value, by_the_models.value):
        assert (raised.kind, list(raised.path), raised.message) == (kind, path, message)
        assert str(raised) == f"{message} ({kind})"


# Inputs with several problems: the models find them all, and the first is
# the one the module reports, met in docs/ABI.md's order (the fields as the
# input orders them, then missing fields, then the rules on values).
SEVERAL = [
    {"action": 7, "timeout": 0, "retries": 3, "host_list": ["a"], "job_id": 1},
    {"timeout": 0, "retries": "ten", "host_list": ["a"], "action": "x", "job_id": 1},
    {"host_list": ["a", "b", "A", "bad host"], "job_id": 1, "action": "r/m", "timeout": 1},
    {"job_id": 2**40, "dry_run": 1, "timeout": 1, "retries": 0, "host_list": ["a"], "action": "x"},
    {"host_list": ["bad host", 7], "timeout": 1, "retries": 0, "action": "x", "job_id": 1},
    {"host_list": ["a", "A", "bad host"], "timeout": 1, "retries": 0, "action": "x", "job_id": 1},
    {"host_list": ["b-", "a", "A"], "timeout": 1, "retries": 0, "action": "x", "job_id": 1},
    {"timeout": False, "retries": 0, "host_list": [], "action": "", "job_id": 1},
    {"job_id": None, "host_list": ["a"]},
]


@pytest.mark.parametrize("fields", SEVERAL)
def test_the_models_first_error_is_the_modules_one(
    rust: py_host.RustModule, fields: dict[str, Any]
) -> None:
    with pytest.raises(py_host.InvalidInput) as by_the_module:
        rust.start_procedure_json(json.dumps(fields))
    with pytest.raises(py_host.InvalidInput) as by_the_models:
        rust.start_procedure(fields)
    module, models = by_the_module.value, by_the_models.value
    assert (models.kind, models.path, models.message) == (module.kind, module.path, module.message)


def vector_fields(vector: dict[str, Any]) -> dict[str, Any] | None:
    """A vector's input as the Python values it writes, when it is one
    object with no key twice and nothing Python reads otherwise (an
    infinity)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any] | None:
        return dict(pairs) if len(dict(pairs)) == len(pairs) else None

    try:
        fields = json.loads(vector["input"], object_pairs_hook=unique)
    except ValueError:
        return None
    if not isinstance(fields, dict) or any(
        isinstance(value, float) and not math.isfinite(value) for value in fields.values()
    ):
        return None
    return fields


REFUSED = [vector for vector in VECTORS if "error" in vector["reply"] and vector_fields(vector)]


@pytest.mark.parametrize("vector", REFUSED, ids=[vector["name"] for vector in REFUSED])
def test_the_models_give_each_vectors_message(
    rust: py_host.RustModule, vector: dict[str, Any]
) -> None:
    expected = vector["reply"]["error"]
    assert not expected["message"].endswith(ELLIPSIS)
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure(vector_fields(vector) or {})
    error = raised.value
    assert (error.kind, list(error.path)) == (expected["kind"], expected["path"])
    assert error.message == expected["message"]


def test_invalid_input_carries_every_problem_the_models_find(rust: py_host.RustModule) -> None:
    fields = {"retries": "ten", "timeout": 0, "host_list": ["a", "bad host", "A"], "action": "x"}
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure(fields)
    error = raised.value
    expected = [
        ("invalid_type", ("retries",), 'retries must be a whole number from 0 to 255; got "ten"'),
        ("missing_field", ("job_id",), "job_id is missing"),
        ("out_of_range", ("timeout",), "timeout must be a whole number from 1 to 255; got 0"),
        (
            "invalid_value",
            ("host_list", 1),
            f'host_list[1] {HOST_NAME} "bad host" (" " {NOT_ASCII})',
        ),
        (
            "invalid_value",
            ("host_list", 2),
            'host_list[2] must not repeat an earlier host (names ignore case); got "A"',
        ),
    ]
    assert [(e.kind, e.path, e.message) for e in error.errors] == expected
    assert (error.kind, error.path, error.message) == expected[0]
    assert str(error).splitlines() == [f"{message} ({kind})" for kind, _, message in expected]
    assert "more errors" not in str(error)
    assert pickle.loads(pickle.dumps(error)).errors == error.errors


def test_the_module_reports_one_problem_as_one_entry(rust: py_host.RustModule) -> None:
    fields = {"retries": "ten", "timeout": 0, "host_list": ["a", "bad host"], "action": "x"}
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure_json(json.dumps(fields))
    error = raised.value
    only = ("invalid_type", ("retries",), 'retries must be a whole number from 0 to 255; got "ten"')
    assert [(e.kind, e.path, e.message) for e in error.errors] == [only]
    assert str(error) == f"{only[2]} ({only[0]})"


def test_the_text_lists_ten_problems_and_counts_the_rest(rust: py_host.RustModule) -> None:
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure(tutorial_input(host_list=[f"bad host {i}" for i in range(25)]))
    error = raised.value
    assert [e.path for e in error.errors] == [("host_list", i) for i in range(25)]
    lines = str(error).splitlines()
    assert lines[:10] == [f"{e.message} ({e.kind})" for e in error.errors[:10]]
    assert lines[10:] == ["and 15 more"]


def test_constructing_a_bad_input_raises_invalid_input() -> None:
    """README "Errors": everything py_host raises is a py_host.Error, the
    input model's refusals included; InvalidInput is a ValueError, as
    pydantic's ValidationError is."""
    message = "timeout must be a whole number from 1 to 255; got 0"
    fields = tutorial_input(timeout=0)
    for make in (
        lambda: py_host.ProcedureInput(**fields),
        lambda: py_host.ProcedureInput.model_validate(fields),
        lambda: py_host.ProcedureInput.model_validate_json(json.dumps(fields)),
    ):
        with pytest.raises(py_host.Error) as raised:
            make()
        error = raised.value
        assert isinstance(error, py_host.InvalidInput)
        assert isinstance(error, ValueError)
        assert not isinstance(error, pydantic.ValidationError)
        assert (error.kind, error.path, error.message) == ("out_of_range", ("timeout",), message)
    assert py_host.ProcedureInput(**tutorial_input()).timeout == 10


def test_a_subclass_of_the_input_model_raises_invalid_input_too() -> None:
    class Tagged(py_host.ProcedureInput):
        tag: str = ""

    with pytest.raises(py_host.InvalidInput) as raised:
        Tagged(**tutorial_input(retries=-1))
    assert raised.value.message == "retries must be a whole number from 0 to 255; got -1"
    assert Tagged(**tutorial_input(), tag="x").tag == "x"
