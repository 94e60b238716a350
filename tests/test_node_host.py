"""A second host, in Node.js, written from docs/ABI.md alone (tests/node_host/host.mjs):
every vector gets py_host's answer, and every export, its printed output and its error paths
behave as the document says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ABI_FUNCTIONS, ABI_VERSION_FUNCTION, ROOT, VECTORS, module_file, python_answer

NODE_HOST = ROOT / "tests/node_host/host.mjs"
MODULE = ROOT / "py_host/rust_lib.wasm"
SERVER1_DOWN_REPLY = {
    "ok": {
        "job_id": 1,
        "result": "partial",
        "message": "1 host failed",
        "failed_hosts": ["server1"],
        "failures": [{"host": "server1", "attempts": 4, "reason": "host is down"}],
        "dry_run": False,
    }
}
"""The tutorial's procedure with server1 down, as "A call traced step by step" gives it."""


def node_host(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the Node host with ``args``; fail, not skip, when Node.js is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH: the Node host needs Node.js 20 or later")
    return subprocess.run(
        [node, NODE_HOST, *map(str, args)],
        # Quiets node:wasi's ExperimentalWarning; unlike --disable-warning,
        # Node 18 (Debian's) knows it.
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def host_json(*args: str | Path) -> Any:
    """The JSON the Node host prints on stdout, after checking it succeeded."""
    if not MODULE.exists():
        pytest.fail(f"{MODULE} is missing: run `just build`")
    done = node_host(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def vector_answers() -> list[dict[str, Any]]:
    """The Node host's answers to every vector (it checks both start_procedure calls agree)."""
    answers: list[dict[str, Any]] = host_json("vectors", MODULE, ROOT / "tests/vectors.json")
    return answers


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """The Node host's report of every export called on purpose."""
    exercised: dict[str, Any] = host_json("exercise", MODULE)
    return exercised


def test_the_node_host_answers_every_vector_once(vector_answers: list[dict[str, Any]]) -> None:
    assert len(vector_answers) == len(VECTORS)


@pytest.mark.parametrize(
    ("index", "vector"), list(enumerate(VECTORS)), ids=[vector["name"] for vector in VECTORS]
)
def test_the_node_host_gives_py_hosts_answer(
    vector_answers: list[dict[str, Any]], index: int, vector: dict[str, Any]
) -> None:
    assert vector_answers[index] == python_answer(vector)


def test_the_module_speaks_abi_version_2(report: dict[str, Any]) -> None:
    assert report["abi_version"] == 2


def test_crate_version_is_the_crates_version(report: dict[str, Any]) -> None:
    assert f'\nversion = "{report["crate_version"]}"\n' in (ROOT / "Cargo.toml").read_text()


def test_print_string_prints_exactly_its_text_and_a_newline(report: dict[str, Any]) -> None:
    texts = [call["text"] for call in report["print_string"]]
    assert any(not text.isascii() for text in texts)
    assert any("\0" in text for text in texts)
    for call in report["print_string"]:
        assert call["reply"] is None
        assert call["printed"] == call["text"] + "\n"


def test_print_int_prints_the_tutorials_sentence(report: dict[str, Any]) -> None:
    numbers = [call["number"] for call in report["print_int"]]
    assert {-(2**31), 2**31 - 1} <= set(numbers)
    for call in report["print_int"]:
        assert call["reply"] is None
        assert call["printed"] == f"Python gave us number {call['number']}\n"


def test_error_paths_print_nothing(report: dict[str, Any]) -> None:
    assert report["printed_by_error_paths"] == ""


def test_the_tutorials_procedure_follows_the_documents_trace(report: dict[str, Any]) -> None:
    tutorial = report["tutorial"]
    assert (tutorial["input_length"], tutorial["live_allocations_with_input"]) == (89, 1)
    assert tutorial["rounds"] == [
        {"action": "reboot", "timeout": 10, "attempt": attempt, "hosts": hosts}
        for attempt, hosts in [
            (1, ["server1", "server2"]),
            (2, ["server1"]),
            (3, ["server1"]),
            (4, ["server1"]),
        ]
    ]
    assert tutorial["reply"] == SERVER1_DOWN_REPLY
    assert tutorial["reply_length"] == 176


def test_free_mem_refuses_to_free_a_reply_twice(report: dict[str, Any]) -> None:
    assert (report["tutorial"]["free_mem_first"], report["tutorial"]["free_mem_second"]) == (0, 1)
    assert report["tutorial"]["live_allocations_after"] == 0


def test_live_allocations_ends_at_zero(report: dict[str, Any]) -> None:
    assert report["live_allocations"] == 0


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        ("print_string, a pointer not from alloc", "invalid_argument"),
        ("print_string, a range past the end of its buffer", "invalid_argument"),
        ("print_string, a pointer past 2 GiB", "invalid_argument"),
        ("print_string, a freed buffer", "invalid_argument"),
        ("print_int, a freed buffer", "invalid_argument"),
        ("print_int, a 3-byte buffer", "invalid_argument"),
        ("print_string, not UTF-8", "invalid_utf8"),
        ("start_procedure, a reply as its input", "invalid_argument"),
        ("print_string, a reply as its input", "invalid_argument"),
    ],
)
def test_bad_inputs_get_the_documented_error_kind(
    report: dict[str, Any], call: str, kind: str
) -> None:
    assert report["errors"][call] == kind


def test_input_that_is_not_utf8_names_the_byte_offset(report: dict[str, Any]) -> None:
    error = report["errors"]["start_procedure, not UTF-8"]
    assert (error["kind"], error["path"]) == ("invalid_utf8", [])
    assert "1" in error["message"]


@pytest.mark.parametrize(
    ("call", "status"),
    [
        ("free_mem, inside a reply", 1),
        ("dealloc, a reply with a wrong length", 1),
        ("dealloc, a reply with its length", 0),
        ("free_mem, a reply freed with dealloc", 1),
        ("dealloc, a wrong length", 1),
        ("free_mem, a buffer from alloc", 1),
        ("dealloc, the first time", 0),
        ("dealloc, the second time", 1),
        ("alloc(2^31)", 0),
        ("alloc(0) is not 0", True),
        ("dealloc(alloc(0), 0)", 0),
    ],
)
def test_alloc_and_the_frees_return_the_documented_status(
    report: dict[str, Any], call: str, status: int | bool
) -> None:
    assert report["errors"][call] == status


def test_start_procedure_into_writes_a_reply_that_fits_into_the_hosts_buffer(
    report: dict[str, Any],
) -> None:
    assert report["into"]["start_procedure_into, a buffer large enough"] == {
        "into_buffer": True,
        "same_as_start_procedure": True,
    }


def test_start_procedure_into_packs_a_reply_too_long_for_the_buffer(report: dict[str, Any]) -> None:
    assert report["into"]["start_procedure_into, a buffer too small"] == {
        "into_buffer": False,
        "same_as_start_procedure": True,
    }


@pytest.mark.parametrize(
    "call",
    [
        "start_procedure_into, an output not from alloc",
        "start_procedure_into, an output past its buffer",
        "start_procedure_into, an output past 2 GiB",
    ],
)
def test_start_procedure_into_refuses_an_output_outside_a_live_buffer_before_running(
    report: dict[str, Any], call: str
) -> None:
    assert report["into"][call] == {"kind": "invalid_argument", "rounds": 0}


def test_start_procedure_into_packs_the_reply_when_its_buffer_was_freed_meanwhile(
    report: dict[str, Any],
) -> None:
    freed = report["into"]["start_procedure_into, its output freed inside execute_round"]
    assert freed == {"packed": True, "reply": SERVER1_DOWN_REPLY, "live_allocations_after": 0}


def test_an_answer_that_is_part_of_a_buffer_fails_the_round_and_stays_the_hosts(
    report: dict[str, Any],
) -> None:
    part = report["rounds"]["execute_round, an answer that is part of a buffer"]
    failures = part["reply"]["ok"]["failures"]
    assert [(failure["host"], failure["attempts"]) for failure in failures] == [
        ("server1", 4),
        ("server2", 4),
    ]
    assert all("not a whole buffer" in failure["reason"] for failure in failures)
    assert part["dealloc_untaken"] == [0, 0, 0, 0]
    assert part["live_allocations_after"] == 0


def test_an_answer_with_the_wrong_number_of_outcomes_fails_the_round(
    report: dict[str, Any],
) -> None:
    wrong = report["rounds"]["execute_round, the wrong number of outcomes"]
    assert wrong["reply"]["ok"]["result"] == "failure"
    assert all("outcomes" in failure["reason"] for failure in wrong["reply"]["ok"]["failures"])
    assert wrong["live_allocations_after"] == 0


def test_an_executor_that_stops_answering_refuses_the_hosts_still_failing(
    report: dict[str, Any],
) -> None:
    stopped = report["rounds"]["execute_round, stops answering after round 1"]["reply"]["ok"]
    assert (stopped["result"], stopped["failed_hosts"], stopped["dry_run"]) == (
        "partial",
        ["server1"],
        False,
    )
    assert stopped["failures"][0]["reason"] == "the executor stopped answering"


@pytest.mark.parametrize("version", [1, 3])
def test_a_module_of_another_abi_version_is_refused(tmp_path: Path, version: int) -> None:
    wat = ABI_FUNCTIONS + f'(func (export "abi_version") (result i32) i32.const {version})'
    done = node_host("exercise", module_file(tmp_path, wat))
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"its abi_version is {version}, this host speaks only 2" in done.stderr


def test_a_module_that_imports_more_than_the_abi_is_refused(tmp_path: Path) -> None:
    wat = '(import "wasi_snapshot_preview1" "path_open" (func (param i32) (result i32)))'
    done = node_host("exercise", module_file(tmp_path, wat + ABI_FUNCTIONS))
    assert done.returncode == 1
    assert "refusing the module: it imports wasi_snapshot_preview1.path_open" in done.stderr


def test_a_reply_past_the_end_of_memory_is_refused(tmp_path: Path) -> None:
    past_the_end = (65536 - 8) << 32 | 100
    wat = (
        ABI_FUNCTIONS.replace(
            '(func (export "start_procedure") (param i32 i32) (result i64) i64.const 0)',
            '(func (export "start_procedure") (param i32 i32) (result i64)'
            f" i64.const {past_the_end})",
        )
        + ABI_VERSION_FUNCTION
    )
    done = node_host("vectors", module_file(tmp_path, wat), ROOT / "tests/vectors.json")
    assert done.returncode == 1
    assert "[65528, 65528+100) passes the end of memory (65536)" in done.stderr


def test_a_panic_is_reported_with_its_trap(tmp_path: Path) -> None:
    wat = (
        '(import "host" "report_panic" (func $report_panic (param i32 i32)))'
        + ABI_FUNCTIONS.replace(
            '(func (export "start_procedure") (param i32 i32) (result i64) i64.const 0)',
            '(func (export "start_procedure") (param i32 i32) (result i64)'
            " i32.const 1024 i32.const 4 call $report_panic unreachable)",
        )
        + '(data (i32.const 1024) "boom")'
        + ABI_VERSION_FUNCTION
    )
    done = node_host("vectors", module_file(tmp_path, wat), ROOT / "tests/vectors.json")
    assert done.returncode == 1
    assert "start_procedure trapped: the module panicked: boom" in done.stderr


def test_the_command_line_shows_its_usage_when_misused() -> None:
    done = node_host("vectors")
    assert done.returncode == 2
    assert "usage: node host.mjs vectors <module.wasm> <vectors.json>" in done.stderr
