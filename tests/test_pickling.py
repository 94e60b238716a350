"""py_host's errors cross a process boundary as themselves: raised in a
process pool's worker, the caller gets the same class with the same
attributes (issue 13: they used to break the pool)."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import tutorial_input

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


def run_in_worker(fields: dict[str, Any]) -> bytes:
    with py_host.load() as rust:
        return rust.start_procedure_json(json.dumps(fields))


def test_an_error_raised_in_a_process_pool_reaches_the_caller() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(run_in_worker, tutorial_input(timeout=0))
        with pytest.raises(py_host.InvalidInput) as raised:
            future.result(timeout=120)
        # The pool still works: the error did not break it.
        assert pool.submit(run_in_worker, tutorial_input()).result(timeout=120)
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


def test_a_module_file_changed_since_pickling_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.wasm"
    path.write_bytes(py_host.module.DEFAULT_WASM.read_bytes())
    with py_host.load(path) as rust:
        pickled = pickle.dumps(rust)
    # A custom section named "x" appended: a valid module, but another file.
    path.write_bytes(path.read_bytes() + b"\x00\x02\x01x")
    with pytest.raises(py_host.LoadError, match="not the module that was pickled"):
        pickle.loads(pickled)


def test_command_and_concurrent_executors_pickle_as_how_they_were_made() -> None:
    command = py_host.CommandExecutor({"ping": ["true", "{host}"]}, max_workers=3)
    copy = pickle.loads(pickle.dumps(command))
    assert copy.commands == command.commands
    assert copy.run_round(py_host.Round("ping", 5, 1, ("a", "b"))) == [py_host.Outcome.ok()] * 2
    concurrent = pickle.loads(pickle.dumps(py_host.ConcurrentExecutor(always_ok, max_workers=2)))
    assert concurrent.run_round(py_host.Round("x", 1, 1, ("a",))) == [py_host.Outcome.ok()]


def always_ok(host: str, action: str, timeout: int) -> bool:
    return True


def run_on(rust: py_host.RustModule) -> list[str]:
    with rust:
        return rust.start_procedure(tutorial_input()).failed_hosts


def test_a_module_sent_to_a_process_pool_runs_there() -> None:
    context = multiprocessing.get_context("spawn")
    with (
        py_host.load(executor=py_host.SimulatedNetwork(down={"server2"})) as rust,
        ProcessPoolExecutor(max_workers=1, mp_context=context) as pool,
    ):
        assert pool.submit(run_on, rust).result(timeout=120) == ["server2"]
