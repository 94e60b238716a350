"""py_host crosses process boundaries (issue 13): its errors as themselves,
with their attributes; a RustModule as how it was loaded, executor and all;
the executors as how they were made. Process pools are tried with both
start methods: ``spawn`` starts a fresh interpreter, ``fork`` copies this
one, with its threads' state but not its threads."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from conftest import FAULTS_WASM, tutorial_input

import py_host

ERRORS: dict[str, py_host.Error] = {
    "InvalidInput": py_host.InvalidInput("out_of_range", "must be 1 to 255", ("timeout",)),
    "ModuleError": py_host.ModuleError("io", "writing failed"),
    "ModuleTrap": py_host.ModuleTrap("the module panicked: boom", panic_message="boom"),
    "LimitExceeded": py_host.LimitExceeded("memory", "out of memory"),
    "DeadlineExceeded": py_host.DeadlineExceeded("ran past its 1 s deadline"),
    "AbiViolation": py_host.AbiViolation("a reply outside memory"),
    "ConfigError": py_host.ConfigError("max_instances must be an int of at least 1"),
    "LoadError": py_host.LoadError("cannot read the module"),
}


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
def test_an_error_pickles_as_itself(error: py_host.Error) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_the_attributes_survive() -> None:
    copy = pickle.loads(pickle.dumps(ERRORS["InvalidInput"]))
    assert isinstance(copy, ValueError)
    assert (copy.kind, copy.message, copy.path) == (
        "out_of_range",
        "must be 1 to 255",
        ("timeout",),
    )
    trap = pickle.loads(pickle.dumps(ERRORS["DeadlineExceeded"]))
    assert isinstance(trap, TimeoutError)
    assert trap.limit == "deadline"


START_METHODS = [
    pytest.param(
        "fork",
        # Python 3.12 and later warn that forking a process with threads (here
        # wasmtime's, py_host's epoch clock, pytest-timeout's) may deadlock
        # the child. Whether py_host's own state survives a fork is what
        # these tests check, so the warning is expected, not a failure.
        marks=pytest.mark.filterwarnings(
            "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
        ),
    ),
    "spawn",
]


@pytest.fixture(params=START_METHODS)
def process_pool(request: pytest.FixtureRequest) -> Iterator[ProcessPoolExecutor]:
    """A one-worker process pool started with each start method."""
    context = multiprocessing.get_context(request.param)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        yield pool


def run_in_worker(fields: dict[str, Any]) -> bytes:
    with py_host.load() as rust:
        return rust.start_procedure_json(json.dumps(fields))


def test_an_error_raised_in_a_process_pool_reaches_the_caller(
    process_pool: ProcessPoolExecutor,
) -> None:
    future = process_pool.submit(run_in_worker, tutorial_input(timeout=0))
    with pytest.raises(py_host.InvalidInput) as raised:
        future.result(timeout=120)
    # The pool still works: the error did not break it.
    assert process_pool.submit(run_in_worker, tutorial_input()).result(timeout=120)
    assert (raised.value.kind, raised.value.path) == ("out_of_range", ("timeout",))


def test_a_module_pickles_as_how_it_was_loaded() -> None:
    network = py_host.SimulatedNetwork(down={"server1"})
    limits = py_host.Limits(deadline_seconds=5.0)
    with py_host.load(executor=network, limits=limits, max_instances=2) as rust:
        copy = pickle.loads(pickle.dumps(rust))
    with copy:
        assert copy is not rust
        output = copy.start_procedure(tutorial_input(retries=1))
        # The executor came along: server1 is down on the copy too.
        assert output.failed_hosts == ["server1"]
        assert output.failures[0].attempts == 2
        assert copy._pool._size == 2
        assert copy.live_allocations() == 0


def pickled_then_changed(tmp_path: Path) -> bytes:
    """A module of a file of its own, pickled, and the file changed since."""
    path = tmp_path / "module.wasm"
    path.write_bytes(py_host.module.DEFAULT_WASM.read_bytes())
    with py_host.load(path) as rust:
        pickled = pickle.dumps(rust)
    # A custom section named "x" appended: a valid module, but another file.
    path.write_bytes(path.read_bytes() + b"\x00\x02\x01x")
    return pickled


def test_a_module_file_changed_since_pickling_is_refused_at_the_first_call(
    tmp_path: Path,
) -> None:
    copy = pickle.loads(pickled_then_changed(tmp_path))
    for _ in range(2):  # each use tries to load it again
        with pytest.raises(py_host.LoadError, match="not the module that was pickled"):
            copy.print_int(1)
    copy.close()


def test_a_module_is_loaded_at_its_first_use_once_whatever_the_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with py_host.load(executor=py_host.SimulatedNetwork(down={"server1"})) as rust:
        pickled = pickle.dumps(rust)
    loads: list[object] = []
    real_load = py_host.module.load

    def counted_load(*args: Any, **kwargs: Any) -> py_host.RustModule:
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(py_host.module, "load", counted_load)
    copy = pickle.loads(pickled)
    assert loads == []
    assert pickle.loads(pickle.dumps(copy)) is not None, "passed along without loading"
    assert loads == []
    start = threading.Barrier(8)

    def first_call() -> list[str]:
        start.wait()
        return copy.start_procedure(tutorial_input()).failed_hosts

    with ThreadPoolExecutor(max_workers=8) as threads:
        results = [threads.submit(first_call) for _ in range(8)]
        assert [result.result(timeout=60) for result in results] == [["server1"]] * 8
    assert len(loads) == 1
    copy.close()


def test_a_module_closed_before_its_first_use_is_never_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with py_host.load() as rust:
        pickled = pickle.dumps(rust)
    copy = pickle.loads(pickled)
    monkeypatch.setattr(py_host.module, "load", None)
    copy.close()
    with pytest.raises(py_host.ClosedError):
        copy.print_int(1)


def test_a_module_that_cannot_load_in_a_worker_fails_its_task_not_the_pool(
    tmp_path: Path, process_pool: ProcessPoolExecutor
) -> None:
    # Loaded while the worker unpickled the task, its LoadError used to kill
    # the worker and break the pool.
    changed = pickle.loads(pickled_then_changed(tmp_path))
    task = process_pool.submit(run_on, changed, tutorial_input())
    with pytest.raises(py_host.LoadError, match="not the module that was pickled"):
        task.result(timeout=120)
    assert process_pool.submit(run_in_worker, tutorial_input()).result(timeout=120)


def test_command_and_concurrent_executors_pickle_as_how_they_were_made() -> None:
    command = py_host.CommandExecutor({"ping": ["true", "{host}"]}, max_workers=3)
    copy = pickle.loads(pickle.dumps(command))
    assert copy.commands == command.commands
    assert copy.run_round(py_host.Round("ping", 5, 1, ("a", "b"))) == [py_host.Outcome.ok()] * 2
    concurrent = pickle.loads(pickle.dumps(py_host.ConcurrentExecutor(always_ok, max_workers=2)))
    assert concurrent.run_round(py_host.Round("x", 1, 1, ("a",))) == [py_host.Outcome.ok()]


def always_ok(host: str, action: str, timeout: int) -> bool:
    return True


def test_a_simulated_network_pickles_as_itself() -> None:
    network = py_host.SimulatedNetwork(
        down={"Server1"}, flaky={"server2": 1}, slow={"server3": 20.0}
    )
    copy = pickle.loads(pickle.dumps(network))
    assert (copy.down, copy.flaky, copy.slow) == (network.down, network.flaky, network.slow)
    hosts = ("server1", "server2", "server3", "server4")
    for attempt in (1, 2):
        round = py_host.Round("reboot", 10, attempt, hosts)
        assert copy.run_round(round) == network.run_round(round)


def test_an_executor_that_cannot_be_pickled_fails_pickling_its_module() -> None:
    # pickle's own error, naming the lambda, is left as it is: Dask and Ray
    # pickle with cloudpickle, which takes lambdas, so py_host must not
    # refuse what pickle alone cannot do.
    with (
        py_host.load(executor=lambda host, action, timeout: True) as rust,
        pytest.raises((pickle.PicklingError, AttributeError), match="lambda"),
    ):
        pickle.dumps(rust)


def run_on(rust: py_host.RustModule, fields: dict[str, Any]) -> py_host.ProcedureOutput:
    with rust:
        return rust.start_procedure(fields)


# What each executor does to the tutorial's two hosts, by the README's
# rules: a host gets up to 1 + retries attempts and stops at its first
# success, and its failure keeps the reason of its last attempt.
EXECUTORS_AND_FAILURES = {
    "simulated": (
        py_host.SimulatedNetwork(down={"server1"}, flaky={"server2": 2}),
        [py_host.HostFailure(host="server1", attempts=3, reason="host is down")],
    ),
    "command": (
        # A real command: `test server1 != server1` exits with status 1.
        py_host.CommandExecutor({"reboot": ["test", "{host}", "!=", "server1"]}),
        [py_host.HostFailure(host="server1", attempts=3, reason="exit status 1")],
    ),
}


@pytest.mark.parametrize(
    ("executor", "failures"), EXECUTORS_AND_FAILURES.values(), ids=EXECUTORS_AND_FAILURES.keys()
)
def test_a_module_sent_to_a_process_pool_runs_its_executor_there(
    process_pool: ProcessPoolExecutor,
    executor: py_host.Executor,
    failures: list[py_host.HostFailure],
) -> None:
    with py_host.load(executor=executor) as rust:
        output = process_pool.submit(run_on, rust, tutorial_input(retries=2)).result(timeout=120)
    assert (output.result, output.dry_run) == ("partial", False)
    assert output.failures == failures
    assert output.failed_hosts == [failure.host for failure in failures]


INHERITED: py_host.RustModule | None = None
"""A module a forked worker inherits from the test that loaded it."""


def run_past_the_deadline_in_the_inherited_module() -> tuple[str, bool]:
    """The limit an endless loop hits in :data:`INHERITED`, and whether the
    module works after it."""
    assert INHERITED is not None
    try:
        INHERITED.print_string("fault:loop")
    except py_host.DeadlineExceeded as error:
        return error.limit, INHERITED.start_procedure(tutorial_input()).dry_run
    return "none", False


def test_a_forked_worker_can_use_a_module_loaded_before_the_fork() -> None:
    # The parent's epoch clock thread has run, and its pool lent and took
    # back an instance: in the child, which has no threads but the one that
    # forked, the clock must start afresh, or the endless loop would never
    # meet its deadline, and the pool must lend again.
    global INHERITED  # noqa: PLW0603
    context = multiprocessing.get_context("fork")
    with py_host.load(FAULTS_WASM, limits=py_host.Limits(deadline_seconds=0.3)) as INHERITED:
        with pytest.raises(py_host.DeadlineExceeded):
            INHERITED.print_string("fault:loop")
        # multiprocessing's pool, not concurrent.futures': leaving it kills
        # the worker, so a worker stuck in the loop fails the test at the
        # timeout instead of hanging it.
        with context.Pool(1) as pool:
            ran = pool.apply_async(run_past_the_deadline_in_the_inherited_module)
            assert ran.get(timeout=60) == ("deadline", True)
    INHERITED = None


PARKED = threading.Event()
"""Set once a call's executor is running on the host named "parked"."""
RELEASED = threading.Event()
"""What that executor waits for."""


def park(host: str, action: str, timeout: int) -> bool:
    """An executor that holds the host named "parked" until released."""
    if host == "parked":
        PARKED.set()
        RELEASED.wait()
    return True


def run_in_the_inherited_module() -> list[str]:
    assert INHERITED is not None
    return INHERITED.start_procedure(tutorial_input()).failed_hosts


def test_a_forked_worker_can_use_a_module_whose_only_instance_was_lent_at_the_fork() -> None:
    # The thread that holds the instance is not in the child, so its lease
    # never ends there: the child's pool must forget it and make another.
    global INHERITED  # noqa: PLW0603
    context = multiprocessing.get_context("fork")
    with py_host.load(executor=park, max_instances=1) as INHERITED:
        parked = threading.Thread(
            target=INHERITED.start_procedure, args=(tutorial_input(host_list=["parked"]),)
        )
        parked.start()
        try:
            assert PARKED.wait(timeout=60)
            with context.Pool(1) as pool:
                assert pool.apply_async(run_in_the_inherited_module).get(timeout=60) == []
        finally:
            RELEASED.set()
            parked.join()
    INHERITED = None


def compile_in_the_child() -> str:
    # As in a process that never loaded it, and with no disk cache: a compile.
    py_host._engine._compiled.clear()
    with py_host.load(cache=False) as rust:
        return rust.start_procedure(tutorial_input()).message


def test_a_forked_worker_compiles_though_its_parent_compiled_before_the_fork() -> None:
    # wasmtime compiles on rayon's thread pool: a child forked after its
    # parent compiled has the pool but not its threads, and a compile there
    # waited for them for ever.
    wasm = py_host.module.DEFAULT_WASM.read_bytes()
    wasmtime.Module(py_host._engine.engine(py_host._engine.Flavor(False, True)), wasm)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        compiled = pool.apply_async(compile_in_the_child)
        assert compiled.get(timeout=60).startswith("dry run: ")
