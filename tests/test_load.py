"""Loading: what is refused and why, closing, and sharing between threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import ABI_FUNCTIONS, ABI_VERSION, ABI_VERSION_FUNCTION, module_file, tutorial_input

import py_host


def test_the_default_module_loads() -> None:
    with py_host.load() as rust:
        assert rust.memory_pages > 0


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(py_host.LoadError, match=r"nothing-here\.wasm"):
        py_host.load(tmp_path / "nothing-here.wasm")


def test_a_file_that_is_not_webassembly_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.wasm"
    path.write_bytes(b"\x7fELF not wasm")
    with pytest.raises(py_host.LoadError, match="not a valid module"):
        py_host.load(path)


@pytest.mark.parametrize(
    ("wat", "problem"),
    [
        (ABI_FUNCTIONS + '(func (export "abi_version") (result i32) i32.const 3)', "ABI version 3"),
        (
            ABI_FUNCTIONS.replace("i64.const 0x0000001000000005", "i64.const 0x00ff000000000005")
            + ABI_VERSION_FUNCTION,
            "crate_version is not a version: .*outside",
        ),
        (
            ABI_FUNCTIONS.replace("i64.const 0x0000001000000005", "i64.const 0x0000001000001000")
            + ABI_VERSION_FUNCTION,
            "crate_version is not a version: 4096 bytes long",
        ),
        (
            ABI_FUNCTIONS.replace(
                '(data (i32.const 16) "0.0.0")', '(data (i32.const 16) "\\ff0.0.")'
            )
            + ABI_VERSION_FUNCTION,
            "crate_version is not a version: 'utf-8' codec",
        ),
        (
            # A module of ABI version 1, which had no start_procedure_into.
            ABI_FUNCTIONS.replace('(export "start_procedure_into")', "")
            + '(func (export "abi_version") (result i32) i32.const 1)',
            "'start_procedure_into' of ABI version 2",
        ),
        (ABI_FUNCTIONS, "'abi_version'"),
        (ABI_FUNCTIONS.replace('(export "memory")', ""), "'memory'"),
        (
            ABI_FUNCTIONS.replace(
                "(param i32) (result i32) i32.const 8", "(result i32) i32.const 8"
            )
            + ABI_VERSION_FUNCTION,
            "'alloc' does not have the signature of ABI version 2",
        ),
        (
            '(import "wasi_snapshot_preview1" "path_open" (func (param i32)))'
            + ABI_FUNCTIONS
            + ABI_VERSION_FUNCTION,
            "path_open",
        ),
    ],
)
def test_a_module_that_does_not_speak_the_abi_is_refused(
    tmp_path: Path, wat: str, problem: str
) -> None:
    with pytest.raises(py_host.LoadError, match=problem):
        py_host.load(module_file(tmp_path, wat))


WITH_VERSION = ABI_FUNCTIONS + ABI_VERSION_FUNCTION
WASI_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
WASI_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))'


@pytest.mark.parametrize(
    ("wat", "problem"),
    [
        (ABI_FUNCTIONS + '(func (export "abi_version") (result i32) unreachable)', "unreachable"),
        (
            WASI_EXIT
            + ABI_FUNCTIONS
            + '(func (export "abi_version") (result i32) i32.const 3 call $exit i32.const 1)',
            "exited",
        ),
        (
            WASI_EXIT + WITH_VERSION + "(func $start i32.const 3 call $exit) (start $start)",
            "exited",
        ),
        (WITH_VERSION + "(func $start unreachable) (start $start)", "unreachable"),
    ],
)
def test_a_module_that_fails_while_loading_raises_load_error(
    tmp_path: Path, wat: str, problem: str
) -> None:
    with pytest.raises(py_host.LoadError, match=problem):
        py_host.load(module_file(tmp_path, wat))


def test_imports_called_before_the_exports_exist_get_an_error_code(tmp_path: Path) -> None:
    # A start function runs before the host can know the exports: fd_write
    # answers EBADF (8) instead of failing, and the module loads.
    wat = (
        WASI_WRITE
        + WITH_VERSION
        + "(func $start (if (i32.ne (call $write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const 8)) (then unreachable))) (start $start)"
    )
    with py_host.load(module_file(tmp_path, wat)) as rust:
        assert rust.live_allocations() == 0


def test_a_closed_module_refuses_calls() -> None:
    rust = py_host.load()
    rust.close()
    with pytest.raises(py_host.ClosedError):
        rust.print_int(1)
    rust.close()


def test_the_context_manager_closes() -> None:
    with py_host.load() as rust:
        pass
    with pytest.raises(py_host.ClosedError):
        rust.start_procedure(tutorial_input())


def test_one_module_serves_many_threads() -> None:
    network = py_host.SimulatedNetwork(down={"server1"})
    errors: list[BaseException] = []
    with py_host.load(executor=network) as rust:

        def work(job_id: int) -> None:
            try:
                for _ in range(50):
                    output = rust.start_procedure(tutorial_input(job_id=job_id))
                    assert (output.job_id, output.failed_hosts) == (job_id, ["server1"])
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert rust.live_allocations() == 0


def test_the_module_is_granted_no_file(tmp_path: Path) -> None:
    # fd_write to any descriptor but stdout and stderr answers EBADF (8):
    # this abi_version traps unless it gets exactly that for fd 3.
    wat = (
        WASI_WRITE
        + ABI_FUNCTIONS
        + (
            '(func (export "abi_version") (result i32)'
            " (if (i32.ne (call $write (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const 8)) (then unreachable))"
            f" i32.const {ABI_VERSION})"
        )
    )
    with py_host.load(module_file(tmp_path, wat)) as rust:
        assert rust.live_allocations() == 0
