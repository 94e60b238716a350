"""The output a module reports must be what the input and the rounds
py_host ran came to (docs/ABI.md, "What a host checks"). A module written
in WAT replies from a script, so every contradiction can be put to py_host:
each is refused with AbiViolation, and the instance is discarded. Expected
outputs are written from docs/ABI.md's rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import ABI_FUNCTIONS, ABI_VERSION_FUNCTION, module_file

import py_host
from py_host import Outcome, ProcedureInput, Round
from py_host._rounds import _JOB_ID, _job_ids_at_underscores, input_job_id

_SCRIPT_AT = 32768
_ALLOC = '(func (export "alloc") (param i32) (result i32) i32.const 8)'


def scripted(tmp_path: Path, *replies: dict[str, Any]) -> Path:
    """A module whose procedure steps reply ``replies`` in turn, whatever
    they are given: the first for a start, the next ones for each resume
    (the last again when they run out). A reply goes into the host's buffer
    when it fits, else comes packed, as docs/ABI.md says."""
    documents = [json.dumps(reply, separators=(",", ":")).encode() for reply in replies]
    places = [_SCRIPT_AT + 4096 * index for index in range(len(documents))]
    assert all(len(document) < 4096 for document in documents)
    data = "".join(
        f'(data (i32.const {place}) "{_wat_string(document)}")'
        for place, document in zip(places, documents, strict=True)
    )

    def give(index: int, into: bool) -> str:
        place, length = places[index], len(documents[index])
        packed = f"(i64.const {(place << 32) | length})"
        if not into:
            return packed
        return (
            f"(if (result i64) (i32.ge_u (local.get 3) (i32.const {length}))"
            f"(then (memory.copy (local.get 2) (i32.const {place}) (i32.const {length}))"
            f"(i64.const {length})) (else {packed}))"
        )

    def by_step(into: bool) -> str:
        chosen = give(len(documents) - 1, into)
        for index in reversed(range(1, len(documents) - 1)):
            chosen = (
                f"(if (result i64) (i32.eq (local.get $i) (i32.const {index}))"
                f"(then {give(index, into)}) (else {chosen}))"
            )
        return chosen

    functions = ABI_FUNCTIONS
    for name, params in [
        ("start_procedure", "i32 i32"),
        ("start_procedure_into", "i32 i32 i32 i32"),
        ("resume_procedure", "i32 i32 i32 i32"),
    ]:
        functions = functions.replace(
            f'(func (export "{name}") (param {params}) (result i64) i64.const 0)', ""
        )
    # The host's buffer lies below the script, clear of the outbox at 64.
    functions = functions.replace(_ALLOC, _ALLOC.replace("i32.const 8", "i32.const 16384"))
    wat = f"""
    {functions}
    {ABI_VERSION_FUNCTION}
    (global $step (mut i32) (i32.const 0))
    (func (export "start_procedure") (param i32 i32) (result i64)
      (global.set $step (i32.const 1)) {give(0, False)})
    (func (export "start_procedure_into") (param i32 i32 i32 i32) (result i64)
      (global.set $step (i32.const 1)) {give(0, True)})
    (func (export "resume_procedure") (param i32 i32 i32 i32) (result i64)
      (local $i i32)
      (local.set $i (global.get $step))
      (global.set $step (i32.add (global.get $step) (i32.const 1)))
      {by_step(True)})
    {data}
    """
    return module_file(tmp_path, wat)


def _wat_string(data: bytes) -> str:
    return "".join("\\" + format(byte, "02x") for byte in data)


INPUT = {"timeout": 1, "retries": 1, "host_list": ["a", "b", "c"], "action": "reboot", "job_id": 7}


def round(attempt: int, *hosts: str) -> dict[str, Any]:
    return {"round": {"action": "reboot", "timeout": 1, "attempt": attempt, "hosts": list(hosts)}}


class Script:
    """Host ``a`` succeeds, ``b`` is down, ``c`` refuses; the rounds are kept."""

    def __init__(self) -> None:
        self.rounds: list[Round] = []
        self.outcomes = {
            "a": Outcome.ok(),
            "b": Outcome.failed("host is down"),
            "c": Outcome.refused("no"),
        }

    def run_round(self, round: Round) -> Sequence[Outcome]:
        self.rounds.append(round)
        return [self.outcomes[host] for host in round.hosts]


# With retries 1: b fails twice, c is refused at once, a succeeds.
ROUNDS = [round(1, "a", "b", "c"), round(2, "b")]
OUTPUT: dict[str, Any] = {
    "job_id": 7,
    "result": "partial",
    "message": "2 hosts failed",
    "failed_hosts": ["b", "c"],
    "failures": [
        {"host": "b", "attempts": 2, "reason": "host is down"},
        {"host": "c", "attempts": 1, "reason": "no"},
    ],
    "dry_run": False,
}


def output(**changes: Any) -> dict[str, Any]:
    return {"ok": {**OUTPUT, **changes}}


CALLS: dict[str, Callable[[py_host.RustModule, dict[str, Any]], Any]] = {
    "start_procedure": lambda rust, fields: rust.start_procedure(fields),
    "start_procedure_json": lambda rust, fields: rust.start_procedure_json(json.dumps(fields)),
    "start_procedure_buffer": lambda rust, fields: rust.start_procedure_buffer(
        json.dumps(fields)
    ).read(),
}


@pytest.mark.parametrize("call", CALLS)
def test_an_output_that_is_what_the_rounds_came_to_is_taken(tmp_path: Path, call: str) -> None:
    script = Script()
    with py_host.load(scripted(tmp_path, *ROUNDS, output()), executor=script) as rust:
        reply = CALLS[call](rust, INPUT)
    taken = reply if isinstance(reply, py_host.ProcedureOutput) else json.loads(reply)
    if isinstance(taken, dict):
        taken = py_host.ProcedureOutput.model_validate(taken.get("ok", taken))
    assert taken == py_host.ProcedureOutput.model_validate(OUTPUT)
    assert [r.hosts for r in script.rounds] == [("a", "b", "c"), ("b",)]


@pytest.mark.parametrize(
    ("replies", "problem"),
    [
        ([*ROUNDS, output(job_id=8)], "job_id 8, the input's is 7"),
        ([*ROUNDS, output(dry_run=True)], "dry_run is true"),
        (
            [
                *ROUNDS,
                output(failures=[OUTPUT["failures"][0], {**OUTPUT["failures"][1], "host": "d"}]),
            ],
            "host='d'",
        ),
        (
            [
                *ROUNDS,
                output(
                    failures=[{**OUTPUT["failures"][0], "attempts": 200}, OUTPUT["failures"][1]]
                ),
            ],
            "attempts=200",
        ),
        (
            [
                *ROUNDS,
                output(failures=[{**OUTPUT["failures"][0], "attempts": 3}, OUTPUT["failures"][1]]),
            ],
            "attempts=3",
        ),
        (
            [
                *ROUNDS,
                output(
                    failures=[{**OUTPUT["failures"][0], "reason": "fine"}, OUTPUT["failures"][1]]
                ),
            ],
            "reason='fine'",
        ),
        ([*ROUNDS, output(result="success")], "result 'success' with 2 of 3"),
        ([*ROUNDS, output(result="failure")], "result 'failure' with 2 of 3"),
        ([*ROUNDS, output(message="1 host failed")], "message '1 host failed'"),
        ([*ROUNDS, output(failed_hosts=["c", "b"])], "failed_hosts"),
        ([*ROUNDS, output(failed_hosts=["b"])], "failed_hosts"),
        ([*ROUNDS, output(failures=OUTPUT["failures"][::-1], failed_hosts=["c", "b"])], "order"),
        ([*ROUNDS, output(failures=OUTPUT["failures"][:1], failed_hosts=["b"])], "1 failures; 2"),
        (
            [
                *ROUNDS,
                output(result="success", message="0 hosts failed", failures=[], failed_hosts=[]),
            ],
            "0 failures; 2",
        ),
        (
            [
                *ROUNDS,
                output(
                    failures=[{"host": "a", "attempts": 1, "reason": "x"}, *OUTPUT["failures"]],
                    failed_hosts=["a", "b", "c"],
                    result="failure",
                    message="3 hosts failed",
                ),
            ],
            "3 failures; 2",
        ),
        # b has an attempt left after round 1: the output comes too early.
        (
            [
                ROUNDS[0],
                output(failures=[{**OUTPUT["failures"][0], "attempts": 1}, OUTPUT["failures"][1]]),
            ],
            "attempts left",
        ),
        # An executor was granted and answers: a dry run cannot be right.
        (
            [
                output(
                    dry_run=True,
                    result="success",
                    failures=[],
                    failed_hosts=[],
                    message="dry run: x",
                )
            ],
            "it ran no round",
        ),
    ],
)
@pytest.mark.parametrize("call", CALLS)
def test_an_output_that_contradicts_the_input_or_the_rounds_is_refused(
    tmp_path: Path, call: str, replies: list[dict[str, Any]], problem: str
) -> None:
    with py_host.load(scripted(tmp_path, *replies), executor=Script(), max_instances=1) as rust:
        CALLS["start_procedure"](
            rust, {**INPUT, "host_list": ["x"], "retries": 0}
        ) if False else None
        before = set(rust._pool.live())
        with pytest.raises(py_host.AbiViolation, match="contradicts") as raised:
            CALLS[call](rust, INPUT)
        assert problem in str(raised.value)
        assert not set(rust._pool.live()) & before, "the instance that lied is discarded"


DRY_RUN: dict[str, Any] = {
    "job_id": 7,
    "result": "success",
    "message": 'dry run: no executor granted, "reboot" not run on 3 hosts',
    "failed_hosts": [],
    "failures": [],
    "dry_run": True,
}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"job_id": 8}, "job_id 8, the input's is 7"),
        ({"dry_run": False}, "dry_run is false"),
        ({"result": "partial"}, "a dry run reports a failure"),
        (
            {"failed_hosts": ["a"], "failures": [{"host": "a", "attempts": 1, "reason": "x"}]},
            "a dry run reports a failure",
        ),
        ({"message": "1 host failed"}, "a dry run's message"),
    ],
)
@pytest.mark.parametrize("call", CALLS)
def test_without_an_executor_only_the_inputs_dry_run_is_taken(
    tmp_path: Path, call: str, changes: dict[str, Any], problem: str | None
) -> None:
    with py_host.load(scripted(tmp_path, {"ok": {**DRY_RUN, **changes}})) as rust:
        if problem is None:
            assert CALLS[call](rust, INPUT)
        else:
            with pytest.raises(py_host.AbiViolation, match="contradicts") as raised:
                CALLS[call](rust, INPUT)
            assert problem in str(raised.value)


@pytest.mark.parametrize("call", ["start_procedure_json", "start_procedure_buffer"])
@pytest.mark.parametrize(
    "changes", [{"retries": -2}, {"retries": 1000}, {"retries": "9"}, {"timeout": 1.5}]
)
def test_for_an_input_the_module_must_refuse_neither_a_round_nor_an_output_is_taken(
    tmp_path: Path, call: str, changes: dict[str, Any]
) -> None:
    script = Script()
    fields = {**INPUT, **changes}
    asking = scripted(tmp_path, round(1, "a"), output())
    with (
        py_host.load(asking, executor=script) as rust,
        pytest.raises(py_host.AbiViolation, match="asked for a round, but the input"),
    ):
        CALLS[call](rust, fields)
    with (
        py_host.load(scripted(tmp_path, output()), executor=script) as rust,
        pytest.raises(py_host.AbiViolation, match="an output for an input the module must refuse"),
    ):
        CALLS[call](rust, fields)
    assert script.rounds == []


def test_a_model_with_negative_retries_grants_no_round(tmp_path: Path) -> None:
    script = Script()
    model = ProcedureInput.model_construct(**{**INPUT, "retries": -2})
    with (
        py_host.load(scripted(tmp_path, *ROUNDS, output()), executor=script) as rust,
        pytest.raises(py_host.AbiViolation, match="asked for a round, but the input"),
    ):
        rust.start_procedure(model)
    assert script.rounds == []


@pytest.mark.parametrize(
    ("text", "job_id"),
    [
        ('{"timeout":1,"job_id":7}', 7),
        ('{"timeout":1,"job_id" :\t-2147483648 }', -(2**31)),
        # A key may be spelled with an escape; the module reads it as job_id.
        ('{"timeout":1,"job\\u005fid":7}', 7),
        ('{"action":"job_id","job_id":7}', 7),
        # The key x"job_id, then job_id spelled with an escape: one "job_id"
        # followed by a colon, in the text, and not the key.
        ('{"x\\"job_id":9,"job\\u005fid":7}', 7),
        ('{"job_id":7,"job_id":8}', None),
        ('{"x":{"job_id":8},"job_id":7}', 7),
        # Found where the underscores are, or past 16 of them by a full scan.
        ('{"_":1,"job_id":7}', 7),
        ('{"action":"' + "_" * 15 + '","job_id":7}', 7),
        ('{"action":"' + "_" * 16 + '","job_id":7}', 7),
        ('{"action":"' + "_" * 16 + '","job_id":7,"job_id":8}', None),
        ('{"host_list":[' + ",".join(f'"h{n}"' for n in range(10_000)) + '],"job_id":7}', 7),
        ('{"job_id":7.0}', None),
        ('{"job_id":7e0}', None),
        ('{"job_id":"7"}', None),
        ('{"timeout":1}', None),
        ("[7]", None),
    ],
)
def test_the_job_id_a_dry_run_must_report_is_the_one_the_module_reads(
    text: str, job_id: int | None
) -> None:
    assert input_job_id(text.encode()) == job_id


@pytest.mark.parametrize(
    "text",
    [
        '{"timeout":1,"job_id":7}',
        '{"job_id":7,"job_id":8}',
        '{"action":"a_","job_id":7}',
        '{"action":"_","job_id":-7,"x_y":{"job_id" : 8 }}',
        '_"job_id":7}',
        '"job_id":7}',
        '{"host_list":["h1","h2"],"action":"' + "_" * 13 + '","job_id":7}',
    ],
)
def test_the_job_ids_at_the_underscores_are_those_a_full_scan_finds(text: str) -> None:
    data = text.encode()
    assert _job_ids_at_underscores(data) == _JOB_ID.findall(data)


def test_past_16_underscores_the_input_is_scanned_in_full() -> None:
    assert _job_ids_at_underscores(b'{"action":"' + b"_" * 17 + b'","job_id":7}') is None
