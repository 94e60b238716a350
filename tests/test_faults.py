"""A misbehaving module (built with the `faults` feature) raises a clear
py_host error, and the next call runs on a fresh instance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FAULTS_WASM, tutorial_input

import py_host


def test_a_panic_raises_module_trap_with_the_panic_message(
    faulty: py_host.RustModule, capsys: Any
) -> None:
    with pytest.raises(py_host.ModuleTrap) as raised:
        faulty.print_string("fault:panic")
    assert raised.value.panic_message is not None
    assert "injected panic: the host asked for it" in raised.value.panic_message
    assert "src/faults.rs" in raised.value.panic_message
    faulty.print_string("alive again")
    assert capsys.readouterr().out == "alive again\n"


@pytest.mark.parametrize("fault", ["fault:reply-out-of-bounds", "fault:reply-not-live"])
def test_a_bad_reply_raises_abi_violation(faulty: py_host.RustModule, fault: str) -> None:
    with pytest.raises(py_host.AbiViolation):
        faulty.print_string(fault)
    assert faulty.start_procedure(tutorial_input()).dry_run
    assert faulty.live_allocations() == 0


@pytest.mark.parametrize(
    "fault", ["fault:reply-garbage", "fault:reply-ok-not-output", "fault:reply-duplicate-ok"]
)
def test_a_reply_that_is_not_the_documented_json_raises_abi_violation(
    faulty: py_host.RustModule, fault: str
) -> None:
    with pytest.raises(py_host.AbiViolation):
        faulty.start_procedure_json(fault)
    with pytest.raises(py_host.AbiViolation):
        faulty.start_procedure_json(fault)
    assert faulty.live_allocations() == 0


@pytest.mark.parametrize("fault", ["fault:round-garbage", "fault:round-bad-host"])
def test_a_round_request_that_is_not_the_documented_json_runs_nothing(
    tmp_path: Path, fault: str
) -> None:
    marker = tmp_path / "ran"
    executor = py_host.CommandExecutor({"reboot": ["touch", str(marker)]})
    with py_host.load(FAULTS_WASM, executor=executor) as faulty:
        with pytest.raises(py_host.AbiViolation, match="invalid request"):
            faulty.print_string(fault)
        assert faulty.start_procedure(tutorial_input()).result == "success"
    assert marker.exists(), "the valid procedure afterwards ran"
    marker.unlink()
    with (
        py_host.load(FAULTS_WASM, executor=executor) as faulty,
        pytest.raises(py_host.AbiViolation),
    ):
        faulty.print_string(fault)
    assert not marker.exists()


def test_a_reply_buffer_does_not_outlive_its_instance(faulty: py_host.RustModule) -> None:
    reply = faulty.start_procedure_buffer(json.dumps(tutorial_input()))
    with pytest.raises(py_host.ModuleTrap):
        faulty.print_string("fault:panic")
    with pytest.raises(py_host.BufferFreed, match="discarded"):
        reply.read()
    with pytest.raises(py_host.BufferFreed):
        reply.free()


def test_every_py_host_error_is_one_base_class() -> None:
    for error in [
        py_host.InvalidInput,
        py_host.ModuleError,
        py_host.ModuleTrap,
        py_host.AbiViolation,
        py_host.BufferFreed,
        py_host.LoadError,
        py_host.ClosedError,
        py_host.LimitExceeded,
        py_host.ReentrancyError,
    ]:
        assert issubclass(error, py_host.Error)
