"""py_host's errors cross a process boundary as themselves: raised in a
process pool's worker, the caller gets the same class with the same
attributes (issue 13: they used to break the pool)."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
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
