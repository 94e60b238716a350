"""py_host for asyncio: load_async, async executors, cancellation at each
point of a procedure, and the procedure's total time limit. After each,
nothing is left behind: no live allocation, no instance past the pool's
size, no thread past the baseline."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from conftest import tutorial_input

import py_host
from py_host import Outcome, Round
from py_host._instance import Instance

pytestmark = pytest.mark.timeout(120)


async def up(host: str, action: str, timeout: int) -> bool:
    await asyncio.sleep(0)
    return True


def big_input(hosts: int, **changes: Any) -> dict[str, Any]:
    return tutorial_input(host_list=[f"host{index}" for index in range(hosts)], **changes)


@pytest_asyncio.fixture
async def threads_at_start() -> AsyncIterator[set[threading.Thread]]:
    """The threads alive before the test: the same must be alive after it,
    once its module is closed."""
    before = set(threading.enumerate())
    yield before
    # load_async and aclose use the loop's own threads, as asyncio.to_thread
    # does; asyncio.run ends them as the loop closes.
    await asyncio.get_running_loop().shutdown_default_executor()
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not {thread.name for thread in set(threading.enumerate()) - before}


# Async executors and sync ones.


async def test_an_async_action_runs_each_attempt_as_a_task() -> None:
    attempts: list[tuple[str, str, int]] = []

    async def action(host: str, action: str, timeout: int) -> bool:
        attempts.append((host, action, timeout))
        await asyncio.sleep(0.001)
        return host != "server1"

    async with await py_host.load_async(executor=action) as rust:
        output = await rust.start_procedure(tutorial_input(retries=2, timeout=7))
        assert await rust.live_allocations() == 0
    # README: a host gets 1 + retries attempts and stops at its first success.
    assert output.failed_hosts == ["server1"]
    assert output.failures[0].attempts == 3
    assert output.failures[0].reason == "the executor reported failure"
    assert output.result == "partial"
    assert sorted(attempts) == sorted([("server1", "reboot", 7)] * 3 + [("server2", "reboot", 7)])


class AsyncNetwork:
    """An async executor: each round's hosts answered by a SimulatedNetwork."""

    def __init__(self, **network: Any) -> None:
        self.network = py_host.SimulatedNetwork(**network)
        self.rounds: list[Round] = []

    async def run_round(self, round: Round) -> Sequence[Outcome]:
        self.rounds.append(round)
        await asyncio.sleep(0)
        return self.network.run_round(round)


async def test_an_async_executor_gets_each_round() -> None:
    executor = AsyncNetwork(flaky={"server2": 1})
    async with await py_host.load_async(executor=executor) as rust:
        output = await rust.start_procedure(tutorial_input(retries=1))
    assert output.result == "success"
    assert executor.rounds == [
        Round("reboot", 10, 1, ("server1", "server2")),
        Round("reboot", 10, 2, ("server2",)),
    ]


async def test_what_an_async_executor_raises_fails_every_host_of_its_round() -> None:
    class Raising:
        def __init__(self) -> None:
            self.rounds = 0

        async def run_round(self, round: Round) -> Sequence[Outcome]:
            self.rounds += 1
            if self.rounds == 1:
                raise ConnectionError("the pool is gone")
            return [Outcome.ok()] * len(round.hosts)

    executor = Raising()
    async with await py_host.load_async(executor=executor) as rust:
        failed = await rust.start_procedure(tutorial_input(retries=0))
        # With a retry, both hosts are tried again and succeed.
        executor.rounds = 0
        retried = await rust.start_procedure(tutorial_input(retries=1))
    reason = "the executor raised ConnectionError: the pool is gone"
    assert [(f.host, f.attempts, f.reason) for f in failed.failures] == [
        ("server1", 1, reason),
        ("server2", 1, reason),
    ]
    assert (retried.result, executor.rounds) == ("success", 2)


@pytest.mark.parametrize(
    "executor",
    [
        py_host.SimulatedNetwork(down={"server1"}),
        lambda host, action, timeout: host != "server1",
        py_host.CommandExecutor(
            {
                "reboot": [
                    sys.executable,
                    "-c",
                    "import sys; sys.exit(sys.argv[1] == 'server1')",
                    "{host}",
                ]
            }
        ),
    ],
    ids=["SimulatedNetwork", "callable", "CommandExecutor"],
)
async def test_a_sync_executor_runs_its_rounds_in_a_thread(
    executor: Any, threads_at_start: set[threading.Thread]
) -> None:
    async with await py_host.load_async(executor=executor) as rust:
        output = await rust.start_procedure(tutorial_input(retries=1))
    assert output.failed_hosts == ["server1"]
    assert output.failures[0].attempts == 2


async def test_a_module_loaded_without_limits_gets_the_default_limits() -> None:
    async with await py_host.load_async() as rust:
        assert [instance._limits for instance in rust._pool.live()] == [py_host.Limits()]


async def test_without_an_executor_a_procedure_is_a_dry_run() -> None:
    async with await py_host.load_async() as rust:
        raw = await rust.start_procedure_json(
            b'{"timeout":1,"retries":0,"action":"a","host_list":["h"],"job_id":5}'
        )
    output = py_host.ProcedureOutput.model_validate_json(raw)
    assert (output.dry_run, output.job_id, output.result) == (True, 5, "success")


async def test_print_functions_write_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    async with await py_host.load_async() as rust:
        await rust.print_string("你好 from async")
        await rust.print_int(-7)
    assert capsys.readouterr().out == "你好 from async\nPython gave us number -7\n"


async def test_bad_input_raises_and_leaves_nothing() -> None:
    async with await py_host.load_async(executor=up) as rust:
        with pytest.raises(py_host.InvalidInput) as raised:
            await rust.start_procedure(tutorial_input(timeout=0))
        assert (raised.value.kind, raised.value.path) == ("out_of_range", ("timeout",))
        with pytest.raises(py_host.InvalidInput, match="host_list"):
            await rust.start_procedure_json(
                b'{"timeout":1,"retries":0,"action":"a","host_list":["-x"],"job_id":1}'
            )
        with pytest.raises(py_host.InvalidInput):
            await rust.print_int(2**31)
        assert await rust.live_allocations() == 0
        assert (await rust.start_procedure(tutorial_input())).result == "success"


async def test_an_attempt_past_its_timeout_is_cancelled_and_timed_out(
    threads_at_start: set[threading.Thread],
) -> None:
    cancelled: list[str] = []

    async def action(host: str, action: str, timeout: int) -> bool:
        try:
            await asyncio.sleep(0 if host == "server2" else 60)
        except asyncio.CancelledError:
            cancelled.append(host)
            raise
        return True

    async with await py_host.load_async(executor=action) as rust:
        output = await rust.start_procedure(tutorial_input(timeout=1, retries=0))
    assert output.failures == [
        py_host.HostFailure(host="server1", attempts=1, reason="timed out after 1 s")
    ]
    assert cancelled == ["server1"]


async def test_what_an_async_action_raises_or_returns_wrong_fails_its_host() -> None:
    async def action(host: str, action: str, timeout: int) -> Any:
        if host == "server1":
            raise ConnectionError("refused by peer")
        if host == "server2":
            return "yes"
        return TimeoutError("not raised, returned") if host == "server3" else True

    async with await py_host.load_async(executor=action) as rust:
        output = await rust.start_procedure(
            tutorial_input(retries=0, host_list=["server1", "server2", "server3", "server4"])
        )
    assert [(f.host, f.reason) for f in output.failures] == [
        ("server1", "the executor raised ConnectionError: refused by peer"),
        ("server2", "the executor returned str, expected Outcome or bool"),
        ("server3", "the executor returned TimeoutError, expected Outcome or bool"),
    ]


async def test_an_action_raising_timeout_error_itself_fails_rather_than_times_out() -> None:
    async def action(host: str, action: str, timeout: int) -> bool:
        raise TimeoutError("the host's own")

    executor = py_host.AsyncConcurrentExecutor(action)
    outcomes = await executor.run_round(Round("a", 5, 1, ("h",)))
    assert outcomes == [Outcome.failed("the executor raised TimeoutError: the host's own")]


async def test_at_most_max_tasks_attempts_run_at_once() -> None:
    running = most = 0

    async def action(host: str, action: str, timeout: int) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        running -= 1
        return True

    executor = py_host.AsyncConcurrentExecutor(action, max_tasks=3)
    hosts = tuple(f"h{index}" for index in range(20))
    assert await executor.run_round(Round("a", 5, 1, hosts)) == [Outcome.ok()] * 20
    assert most == 3


async def test_a_cancelled_round_cancels_its_attempts() -> None:
    started: list[str] = []
    cancelled: list[str] = []

    async def action(host: str, action: str, timeout: int) -> bool:
        started.append(host)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(host)
            raise
        return True

    executor = py_host.AsyncConcurrentExecutor(action, max_tasks=2)
    task = asyncio.ensure_future(executor.run_round(Round("a", 60, 1, ("a", "b", "c"))))
    while len(started) < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert sorted(cancelled) == ["a", "b"]
    assert started == ["a", "b"]


@pytest.mark.parametrize(
    ("made", "error"),
    [
        (
            lambda: py_host.AsyncConcurrentExecutor(up, max_tasks=0),
            "max_tasks must be at least 1, not 0",
        ),
        (
            lambda: py_host.AsyncConcurrentExecutor(lambda host, action, timeout: True),
            "action must be an async def",
        ),
        (lambda: py_host.AsyncConcurrentExecutor(lambda host: True), "must accept three arguments"),
    ],
    ids=["max_tasks", "sync action", "signature"],
)
async def test_a_wrong_async_executor_argument_raises_config_error(made: Any, error: str) -> None:
    with pytest.raises(py_host.ConfigError, match=error):
        made()


def test_the_sync_load_refuses_an_async_executor_naming_load_async() -> None:
    with pytest.raises(py_host.ConfigError, match=r"py_host\.load_async"):
        py_host.load(executor=up)
    with pytest.raises(py_host.ConfigError, match=r"py_host\.load_async"):
        py_host.load(executor=AsyncNetwork())


async def test_a_progress_callback_sees_each_round() -> None:
    seen: list[py_host.Progress] = []
    async with await py_host.load_async(
        executor=AsyncNetwork(down={"server1"}, flaky={"server3": 1})
    ) as rust:
        await rust.start_procedure(
            tutorial_input(retries=1, job_id=4, host_list=["server1", "server2", "server3"]),
            progress=seen.append,
        )
    # Round 1: server2 ok; server1 and server3 failed, with retries left.
    # Round 2: server3 ok; server1 failed for good.
    assert seen == [
        py_host.Progress(job_id=4, rounds=1, hosts=3, hosts_done=1, hosts_failed=0),
        py_host.Progress(job_id=4, rounds=2, hosts=3, hosts_done=3, hosts_failed=1),
    ]


async def test_the_executor_calling_its_own_module_is_refused() -> None:
    rust: py_host.AsyncRustModule

    async def action(host: str, action: str, timeout: int) -> bool:
        # From a task of its own, too: it inherits the executor's context.
        await asyncio.ensure_future(rust.print_int(1))
        return True

    async with await py_host.load_async(executor=action, max_instances=1) as rust:
        output = await rust.start_procedure(tutorial_input(retries=0))
        assert await rust.live_allocations() == 0
    assert {failure.reason for failure in output.failures} == {
        "the executor raised ReentrancyError: the module was called from inside its own executor"
    }


# Cancellation.


class Gate:
    """An async executor whose rounds on server1 hang; others succeed at once."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelled = 0

    async def run_round(self, round: Round) -> Sequence[Outcome]:
        if "server1" not in round.hosts:
            return [Outcome.ok()] * len(round.hosts)
        self.entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return [Outcome.ok()] * len(round.hosts)


async def test_a_task_cancelled_in_its_round_resets_the_instance_and_keeps_it(
    threads_at_start: set[threading.Thread],
) -> None:
    gate = Gate()
    async with await py_host.load_async(executor=gate, max_instances=1) as rust:
        first = rust._pool.live()
        task = asyncio.ensure_future(rust.start_procedure(tutorial_input()))
        await gate.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.cancelled == 1
        # The module abandoned the procedure: the same instance serves on,
        # with none in progress (docs/ABI.md: cancel_procedure returns 1).
        assert rust._pool.live() == first
        assert await rust.live_allocations() == 0
        assert rust._each_idle(
            lambda exports, ctx: exports._transport.call(ctx, "cancel_procedure")
        ) == [1]
        output = await rust.start_procedure_json(
            b'{"timeout":1,"retries":0,"action":"a","host_list":["h"],"job_id":2}'
        )
        assert b'"job_id":2' in output
        assert rust._pool.live() == first


async def test_cancelled_at_every_point_a_procedure_leaves_nothing(
    threads_at_start: set[threading.Thread],
) -> None:
    # One run per loop iteration the procedure takes: each run's task is
    # cancelled one iteration later than the last, so every await of it is
    # cut once (an attempt's sleep, a round, the pool's wait, the steps).
    async def action(host: str, action: str, timeout: int) -> bool:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return host != "server1"

    rust = await py_host.load_async(executor=action, max_instances=2)
    outcomes: dict[str, int] = {"cancelled": 0, "done": 0}
    for ticks in range(60):
        tasks = [
            asyncio.ensure_future(rust.start_procedure(tutorial_input(retries=2))) for _ in range(3)
        ]
        for _ in range(ticks):
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                output = await task
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
            else:
                assert output.failed_hosts == ["server1"]
                outcomes["done"] += 1
        assert len(rust._pool.live()) <= 2
        assert await rust.live_allocations() == 0
    assert outcomes["cancelled"]
    assert outcomes["done"]
    assert (await rust.start_procedure(tutorial_input(retries=0))).failed_hosts == ["server1"]
    await rust.aclose()


async def test_a_task_cancelled_during_a_step_in_a_thread_discards_its_instance_after_the_step(
    threads_at_start: set[threading.Thread],
) -> None:
    # A procedure this large runs its steps in a thread (py_host.aio.OFFLOAD_BYTES).
    async with await py_host.load_async(executor=up, max_instances=1) as rust:
        first = rust._pool.live()
        for delay in (0.0, 0.0005, 0.001, 0.002, 0.004):
            task = asyncio.ensure_future(rust.start_procedure(big_input(10_000)))
            await asyncio.sleep(delay)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(rust._pool.live()) <= 1
        # The next call waits for the step to end and the instance to go.
        output = await rust.start_procedure(big_input(3))
        assert output.result == "success"
        assert await rust.live_allocations() == 0
        assert rust._pool.live() != first


async def test_large_procedures_step_in_a_thread_and_small_ones_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stepped: list[bool] = []
    call = Instance.call

    def spied(self: Instance, *args: Any, **kwargs: Any) -> Any:
        stepped.append(threading.current_thread() is threading.main_thread())
        return call(self, *args, **kwargs)

    monkeypatch.setattr(Instance, "call", spied)
    async with await py_host.load_async(executor=up) as rust:
        stepped.clear()  # load_async's own calls run in a thread
        await rust.start_procedure(tutorial_input())
        assert stepped == [True, True]  # start, resume: both on the loop
        stepped.clear()
        await rust.start_procedure(big_input(2_000))
        assert stepped == [False, False]


# The total time limit.


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_procedure_time_limit_stops_a_round_that_hangs(
    kind: str, threads_at_start: set[threading.Thread]
) -> None:
    async def hangs(host: str, action: str, timeout: int) -> bool:
        await asyncio.sleep(60)
        return True

    def blocks(host: str, action: str, timeout: int) -> bool:
        time.sleep(2)
        return True

    limits = py_host.Limits(procedure_seconds=0.2)
    executor = hangs if kind == "async" else blocks
    async with await py_host.load_async(executor=executor, limits=limits, max_instances=1) as rust:
        began = time.monotonic()
        with pytest.raises(py_host.DeadlineExceeded) as raised:
            await rust.start_procedure(tutorial_input(timeout=60))
        took = time.monotonic() - began
        assert raised.value.limit == "procedure"
        assert "0.2 s in all" in str(raised.value)
        # Stopped at the limit, not when the round would have ended.
        assert took < (30 if kind == "async" else 1.9)
        assert await rust.live_allocations() == 0
        # The instance serves on: the next call ends the same way.
        with pytest.raises(py_host.DeadlineExceeded):
            await rust.start_procedure(tutorial_input(timeout=60))


async def test_wait_for_around_a_call_frees_its_instance_at_once() -> None:
    # The case: asyncio.wait_for on a procedure; the next call must
    # not wait for the abandoned one.
    gate = Gate()
    async with await py_host.load_async(executor=gate, max_instances=1) as rust:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rust.start_procedure(tutorial_input()), 0.05)
        output = await asyncio.wait_for(
            rust.start_procedure_json(
                b'{"timeout":1,"retries":0,"action":"a","host_list":["h"],"job_id":3}'
            ),
            5,
        )
        assert b'"job_id":3' in output


# Event loops.


def test_a_module_serves_one_loop_after_another() -> None:
    async def load() -> py_host.AsyncRustModule:
        return await py_host.load_async(executor=up, max_instances=1)

    async def run(rust: py_host.AsyncRustModule) -> str:
        outputs = await asyncio.gather(*(rust.start_procedure(tutorial_input()) for _ in range(3)))
        return outputs[0].result

    rust = asyncio.run(load())
    assert asyncio.run(run(rust)) == "success"
    assert asyncio.run(run(rust)) == "success"
    asyncio.run(rust.aclose())


async def test_a_closed_module_refuses_calls() -> None:
    rust = await py_host.load_async()
    await rust.aclose()
    with pytest.raises(py_host.ClosedError):
        await rust.print_int(1)


async def test_many_concurrent_procedures_share_the_pool(
    threads_at_start: set[threading.Thread],
) -> None:
    async def slow(host: str, action: str, timeout: int) -> bool:
        await asyncio.sleep(0.005)
        return host != "b"

    async with await py_host.load_async(executor=slow, max_instances=4) as rust:
        outputs = await asyncio.gather(
            *(
                rust.start_procedure(tutorial_input(host_list=["a", "b"], job_id=n))
                for n in range(40)
            )
        )
        assert len(rust._pool.live()) <= 4
        assert await rust.live_allocations() == 0
    assert [output.job_id for output in outputs] == list(range(40))
    assert {tuple(output.failed_hosts) for output in outputs} == {("b",)}
