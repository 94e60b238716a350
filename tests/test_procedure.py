"""start_procedure: results, the dry run, and every refusal of bad input, by
the pydantic models and by the module itself."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import tutorial_input

import py_host


def test_the_tutorial_scene_with_server1_down() -> None:
    with py_host.load(executor=py_host.SimulatedNetwork(down={"server1"})) as rust:
        output = rust.start_procedure(py_host.ProcedureInput(**tutorial_input()))
    assert output == py_host.ProcedureOutput(
        job_id=1,
        result="partial",
        message="1 host failed",
        failed_hosts=["server1"],
        failures=[py_host.HostFailure(host="server1", attempts=4, reason="host is down")],
        dry_run=False,
    )


def test_without_an_executor_nothing_runs(rust: py_host.RustModule) -> None:
    output = rust.start_procedure(tutorial_input())
    assert output.dry_run
    assert output.result == "success"
    assert output.failed_hosts == []
    assert output.message == 'dry run: no executor granted, "reboot" not run on 2 hosts'


NETWORK_CASES = [
    # network, hosts, retries -> result, failed hosts, message
    (py_host.SimulatedNetwork(), ["a", "b"], 3, "success", [], "0 hosts failed"),
    (py_host.SimulatedNetwork(down={"a", "b"}), ["a", "b"], 1, "failure", ["a", "b"], "2 hosts failed"),
    (py_host.SimulatedNetwork(flaky={"a": 2}), ["a", "b"], 2, "success", [], "0 hosts failed"),
    (py_host.SimulatedNetwork(flaky={"a": 2}), ["a", "b"], 1, "partial", ["a"], "1 host failed"),
    (py_host.SimulatedNetwork(down={"B"}), ["c", "b", "a"], 0, "partial", ["b"], "1 host failed"),
    (py_host.SimulatedNetwork(down={"c", "a"}), ["c", "b", "a"], 0, "partial", ["c", "a"], "2 hosts failed"),
]  # fmt: skip


@pytest.mark.parametrize("case", NETWORK_CASES)
def test_results_on_a_simulated_network(case: tuple[Any, ...]) -> None:
    network, hosts, retries, result, failed, message = case
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(tutorial_input(host_list=hosts, retries=retries))
    assert (output.result, output.failed_hosts, output.message) == (result, failed, message)
    assert [f.host for f in output.failures] == failed
    assert all(f.attempts == retries + 1 for f in output.failures)


def test_a_slow_host_times_out_on_every_attempt() -> None:
    network = py_host.SimulatedNetwork(slow={"server2": 30})
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(tutorial_input(timeout=10, retries=1))
    assert output.failures == [
        py_host.HostFailure(host="server2", attempts=2, reason="timed out after 10 s")
    ]


def test_the_json_entry_point_gives_the_same_output() -> None:
    with py_host.load(executor=py_host.SimulatedNetwork(down={"server1"})) as rust:
        typed = rust.start_procedure(tutorial_input())
        raw = rust.start_procedure_json(json.dumps(tutorial_input()).encode())
    assert py_host.ProcedureOutput.model_validate_json(raw) == typed


# Each case: the input, then the kind and path both the pydantic models and
# the module report. Where they word the path differently, the module's is
# given and pydantic's must be a prefix of it.
BAD_INPUTS: list[tuple[str, dict[str, Any], str, tuple[str | int, ...]]] = [
    ("timeout zero", tutorial_input(timeout=0), "out_of_range", ("timeout",)),
    ("timeout above u8", tutorial_input(timeout=256), "out_of_range", ("timeout",)),
    ("timeout negative", tutorial_input(timeout=-1), "out_of_range", ("timeout",)),
    ("retries above u8", tutorial_input(retries=300), "out_of_range", ("retries",)),
    ("job_id above i32", tutorial_input(job_id=2**31), "out_of_range", ("job_id",)),
    ("job_id below i32", tutorial_input(job_id=-(2**31) - 1), "out_of_range", ("job_id",)),
    ("timeout a float", tutorial_input(timeout=10.5), "invalid_type", ("timeout",)),
    ("timeout an integral float", tutorial_input(timeout=10.0), "invalid_type", ("timeout",)),
    ("timeout a bool", tutorial_input(timeout=True), "invalid_type", ("timeout",)),
    ("timeout a string", tutorial_input(timeout="10"), "invalid_type", ("timeout",)),
    ("retries null", tutorial_input(retries=None), "invalid_type", ("retries",)),
    ("action a number", tutorial_input(action=7), "invalid_type", ("action",)),
    ("host_list a string", tutorial_input(host_list="server1"), "invalid_type", ("host_list",)),
    ("a host a number", tutorial_input(host_list=["a", 7]), "invalid_type", ("host_list", 1)),
    ("empty host list", tutorial_input(host_list=[]), "invalid_value", ("host_list",)),
    ("empty host name", tutorial_input(host_list=["a", ""]), "invalid_value", ("host_list", 1)),
    ("underscore", tutorial_input(host_list=["bad_host"]), "invalid_value", ("host_list", 0)),
    ("leading hyphen", tutorial_input(host_list=["-a"]), "invalid_value", ("host_list", 0)),
    ("empty label", tutorial_input(host_list=["a..b"]), "invalid_value", ("host_list", 0)),
    ("label too long", tutorial_input(host_list=["a" * 64]), "invalid_value", ("host_list", 0)),
    ("shell in host", tutorial_input(host_list=["a;reboot"]), "invalid_value", ("host_list", 0)),
    ("NUL in host", tutorial_input(host_list=["a\0b"]), "invalid_value", ("host_list", 0)),
    ("non-ASCII host", tutorial_input(host_list=["bücher"]), "invalid_value", ("host_list", 0)),
    (
        "duplicate host",
        tutorial_input(host_list=["a", "b", "a"]),
        "invalid_value",
        ("host_list", 2),
    ),
    ("duplicate by case", tutorial_input(host_list=["a", "A"]), "invalid_value", ("host_list", 1)),
    ("empty action", tutorial_input(action=""), "invalid_value", ("action",)),
    ("action with space", tutorial_input(action="re boot"), "invalid_value", ("action",)),
    ("action too long", tutorial_input(action="a" * 65), "invalid_value", ("action",)),
    ("unknown field", tutorial_input(priority=1), "unknown_field", ("priority",)),
]
MISSING = [
    (f"missing {name}", {k: v for k, v in tutorial_input().items() if k != name}, "missing_field", (name,))
    for name in tutorial_input()
]  # fmt: skip


@pytest.mark.parametrize(("case", "fields", "kind", "path"), BAD_INPUTS + MISSING)
def test_bad_input_is_refused_alike_by_models_and_module(
    rust: py_host.RustModule, case: str, fields: dict[str, Any], kind: str, path: tuple[Any, ...]
) -> None:
    with pytest.raises(py_host.InvalidInput) as by_models:
        rust.start_procedure(fields)
    with pytest.raises(py_host.InvalidInput) as by_module:
        rust.start_procedure_json(json.dumps(fields).encode())
    assert (by_module.value.kind, by_module.value.path) == (kind, path), case
    assert by_models.value.kind == kind, case
    assert path[: len(by_models.value.path)] == by_models.value.path, case
    assert rust.live_allocations() == 0


@pytest.mark.parametrize(
    ("case", "fields", "kind", "path"),
    # model_construct drops unknown fields, so that case cannot bypass the models.
    [case for case in BAD_INPUTS if case[2] != "unknown_field"],
)
def test_the_module_refuses_what_bypasses_the_models(
    rust: py_host.RustModule, case: str, fields: dict[str, Any], kind: str, path: tuple[Any, ...]
) -> None:
    unchecked = py_host.ProcedureInput.model_construct(**fields)
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure(unchecked)
    assert (raised.value.kind, raised.value.path) == (kind, path), case


def test_a_model_holding_what_json_cannot_encode_is_refused(rust: py_host.RustModule) -> None:
    unchecked = py_host.ProcedureInput.model_construct(**tutorial_input(job_id=object()))
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure(unchecked)
    assert raised.value.kind == "invalid_type"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "invalid_json"),
        (b'[10, 3, ["a"], "reboot", 1]', "invalid_json"),
        (b"{", "invalid_json"),
        (json.dumps(tutorial_input()).encode() + b" trailing", "invalid_json"),
        (b"\xff{}", "invalid_utf8"),
        (b'{"timeout":1,"timeout":2}', "duplicate_field"),
    ],
)
def test_the_json_entry_point_refuses_malformed_documents(
    rust: py_host.RustModule, data: bytes, kind: str
) -> None:
    with pytest.raises(py_host.InvalidInput) as raised:
        rust.start_procedure_json(data)
    assert raised.value.kind == kind
    assert rust.live_allocations() == 0


def test_invalid_input_names_the_field_in_its_message(rust: py_host.RustModule) -> None:
    with pytest.raises(py_host.InvalidInput, match=r"^host_list\[1\]: .*bad_host"):
        rust.start_procedure_json(json.dumps(tutorial_input(host_list=["a", "bad_host"])))


def test_a_model_nested_deeper_than_json_can_encode_is_refused(rust: py_host.RustModule) -> None:
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    unchecked = py_host.ProcedureInput.model_construct(**tutorial_input(host_list=nested))
    with pytest.raises(py_host.InvalidInput):
        rust.start_procedure(unchecked)
