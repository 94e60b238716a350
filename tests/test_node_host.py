"""A second host, in Node.js, written from docs/ABI.md alone (tests/node_host/host.mjs):
every vector gets the answer the document gives (tests/vectors.py), and every export,
the traced procedure, its output and its error paths behave as the document says."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from conftest import FAULTS_WASM, ROOT
from vectors import VECTORS, assert_documented_answer, vector_params

NODE_HOST = ROOT / "tests/node_host/host.mjs"
MODULE = ROOT / "py_host/rust_lib.wasm"

TUTORIAL_INPUT = (
    '{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}'
)
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
"""The tutorial's procedure with server1 down, as "A procedure traced step by step" gives it."""

HUGE_OUTPUT = "x" * (4 << 20)
"""What the faults module prints for fault:huge-output and fault:huge-output-then-error."""


def node_host(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the Node host with ``args``; fail, not skip, when Node.js is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH: the Node host needs Node.js 20 or later")
    return subprocess.run(
        [node, NODE_HOST, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def host_stdout(mode: str, module: Path, *args: str | Path) -> str:
    """The Node host's stdout in ``mode`` for ``module``, after checking it succeeded."""
    if not module.exists():
        pytest.fail(f"{module} is missing: run `just build` and `just build-faults`")
    done = node_host(mode, module, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- the vectors: the answers docs/ABI.md's rules give (tests/vectors.py) ---


@pytest.fixture(scope="module")
def vector_answers() -> dict[str, list[dict[str, Any]]]:
    """The Node host's answers to every vector, {reply, rounds}, with the executor answering
    synchronously and asynchronously (each run checks that start_procedure and
    start_procedure_into agree)."""
    vectors = ROOT / "tests/vectors.json"
    return {
        "sync": json.loads(host_stdout("vectors", MODULE, vectors)),
        "async": json.loads(host_stdout("vectors", MODULE, vectors, "--async")),
    }


@pytest.mark.parametrize("executor", ["sync", "async"])
def test_the_node_host_answers_every_vector_once(
    vector_answers: dict[str, list[dict[str, Any]]], executor: str
) -> None:
    assert len(vector_answers[executor]) == len(VECTORS)


@pytest.mark.parametrize("executor", ["sync", "async"])
@pytest.mark.parametrize("vector", vector_params())
def test_the_node_host_gives_the_documented_answer(
    vector_answers: dict[str, list[dict[str, Any]]], vector: dict[str, Any], executor: str
) -> None:
    answer = vector_answers[executor][VECTORS.index(vector)]
    assert_documented_answer(vector, answer["reply"], answer["rounds"])


# --- every export called on purpose (tests/node_host/exercise.mjs) ---


@pytest.fixture(scope="module")
def exercise() -> tuple[str, dict[str, Any]]:
    """What the module printed through the Node host, and the host's report after it
    (its last line)."""
    stdout = host_stdout("exercise", MODULE)
    report_starts = stdout.removesuffix("\n").rfind("\n") + 1
    return stdout[:report_starts], json.loads(stdout[report_starts:])


@pytest.fixture(scope="module")
def report(exercise: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return exercise[1]


def test_the_module_speaks_abi_version_3(report: dict[str, Any]) -> None:
    assert report["abi_version"] == 3


def test_crate_version_is_the_crates_version(report: dict[str, Any]) -> None:
    assert f'\nversion = "{report["crate_version"]}"\n' in (ROOT / "Cargo.toml").read_text()


def test_print_string_and_print_int_return_0(report: dict[str, Any]) -> None:
    texts = [call["text"] for call in report["print_string"]]
    assert any(not text.isascii() for text in texts)
    assert any("\0" in text for text in texts)
    numbers = [call["number"] for call in report["print_int"]]
    assert {-(2**31), 2**31 - 1} <= set(numbers)
    assert [call["reply"] for call in report["print_string"] + report["print_int"]] == [None] * (
        len(texts) + len(numbers)
    )


def test_what_the_module_prints_reaches_stdout_in_order_before_the_report(
    exercise: tuple[str, dict[str, Any]],
) -> None:
    printed, report = exercise
    assert printed == (
        "".join(call["text"] + "\n" for call in report["print_string"])
        + "".join(f"Python gave us number {call['number']}\n" for call in report["print_int"])
        + "between two steps\n"  # printed between two steps of a procedure
    )


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
        ("outbox, the same address every time", True),
        ("free_mem, the outbox", 1),
        ("dealloc, the outbox", 1),
        ("free_mem, the crate_version text", 1),
    ],
)
def test_alloc_outbox_and_the_frees_return_the_documented_status(
    report: dict[str, Any], call: str, status: int | bool
) -> None:
    assert report["errors"][call] == status


def live_allocations_counts(report: Any) -> list[int]:
    """Every live_allocations count the report holds, at the end of each section."""
    if isinstance(report, list):
        return [count for item in report for count in live_allocations_counts(item)]
    if not isinstance(report, dict):
        return []
    counts = [value for key, value in report.items() if key.startswith("live_allocations")]
    return counts + [count for value in report.values() for count in live_allocations_counts(value)]


def test_no_buffer_is_left_live_at_the_end_of_any_section(report: dict[str, Any]) -> None:
    counts = live_allocations_counts(report)
    assert len(counts) >= 20
    assert counts == [0] * len(counts)


# --- "A procedure traced step by step", call by call ---


def round_reply(attempt: int, hosts: list[str]) -> str:
    return json.dumps(
        {"round": {"action": "reboot", "timeout": 10, "attempt": attempt, "hosts": hosts}},
        separators=(",", ":"),
    )


SERVER1_FAILS = '[{"status":"failed","reason":"host is down"}]'


def traced_step(call: str, sent: str, sent_length: int, returned: int, reply: str) -> list[Any]:
    """One step of the trace: the host writes ``sent`` (``sent_length`` bytes) into its
    buffer and calls ``call`` with the buffer as input and output, which returns
    ``returned``, the reply's length (the pointer half 0); the outbox says nothing was
    printed; the reply is in the buffer."""
    return [
        {"wrote": sent, "at": "buffer"},
        {
            "call": call,
            "args": ["buffer", sent_length, "buffer", 4096],
            "returned": {"ptr": 0, "len": returned},
        },
        {"output_len": 0},
        {"reply": reply},
    ]


THE_DOCUMENTS_TRACE = [
    # 1. after instantiating: grant_executor() and outbox(), once for the instance's life
    {"call": "grant_executor", "args": []},
    {"call": "outbox", "args": [], "returned": "outbox"},
    # 3. one buffer of 4096 bytes for everything
    {"call": "alloc", "args": [4096], "returned": "buffer"},
    # 2, 4. the input, 89 bytes, and its first round, 84 bytes
    *traced_step(
        "start_procedure_into", TUTORIAL_INPUT, 89, 84, round_reply(1, ["server1", "server2"])
    ),
    # 3. (asked by the executor on round 1) the buffer is the one live allocation
    {"call": "live_allocations", "args": [], "returned": 1},
    # 5. the answer to round 1, 61 bytes, and round 2, 74 bytes
    *traced_step(
        "resume_procedure",
        '[{"status":"failed","reason":"host is down"},{"status":"ok"}]',
        61,
        74,
        round_reply(2, ["server1"]),
    ),
    # 6. rounds 3 and 4, each answered with 45 bytes
    *traced_step("resume_procedure", SERVER1_FAILS, 45, 74, round_reply(3, ["server1"])),
    *traced_step("resume_procedure", SERVER1_FAILS, 45, 74, round_reply(4, ["server1"])),
    # 7. after round 4, the output, 176 bytes
    *traced_step(
        "resume_procedure",
        SERVER1_FAILS,
        45,
        176,
        json.dumps(SERVER1_DOWN_REPLY, separators=(",", ":")),
    ),
    # 9. the buffer freed, and nothing live
    {"call": "dealloc", "args": ["buffer", 4096], "returned": 0},
    {"call": "live_allocations", "args": [], "returned": 0},
]
"""Every call, write and read of docs/ABI.md's traced procedure, addresses by name."""


def with_addresses_named(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` with the outbox's and the buffer's addresses (the document's "say")
    replaced by their names."""
    names = {
        event["returned"]: {"outbox": "outbox", "alloc": "buffer"}[event["call"]]
        for event in events
        if event.get("call") in ("outbox", "alloc")
    }
    assert all(address > 0 for address in names)

    def named(value: Any) -> Any:
        if isinstance(value, list):
            return [named(item) for item in value]
        return names.get(value, value) if isinstance(value, int) else value

    return [{key: named(value) for key, value in event.items()} for event in events]


def test_the_traced_procedure_follows_the_document_step_by_step(report: dict[str, Any]) -> None:
    assert with_addresses_named(report["trace"]["events"]) == THE_DOCUMENTS_TRACE
    assert report["trace"]["reply"] == SERVER1_DOWN_REPLY


# --- the output range of start_procedure_into and resume_procedure ---


def test_a_reply_too_long_for_the_hosts_buffer_comes_packed(report: dict[str, Any]) -> None:
    too_small = report["outputs"]["start_procedure_into, a buffer too small for the output"]
    assert too_small["reply"] == SERVER1_DOWN_REPLY
    # The rounds (84 and 74 bytes) fit in the 100 bytes; the 176-byte output does not.
    assert [step["len"] for step in too_small["step_replies"]] == [84, 74, 74, 74, 176]
    assert [step["ptr"] == 0 for step in too_small["step_replies"]] == [True] * 4 + [False]


@pytest.mark.parametrize(
    "call",
    [
        "start_procedure_into, an output not from alloc",
        "start_procedure_into, an output past its buffer",
        "start_procedure_into, an output past 2 GiB",
    ],
)
def test_an_output_outside_a_live_buffer_is_refused_before_anything_runs(
    report: dict[str, Any], call: str
) -> None:
    outside = report["outputs"][call]
    assert (outside["kind"], outside["cancel_procedure_after"]) == ("invalid_argument", 1)


def test_resume_with_an_output_outside_a_live_buffer_leaves_the_procedure_waiting(
    report: dict[str, Any],
) -> None:
    resumed = report["outputs"]["resume_procedure, an output not from alloc"]
    assert resumed["first"]["round"]["attempt"] == 1
    assert resumed["refused"] == "invalid_argument"
    assert resumed["next"]["round"] == {
        "action": "reboot",
        "timeout": 10,
        "attempt": 2,
        "hosts": ["server1"],
    }
    assert resumed["cancel_procedure_after"] == 0


# --- steps by hand: cancel, resume with nothing in progress, start over ---


NO_PROCEDURE_IN_PROGRESS = {"kind": "invalid_argument", "path": []}


def test_cancel_procedure_with_none_in_progress_returns_1(report: dict[str, Any]) -> None:
    assert report["steps"]["cancel_procedure, none in progress"]["cancel_procedure"] == 1


def test_resume_procedure_with_none_in_progress_is_an_invalid_argument(
    report: dict[str, Any],
) -> None:
    error = report["steps"]["resume_procedure, none ever started"]["reply"]["error"]
    assert {"kind": error["kind"], "path": error["path"]} == NO_PROCEDURE_IN_PROGRESS


def test_cancel_procedure_abandons_the_procedure_in_progress(report: dict[str, Any]) -> None:
    cancelled = report["steps"]["cancel_procedure, one in progress"]
    assert cancelled["first"] == "round"
    assert (cancelled["cancel_procedure"], cancelled["cancel_procedure_again"]) == (0, 1)
    error = cancelled["resume_afterwards"]["error"]
    assert {"kind": error["kind"], "path": error["path"]} == NO_PROCEDURE_IN_PROGRESS


def test_start_procedure_abandons_the_procedure_in_progress(report: dict[str, Any]) -> None:
    restarted = report["steps"]["start_procedure, one in progress"]
    assert restarted["attempts"] == [1, 2, 1]
    assert restarted["cancel_procedure"] == 0


def test_a_procedure_waits_while_other_exports_are_called(report: dict[str, Any]) -> None:
    between = report["steps"]["print_string, between two steps"]
    assert (between["first"], between["print_string"], between["next"]) == (1, None, 2)


# --- executors' answers: null, wrong, asynchronous, late, failing ---


def answered(report: dict[str, Any], case: str) -> dict[str, Any]:
    output: dict[str, Any] = report["answers"][case]["reply"]["ok"]
    return output


def test_null_on_the_first_round_makes_a_dry_run(report: dict[str, Any]) -> None:
    output = answered(report, "null on the first round")
    assert (output["result"], output["dry_run"], output["failures"]) == ("success", True, [])
    assert output["message"].startswith("dry run: ")


def test_null_on_a_later_round_refuses_the_hosts_still_failing(report: dict[str, Any]) -> None:
    output = answered(report, "null on a later round")
    assert (output["result"], output["dry_run"]) == ("partial", False)
    assert output["failures"] == [
        # round 1 failed, round 2 got no answer and counts; no round 3
        {"host": "server1", "attempts": 2, "reason": "the executor stopped answering"}
    ]


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("the wrong number of outcomes", "answered 1 outcome for 2 hosts"),
        ("an unknown status", "maybe"),
        ("an outcome with another field", "host"),
    ],
)
def test_an_unusable_answer_fails_every_host_of_its_round(
    report: dict[str, Any], case: str, says: str
) -> None:
    output = answered(report, case)
    assert (output["result"], output["failed_hosts"]) == ("failure", ["server1", "server2"])
    assert [failure["attempts"] for failure in output["failures"]] == [4, 4]
    assert all(says in failure["reason"] for failure in output["failures"])


def test_an_async_executor_drives_the_procedure(report: dict[str, Any]) -> None:
    assert report["answers"]["an async executor"]["reply"] == SERVER1_DOWN_REPLY


def test_an_async_executor_that_never_answers_times_out_at_the_rounds_timeout(
    report: dict[str, Any],
) -> None:
    output = answered(report, "an async executor that never answers")
    assert (output["result"], output["failed_hosts"]) == ("failure", ["server1"])
    assert output["failures"][0]["reason"] == "no answer within 1 s"


def test_an_executor_that_throws_gets_its_procedure_cancelled(report: dict[str, Any]) -> None:
    failed = report["answers"]["an executor that throws on round 2"]
    assert failed["error"] == (
        "the executor failed on round 2, so the procedure was cancelled: the executor broke"
    )
    assert failed["cancel_procedure_afterwards"] == 1


def test_one_instance_drives_one_procedure_at_a_time(report: dict[str, Any]) -> None:
    both = report["answers"]["two procedures at once on one instance"]
    assert both["first"]["reply"] == SERVER1_DOWN_REPLY
    assert both["second"]["error"] == "a procedure is already being driven on this instance"


# --- the faults module (just build-faults; commands in src/faults.rs) ---


@pytest.fixture(scope="module")
def faults() -> dict[str, Any]:
    """The Node host's report on the faults module, after what that module printed."""
    stdout = host_stdout("faults", FAULTS_WASM)
    printed = HUGE_OUTPUT * 2  # fault:huge-output, then fault:huge-output-then-error
    assert stdout.startswith(printed)
    report: dict[str, Any] = json.loads(stdout.removeprefix(printed))
    return report


PANIC = "panicked at src/faults.rs:"
PANIC_MESSAGE = "\ninjected panic: the host asked for it"


@pytest.mark.parametrize("call", ["print_string", "start_procedure_into"])
def test_a_panics_message_comes_from_the_trap_report(faults: dict[str, Any], call: str) -> None:
    error = faults[call]["fault:panic"]["error"]
    assert error.startswith(f"{call} trapped: {PANIC}")
    assert error.endswith(PANIC_MESSAGE)


def test_calling_a_wasi_import_is_a_trap(faults: dict[str, Any]) -> None:
    assert faults["print_string"]["fault:exit"]["error"] == (
        "print_string trapped: the module called wasi_snapshot_preview1.proc_exit, which traps"
    )


def test_a_trap_with_no_report_says_what_the_runtime_threw(faults: dict[str, Any]) -> None:
    error = faults["print_string"]["fault:stack-overflow"]["error"]
    assert error == "print_string trapped: memory access out of bounds"


@pytest.mark.parametrize(
    ("call", "command", "error"),
    [
        (
            "print_string",
            "fault:reply-out-of-bounds",
            "[4294901760, 4294901760+256) passes the end of memory",
        ),
        ("print_string", "fault:reply-not-live", "free_mem(8) of a reply returned 1"),
        ("print_string", "fault:reply-garbage", "a reply that is not UTF-8 JSON"),
        ("print_string", "fault:reply-ok-not-output", 'one key (error): {"ok":1}'),
        (
            "start_procedure_into",
            "fault:reply-in-place-too-long",
            "start_procedure_into returned a length of 1048576, more than its out_cap 4096",
        ),
    ],
)
def test_a_reply_outside_the_contract_is_refused(
    faults: dict[str, Any], call: str, command: str, error: str
) -> None:
    refused = faults[call][command]["error"]
    assert refused.startswith("broken module: ")
    assert error in refused


def test_output_is_written_even_with_an_error_reply(faults: dict[str, Any]) -> None:
    assert faults["print_string"]["fault:huge-output"]["reply"] is None
    error = faults["print_string"]["fault:huge-output-then-error"]["reply"]["error"]
    assert error["message"] == "nothing to see"


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("fault-round-garbage", "a reply that is not UTF-8 JSON (Unexpected token"),
        ("fault-round-bad-host", "asks for -oProxyCommand=x, which is not in host_list"),
        ("fault-round-other-host", "asks for elsewhere, which is not in host_list"),
        ("fault-round-other-action", "has another action or timeout than the input"),
        ("fault-round-other-host, no executor granted", "a round from a module granted no"),
    ],
)
def test_a_round_the_input_does_not_allow_runs_nothing(
    faults: dict[str, Any], action: str, error: str
) -> None:
    refused = faults["start_procedure_into"][action]
    assert refused["error"].startswith("broken module: ")
    assert error in refused["error"]
    assert refused["ran"] == []


def test_a_round_asked_again_runs_only_once(faults: dict[str, Any]) -> None:
    forever = faults["start_procedure_into"]["fault-round-forever"]
    assert [round_["attempt"] for round_ in forever["ran"]] == [1]
    assert "is not attempt 2; none of it was run" in forever["error"]


def test_an_instance_that_trapped_is_discarded_and_a_new_one_works(
    faults: dict[str, Any],
) -> None:
    after = faults["after_a_trap"]
    assert PANIC_MESSAGE in after["trap"]["error"]
    assert after["again"]["error"] == (
        "live_allocations: the instance was discarded after a trap or a broken contract"
    )
    assert after["new_instance_live_allocations"] == 0


# --- modules written in WAT that break the contract one way each ---

STUB_OUTBOX = 512
STUB_TRAP_REPORT = 2048
STUB_FIRST_REPLY = 4096
STUB_SECOND_REPLY = 8192
STUB_MEMORY_BYTES = 2 * 65536
STUB_INPUT = '{"timeout":1,"retries":0,"host_list":["a","b"],"action":"x","job_id":1}'
STUB_FIRST_ROUND = '{"round":{"action":"x","timeout":1,"attempt":1,"hosts":["a"]}}'
STUB_OK = '{"ok":{}}'


def packed(ptr: int, length: int) -> int:
    """A packed reply as a WAT i64 literal (a signed one past 2^63)."""
    value = ptr << 32 | length
    return value - (1 << 64) if value >= 1 << 63 else value


def wat_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte:02x}" for byte in data) + '"'


def stub_module(
    tmp_path: Path,
    *,
    version: int = 3,
    imports: str = "",
    missing: str = "",
    outbox: tuple[int, int, int, int] = (0, 0, 0, 0),
    trap_report: bytes = b"",
    start: str = "",
    second_reply: str = STUB_OK,
) -> Path:
    """A .wasm of ABI version ``version`` that does nothing but answer STUB_INPUT with
    STUB_FIRST_ROUND, then ``second_reply``: every other export returns 0, alloc always
    returns 8, the outbox holds ``outbox``. ``start`` replaces start_procedure's body and
    ``missing`` names an export to leave out."""
    first = f"i64.const {packed(STUB_FIRST_REPLY, len(STUB_FIRST_ROUND))}"
    second = f"i64.const {packed(STUB_SECOND_REPLY, len(second_reply))}"
    exports = {
        "abi_version": f"(result i32) i32.const {version}",
        "crate_version": f"(result i64) i64.const {packed(STUB_FIRST_REPLY, 0)}",
        "alloc": "(param i32) (result i32) i32.const 8",
        "dealloc": "(param i32 i32) (result i32) i32.const 0",
        "free_mem": "(param i32) (result i32) i32.const 0",
        "live_allocations": "(result i32) i32.const 0",
        "outbox": f"(result i32) i32.const {STUB_OUTBOX}",
        "grant_executor": "",
        "print_string": "(param i32 i32) (result i64) i64.const 0",
        "print_int": "(param i32) (result i64) i64.const 0",
        "start_procedure": f"(param i32 i32) (result i64) {start or first}",
        "start_procedure_into": f"(param i32 i32 i32 i32) (result i64) {start or first}",
        "resume_procedure": f"(param i32 i32 i32 i32) (result i64) {second}",
        "cancel_procedure": "(result i32) i32.const 0",
    }
    functions = "".join(
        f'(func (export "{name}") {body})' for name, body in exports.items() if name != missing
    )
    outbox_bytes = b"".join(field.to_bytes(4, "little") for field in outbox)
    wat = (
        f'{imports}(memory (export "memory") {STUB_MEMORY_BYTES // 65536}){functions}'
        f"(data (i32.const {STUB_OUTBOX}) {wat_string(outbox_bytes)})"
        f"(data (i32.const {STUB_TRAP_REPORT}) {wat_string(trap_report)})"
        f"(data (i32.const {STUB_FIRST_REPLY}) {wat_string(STUB_FIRST_ROUND.encode())})"
        f"(data (i32.const {STUB_SECOND_REPLY}) {wat_string(second_reply.encode())})"
    )
    path = tmp_path / "stub.wasm"
    path.write_bytes(wasmtime.wat2wasm(f"(module {wat})"))
    return path


def run_stub(tmp_path: Path, stub: Path) -> subprocess.CompletedProcess[str]:
    """The Node host driving STUB_INPUT on ``stub`` with an executor for which every host
    is up."""
    vectors = tmp_path / "vectors.json"
    vectors.write_text(json.dumps([{"name": "stub", "input": STUB_INPUT, "network": {}}]))
    return node_host("vectors", stub, vectors)


def refused(done: subprocess.CompletedProcess[str], message: str) -> bool:
    """Whether the Node host stopped with ``message`` on stderr and nothing on stdout."""
    return done.returncode == 1 and done.stdout == "" and message in done.stderr


def test_a_stub_that_keeps_the_contract_is_driven_to_its_reply(tmp_path: Path) -> None:
    done = run_stub(tmp_path, stub_module(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"reply": {"ok": {}}, "rounds": [json.loads(STUB_FIRST_ROUND)["round"]]}
    ]


@pytest.mark.parametrize("version", [2, 4])
def test_a_module_of_another_abi_version_is_refused(tmp_path: Path, version: int) -> None:
    done = run_stub(tmp_path, stub_module(tmp_path, version=version))
    assert refused(done, f"its abi_version is {version}, this host speaks only 3")


@pytest.mark.parametrize(
    ("module", "name", "kind", "wat_type"),
    [
        ("host", "execute_round", "function", "(func (param i32 i32) (result i64))"),
        ("host", "report_panic", "function", "(func (param i32 i32))"),
        ("wasi_snapshot_preview1", "random_get", "function", "(func (param i32 i32) (result i32))"),
        ("wasi_snapshot_preview1", "path_open", "function", "(func (param i32) (result i32))"),
        ("wasi_snapshot_preview1", "fd_write", "global", "(global i32)"),
    ],
)
def test_a_module_that_imports_more_than_the_abi_is_refused(
    tmp_path: Path, module: str, name: str, kind: str, wat_type: str
) -> None:
    stub = stub_module(tmp_path, imports=f'(import "{module}" "{name}" {wat_type})')
    done = run_stub(tmp_path, stub)
    assert refused(done, f"refusing the module: it imports {module}.{name} ({kind})")


@pytest.mark.parametrize(
    ("missing", "arity"), [("resume_procedure", 4), ("outbox", 0), ("cancel_procedure", 0)]
)
def test_a_module_missing_a_version_3_export_is_refused(
    tmp_path: Path, missing: str, arity: int
) -> None:
    done = run_stub(tmp_path, stub_module(tmp_path, missing=missing))
    assert refused(done, f"refusing the module: no export {missing} taking {arity} arguments")


def test_a_reply_past_the_end_of_memory_is_refused(tmp_path: Path) -> None:
    start = f"i64.const {packed(STUB_MEMORY_BYTES - 8, 100)}"
    done = run_stub(tmp_path, stub_module(tmp_path, start=start))
    assert refused(done, "[131064, 131064+100) passes the end of memory (131072 bytes)")


def test_output_past_the_end_of_memory_is_refused(tmp_path: Path) -> None:
    done = run_stub(tmp_path, stub_module(tmp_path, outbox=(STUB_MEMORY_BYTES - 8, 16, 0, 0)))
    assert refused(done, "[131064, 131064+16) passes the end of memory (131072 bytes)")


@pytest.mark.parametrize(
    ("trap_fields", "reason"),
    [
        ((STUB_TRAP_REPORT, 4), "start_procedure trapped: boom"),
        (
            (STUB_MEMORY_BYTES - 2, 4),
            "start_procedure trapped: unreachable (the trap report is unreadable: "
            "broken module: [131070, 131070+4) passes the end of memory (131072 bytes))",
        ),
        (
            (STUB_TRAP_REPORT, 4097),
            "start_procedure trapped: unreachable (the trap report is unreadable: "
            "trap_len is 4097, over the ABI's 4096)",
        ),
    ],
)
def test_a_trap_is_reported_with_the_outboxs_trap_report(
    tmp_path: Path, trap_fields: tuple[int, int], reason: str
) -> None:
    stub = stub_module(
        tmp_path, outbox=(0, 0, *trap_fields), trap_report=b"boom", start="unreachable"
    )
    done = run_stub(tmp_path, stub)
    assert refused(done, reason)


@pytest.mark.parametrize(
    ("second_round", "why"),
    [
        ({"action": "x", "timeout": 1, "attempt": 2, "hosts": ["b", "b"]}, "asks for a host twice"),
        (
            {"action": "x", "timeout": 1, "attempt": 2, "hosts": ["a"]},
            "asks for a, which has no attempts left",
        ),
        ({"action": "x", "timeout": 1, "attempt": 3, "hosts": ["b"]}, "is not attempt 2"),
        ({"action": "x", "timeout": 1, "attempt": 2, "hosts": []}, "has no list of host names"),
        (
            {"action": "x", "timeout": 2, "attempt": 2, "hosts": ["b"]},
            "has another action or timeout than the input",
        ),
        (7, "is not an object"),
    ],
)
def test_a_round_past_the_inputs_limits_is_refused(
    tmp_path: Path, second_round: Any, why: str
) -> None:
    reply = json.dumps({"round": second_round}, separators=(",", ":"))
    done = run_stub(tmp_path, stub_module(tmp_path, second_reply=reply))
    assert refused(
        done, f"broken module: round {json.dumps(second_round, separators=(',', ':'))} {why}"
    )


def test_the_command_line_shows_its_usage_when_misused() -> None:
    done = node_host("vectors")
    assert done.returncode == 2
    assert "usage: node host.mjs vectors <module.wasm> <vectors.json> [--async]" in done.stderr
