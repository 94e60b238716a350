"""Each kind of executor, run for real through the module, and every way
one can misbehave."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from conftest import tutorial_input

import py_host
from py_host import Outcome, Round
from py_host.executors import as_executor


def run(
    executor: py_host.Executor | py_host.HostAction, **changes: object
) -> py_host.ProcedureOutput:
    with py_host.load(executor=executor) as rust:
        output = rust.start_procedure(tutorial_input(**changes))
        assert rust.live_allocations() == 0
        return output


# A callable (host, action, timeout)


def test_a_callable_gets_host_action_and_timeout() -> None:
    calls: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def record(host: str, action: str, timeout: int) -> bool:
        with lock:
            calls.append((host, action, timeout))
        return host != "server1"

    output = run(record, retries=2, timeout=7)
    assert output.failed_hosts == ["server1"]
    assert output.failures[0].reason == "the executor reported failure"
    assert sorted(calls) == [("server1", "reboot", 7)] * 3 + [("server2", "reboot", 7)]


def test_a_callable_may_return_an_outcome() -> None:
    def refuse_server2(host: str, action: str, timeout: int) -> Outcome:
        return Outcome.refused("not on a Tuesday") if host == "server2" else Outcome.ok()

    output = run(refuse_server2)
    assert output.failures == [
        py_host.HostFailure(host="server2", attempts=1, reason="not on a Tuesday")
    ]


def test_a_rounds_attempts_run_concurrently() -> None:
    # Each attempt waits for the other: run one after the other, both would
    # break the barrier and fail.
    barrier = threading.Barrier(2, timeout=5)

    def meet(host: str, action: str, timeout: int) -> bool:
        barrier.wait()
        return True

    assert run(meet, retries=0).result == "success"


def test_a_callable_that_raises_fails_its_host_with_the_reason() -> None:
    def explode(host: str, action: str, timeout: int) -> bool:
        if host == "server1":
            raise ConnectionRefusedError("port 22 closed")
        return True

    output = run(explode, retries=1)
    assert output.failures == [
        py_host.HostFailure(
            host="server1",
            attempts=2,
            reason="the executor raised ConnectionRefusedError: port 22 closed",
        )
    ]


def test_a_callable_that_hangs_times_out_and_the_call_returns() -> None:
    release = threading.Event()

    def hang(host: str, action: str, timeout: int) -> bool:
        if host == "server1":
            release.wait(30)
        return True

    try:
        output = run(hang, timeout=1, retries=1)
    finally:
        release.set()
    assert output.failures == [
        py_host.HostFailure(host="server1", attempts=2, reason="timed out after 1 s")
    ]


@pytest.mark.parametrize("garbage", [None, "ok", 1, [True]])
def test_a_callable_that_returns_garbage_fails_its_host(garbage: object) -> None:
    output = run(lambda host, action, timeout: garbage, retries=0)
    assert output.result == "failure"
    assert "expected Outcome or bool" in output.failures[0].reason


def test_many_hosts_run_in_batches() -> None:
    # Each attempt waits for seven others, so max_workers=8 attempts run at
    # once; one more at any moment breaks the bound.
    barrier = threading.Barrier(8, timeout=10)
    lock = threading.Lock()
    running = [0]
    most = [0]

    def meet(host: str, action: str, timeout: int) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            barrier.wait()
        finally:
            with lock:
                running[0] -= 1
        return True

    executor = py_host.ConcurrentExecutor(meet, max_workers=8)
    output = run(executor, host_list=[f"host{i}" for i in range(96)], retries=0)
    assert output.result == "success"
    assert most[0] == 8


# An Executor with run_round


class Scripted:
    def __init__(self, answer: Sequence[object] | Exception) -> None:
        self.answer = answer
        self.rounds: list[Round] = []

    def run_round(self, round: Round) -> Sequence[Outcome]:
        self.rounds.append(round)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[return-value]


def test_an_executor_sees_one_round_per_attempt_with_the_hosts_still_failing() -> None:
    class DownOnce(Scripted):
        def run_round(self, round: Round) -> Sequence[Outcome]:
            self.rounds.append(round)
            return [
                Outcome.failed("down") if round.attempt == 1 and h == "b" else Outcome.ok()
                for h in round.hosts
            ]

    executor = DownOnce([])
    assert run(executor, host_list=["a", "b", "c"]).result == "success"
    assert executor.rounds == [
        Round(action="reboot", timeout=10, attempt=1, hosts=("a", "b", "c")),
        Round(action="reboot", timeout=10, attempt=2, hosts=("b",)),
    ]  # fmt: skip


def test_an_executor_that_raises_fails_the_round() -> None:
    output = run(Scripted(RuntimeError("no network")), retries=0)
    assert output.failed_hosts == ["server1", "server2"]
    assert output.failures[0].reason == "the executor raised RuntimeError: no network"


def test_an_executor_that_answers_too_few_outcomes_fails_the_round() -> None:
    output = run(Scripted([Outcome.ok()]), retries=0)
    assert output.failures[0].reason == "the executor answered 1 outcome for 2 hosts"


def test_an_executor_that_answers_garbage_fails_the_round() -> None:
    output = run(Scripted(["ok", 3]), retries=0)
    assert output.result == "failure"
    assert output.failures[0].reason == "the executor returned str, expected Outcome"


def test_a_thing_that_is_neither_executor_nor_callable_is_refused() -> None:
    with pytest.raises(py_host.ConfigError, match="executor must be"):
        py_host.load(executor=42)  # type: ignore[arg-type]


# The simulated network


def test_the_simulated_network_ignores_case() -> None:
    output = run(py_host.SimulatedNetwork(down={"SERVER1"}))
    assert output.failed_hosts == ["server1"]


# The command executor, on real commands

PYTHON = sys.executable


def test_a_permitted_command_runs_once_per_host_with_placeholders(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"
    executor = py_host.CommandExecutor(
        {"reboot": [PYTHON, "-c", script, str(log), "{action}", "{host}", "{timeout}"]}
    )
    assert run(executor, timeout=5).result == "success"
    assert sorted(log.read_text().splitlines()) == ["reboot server1 5", "reboot server2 5"]


def test_a_failing_command_reports_its_status_and_last_stderr_line() -> None:
    script = "import sys; print('checking', file=sys.stderr); print('disk full', file=sys.stderr); sys.exit(3)"
    executor = py_host.CommandExecutor({"reboot": [PYTHON, "-c", script]})
    output = run(executor, retries=1)
    assert output.result == "failure"
    assert output.failures[0] == py_host.HostFailure(
        host="server1", attempts=2, reason="exit status 3: disk full"
    )


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    """Whether ``pid`` ends within a few seconds: SIGKILL is delivered
    asynchronously, and a process left behind would live for 30."""
    for _ in range(100):
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; echo $$ >> {pids}; wait"
    executor = py_host.CommandExecutor({"reboot": ["sh", "-c", script]})
    # A fraction of a second, which only a direct caller can ask for, keeps
    # the test quick.
    outcomes = executor.run_round(Round("reboot", 0.5, 1, ("h",)))  # type: ignore[arg-type]
    assert outcomes == [Outcome.timed_out(0.5)]
    grandchild, child = (int(line) for line in pids.read_text().split())
    assert not alive(child), "the command was killed and reaped before the round returned"
    assert gone(grandchild), "the command's own child was killed with it"


def test_a_command_that_exits_is_not_waited_for_by_a_child_holding_stderr(
    tmp_path: Path,
) -> None:
    # The command is over when it exits; its child keeping stderr open does
    # not make it time out.
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; echo done >&2; exit 4"
    executor = py_host.CommandExecutor({"reboot": ["sh", "-c", script]})
    try:
        outcomes = executor.run_round(Round("reboot", 10, 1, ("h",)))
    finally:
        os.kill(int(pids.read_text()), signal.SIGKILL)
    assert outcomes == [Outcome.failed("exit status 4: done")]


def test_a_huge_stderr_line_makes_a_reason_of_at_most_1_kib_never_read_whole() -> None:
    # 30 MB in one line of three-byte characters: 1024 bytes would split one.
    script = "import sys; sys.stderr.buffer.write('€'.encode() * 10_000_000); sys.exit(1)"
    executor = py_host.CommandExecutor({"reboot": [PYTHON, "-c", script]})
    tracemalloc.start()
    try:
        outcomes = executor.run_round(Round("reboot", 60, 1, ("h",)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcomes == [Outcome.failed("exit status 1: " + "€" * 341 + "… (cut)")]
    assert peak < 1_000_000, f"{peak} bytes held for 30 MB of stderr"


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("first\nlast\n\n  \n", "exit status 2: last"),
        ("x" * 1024, "exit status 2: " + "x" * 1024),
        ("x" * 1025, "exit status 2: " + "x" * 1024 + "… (cut)"),
        ("é" * 600 + "\nshort", "exit status 2: short"),
        ("", "exit status 2"),
    ],
    ids=["last-line", "1024-bytes", "1025-bytes", "long-then-short", "none"],
)
def test_a_failing_commands_reason_is_its_last_stderr_line(stderr: str, reason: str) -> None:
    script = f"import sys; sys.stderr.write({stderr!r}); sys.exit(2)"
    executor = py_host.CommandExecutor({"reboot": [PYTHON, "-c", script]})
    assert executor.run_round(Round("reboot", 60, 1, ("h",))) == [Outcome.failed(reason)]


def test_a_missing_program_is_a_failure() -> None:
    executor = py_host.CommandExecutor({"reboot": ["/nonexistent/program"]})
    output = run(executor, retries=0)
    assert output.failures[0].reason.startswith("cannot run '/nonexistent/program'")


def test_an_action_that_is_not_permitted_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    executor = py_host.CommandExecutor({"ping": ["touch", str(marker)]})
    output = run(executor, action="format-disk", retries=3)
    assert output.result == "failure"
    assert output.failures[0] == py_host.HostFailure(
        host="server1",
        attempts=1,
        reason="action 'format-disk' is not permitted (permitted: ping)",
    )
    assert not marker.exists()


@pytest.mark.parametrize("argv", [[], "echo hi"])
def test_a_command_must_be_an_argv_list(argv: object) -> None:
    with pytest.raises(ValueError, match="argv list"):
        py_host.CommandExecutor({"reboot": argv})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (
            Outcome("failed", b"bytes"),
            "the executor returned an invalid Outcome(status='failed', reason=b'bytes')",
        ),  # type: ignore[arg-type]
        (
            Outcome("maybe", "x"),
            "the executor returned an invalid Outcome(status='maybe', reason='x')",
        ),  # type: ignore[arg-type]
        (Outcome.failed("lone \udc80 surrogate"), "lone ? surrogate"),
    ],
)
def test_an_outcome_the_module_cannot_take_fails_its_host_and_leaks_nothing(
    outcome: Outcome, reason: str
) -> None:
    with py_host.load(executor=lambda host, action, timeout: outcome) as rust:
        for _ in range(300):
            output = rust.start_procedure(tutorial_input(retries=0))
            assert output.failures[0].reason == reason
        assert rust.live_allocations() == 0


def test_an_executor_that_calls_back_into_its_module_is_refused_not_fatal() -> None:
    modules: list[py_host.RustModule] = []

    class CallsBack:
        def run_round(self, round: Round) -> Sequence[Outcome]:
            modules[0].print_string("from inside")
            return [Outcome.ok()] * len(round.hosts)

    class ClosesIt:
        def run_round(self, round: Round) -> Sequence[Outcome]:
            modules[-1].close()
            return [Outcome.ok()] * len(round.hosts)

    for executor in [CallsBack(), ClosesIt()]:
        with py_host.load(executor=executor) as rust:
            modules.append(rust)
            output = rust.start_procedure(tutorial_input(retries=0))
            assert output.failures[0].reason.startswith("the executor raised ReentrancyError")
            assert rust.start_procedure(tutorial_input(retries=0)).result == "failure"
        modules.clear()


def test_an_abandoned_attempt_does_not_hold_up_the_others() -> None:
    release = threading.Event()

    def first_hangs(host: str, action: str, timeout: int) -> bool:
        if host == "h0":
            release.wait(30)
        return True

    executor = py_host.ConcurrentExecutor(first_hangs, max_workers=2)
    try:
        outcomes = executor.run_round(Round("ping", 0.2, 1, ("h0", "h1", "h2", "h3")))  # type: ignore[arg-type]
    finally:
        release.set()
    assert outcomes == [Outcome.timed_out(0.2), Outcome.ok(), Outcome.ok(), Outcome.ok()]


def threads_of(prefix: str) -> int:
    """The attempt threads alive for hosts named ``prefix...``: only a test's
    own, as those other tests released may still be ending."""
    return sum(thread.name.startswith(f"py_host {prefix}") for thread in threading.enumerate())


def test_a_round_of_hung_hosts_keeps_its_threads_bounded() -> None:
    # 200 attempts that ignore their timeout: max_workers run and are
    # abandoned, and the cap on abandoned attempts stops the round from
    # starting more, within the round and not only at its start.
    release = threading.Event()
    lock = threading.Lock()
    calls: list[str] = []
    threads_seen: list[int] = []

    def hangs(host: str, action: str, timeout: int) -> bool:
        with lock:
            calls.append(host)
            threads_seen.append(threads_of("bounded-"))
        release.wait(60)
        return True

    executor = py_host.ConcurrentExecutor(hangs, max_workers=4)
    hosts = tuple(f"bounded-{i}" for i in range(200))
    try:
        outcomes = executor.run_round(Round("ping", 0.2, 1, hosts))  # type: ignore[arg-type]
        after = threads_of("bounded-")
    finally:
        release.set()
    # Attempts are abandoned as their timeouts pass, one by one, so a few
    # more may start before four are abandoned; never a fifth while four
    # are abandoned, and never eight threads.
    started = len(calls)
    assert 4 <= started < 2 * 4
    assert max(threads_seen) < 2 * 4
    assert after == started
    assert outcomes[:started] == [Outcome.timed_out(0.2)] * started
    for outcome in outcomes[started:]:
        assert outcome.status == "failed"
        assert outcome.reason.endswith("earlier attempts are still running past their timeout")


def test_attempts_that_ignore_their_timeout_do_not_pile_up_threads() -> None:
    release = threading.Event()

    def ignores_timeout(host: str, action: str, timeout: int) -> bool:
        release.wait(60)
        return True

    executor = py_host.ConcurrentExecutor(ignores_timeout, max_workers=2)
    try:
        first = executor.run_round(Round("ping", 0.2, 1, ("pile-a", "pile-b")))  # type: ignore[arg-type]
        assert first == [Outcome.timed_out(0.2)] * 2
        assert threads_of("pile-") == 2
        second = executor.run_round(Round("ping", 0.2, 2, ("pile-a", "pile-b")))  # type: ignore[arg-type]
        assert (
            second
            == [Outcome.failed("2 earlier attempts are still running past their timeout")] * 2
        )
        assert threads_of("pile-") == 2
    finally:
        release.set()


def ok(host: str, action: str, timeout: int) -> bool:
    return True


class NotAnExecutor:
    run_round = 5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: py_host.ConcurrentExecutor(ok, max_workers="3"), "max_workers must be an int"),
        (lambda: py_host.ConcurrentExecutor(ok, max_workers=3.0), "max_workers must be an int"),
        (lambda: py_host.ConcurrentExecutor(ok, max_workers=True), "max_workers must be an int"),
        (lambda: py_host.ConcurrentExecutor(ok, max_workers=0), "max_workers must be at least 1"),
        (lambda: py_host.ConcurrentExecutor(ok, max_workers=-5), "max_workers must be at least 1"),
        (lambda: py_host.ConcurrentExecutor("ok"), "action must be a callable"),
        (lambda: py_host.ConcurrentExecutor(lambda host: True), "action must accept three"),
        (lambda: py_host.CommandExecutor([("ping", ["true"])]), "commands must be a mapping"),
        (lambda: py_host.CommandExecutor("ping=true"), "commands must be a mapping"),
        (lambda: py_host.CommandExecutor({1: ["true"]}), "commands: an action must be"),
        (lambda: py_host.CommandExecutor({"": ["true"]}), "commands: an action must be"),
        (lambda: py_host.CommandExecutor({"ping": b"true"}), "commands: the command for 'ping'"),
        (lambda: py_host.CommandExecutor({"ping": ["true", 3]}), "commands: the command for"),
        (lambda: py_host.CommandExecutor({"ping": 3}), "commands: the command for 'ping'"),
        (
            lambda: py_host.CommandExecutor({"ping": ["true"]}, max_workers="3"),
            "max_workers must be an int",
        ),
        (lambda: as_executor(42), "executor must be an Executor or a callable"),
        (lambda: as_executor(py_host.SimulatedNetwork), "not the class SimulatedNetwork"),
        (lambda: as_executor(NotAnExecutor()), "executor: the run_round of NotAnExecutor"),
        (lambda: as_executor(lambda host, action: True), "executor must accept three"),
    ],
)
def test_a_bad_executor_argument_is_a_config_error_naming_it(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(py_host.ConfigError, match=re.escape(message)) as raised:
        make()
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, TypeError)


def test_load_refuses_a_bad_executor_before_compiling(tmp_path: Path) -> None:
    with pytest.raises(py_host.ConfigError, match="executor must accept three"):
        py_host.load(executor=lambda host: True, cache=tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
