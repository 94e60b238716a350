"""Loading: what is refused and why, closing, and sharing between threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import wasmtime
from conftest import ABI_FUNCTIONS, ABI_VERSION, ABI_VERSION_FUNCTION, module_file, tutorial_input

import py_host
from py_host._transport import transport


def test_the_default_module_loads() -> None:
    with py_host.load() as rust:
        assert rust.memory_pages > 0


def test_a_module_loaded_without_limits_gets_the_default_limits() -> None:
    with py_host.load() as rust:
        assert rust._loaded.limits == py_host.Limits()
        assert [instance._limits for instance in rust._pool.live()] == [py_host.Limits()]


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(py_host.LoadError, match=r"nothing-here\.wasm"):
        py_host.load(tmp_path / "nothing-here.wasm")


def test_an_endless_file_is_refused_not_read_whole() -> None:
    with pytest.raises(py_host.LoadError, match="larger than 67108864 bytes"):
        py_host.load("/dev/zero")


def test_a_file_that_is_not_webassembly_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.wasm"
    path.write_bytes(b"\x7fELF not wasm")
    with pytest.raises(py_host.LoadError, match="not a valid module"):
        py_host.load(path)


@pytest.mark.parametrize(
    ("wat", "problem"),
    [
        (
            ABI_FUNCTIONS + '(func (export "abi_version") (result i32) i32.const 2)',
            "speaks ABI version 2; this py_host speaks 3",
        ),
        (
            # A module of ABI version 2, whose rounds called the host.
            '(import "host" "execute_round" (func (param i32 i32) (result i64)))'
            + ABI_FUNCTIONS.replace('(export "resume_procedure")', "")
            + '(func (export "abi_version") (result i32) i32.const 2)',
            "speaks ABI version 2; this py_host speaks 3",
        ),
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
            "speaks ABI version 1; this py_host speaks 3",
        ),
        (
            ABI_FUNCTIONS.replace('(export "outbox")', "") + ABI_VERSION_FUNCTION,
            "'outbox' of ABI version 3",
        ),
        (ABI_FUNCTIONS, "'abi_version'"),
        (ABI_FUNCTIONS.replace('(export "memory")', ""), "'memory'"),
        (
            ABI_FUNCTIONS.replace(
                "(param i32) (result i32) i32.const 8", "(result i32) i32.const 8"
            )
            + ABI_VERSION_FUNCTION,
            "'alloc' does not have the signature of ABI version 3",
        ),
        (
            '(import "wasi_snapshot_preview1" "path_open" (func (param i32)))'
            + ABI_FUNCTIONS
            + ABI_VERSION_FUNCTION,
            "path_open",
        ),
        # ABI v2's executor import, as a table, a global: imports that are
        # not functions are refused by name like any other (docs/ABI.md).
        (
            '(import "host" "execute_round" (table 1 funcref))'
            + ABI_FUNCTIONS
            + ABI_VERSION_FUNCTION,
            "host::execute_round",
        ),
        (
            '(import "host" "execute_round" (global i32))' + ABI_FUNCTIONS + ABI_VERSION_FUNCTION,
            "host::execute_round",
        ),
        (
            '(import "wasi_snapshot_preview1" "fd_write" (func (param i32)))'
            + ABI_FUNCTIONS
            + ABI_VERSION_FUNCTION,
            "imports wasi_snapshot_preview1::fd_write with another type",
        ),
        (
            ABI_FUNCTIONS.replace(
                '(func (export "print_int") (param i32) (result i64) i64.const 0)',
                '(func (export "print_int") (param i32) (result i32) i32.const 0)',
            )
            + ABI_VERSION_FUNCTION,
            "'print_int' does not have the signature of ABI version 3",
        ),
        (
            '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32)))'
            + ABI_FUNCTIONS
            + ABI_VERSION_FUNCTION,
            "imports wasi_snapshot_preview1::fd_write with another type",
        ),
        (
            '(import "wasi_snapshot_preview1" "proc_exit" (global i32))'
            + ABI_FUNCTIONS
            + ABI_VERSION_FUNCTION,
            "imports wasi_snapshot_preview1::proc_exit with another type",
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
            "called wasi_snapshot_preview1::proc_exit, which no module is granted",
        ),
        (
            WASI_EXIT + WITH_VERSION + "(func $start i32.const 3 call $exit) (start $start)",
            "called wasi_snapshot_preview1::proc_exit, which no module is granted",
        ),
        (WITH_VERSION + "(func $start unreachable) (start $start)", "unreachable"),
    ],
)
def test_a_module_that_fails_while_loading_raises_load_error(
    tmp_path: Path, wat: str, problem: str
) -> None:
    with pytest.raises(py_host.LoadError, match=problem):
        py_host.load(module_file(tmp_path, wat))


def test_every_import_a_module_may_have_traps_when_called(tmp_path: Path) -> None:
    # docs/ABI.md: the host defines the four WASI imports as functions that
    # trap, so a module that calls one, even to write to stdout, is stopped.
    wat = (
        WASI_WRITE
        + WITH_VERSION
        + "(func $start (drop (call $write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))) (start $start)"
    )
    with pytest.raises(
        py_host.LoadError,
        match="called wasi_snapshot_preview1::fd_write, which no module is granted",
    ):
        py_host.load(module_file(tmp_path, wat))


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


def test_the_module_is_granted_nothing_at_all(tmp_path: Path) -> None:
    # Not even a write to a file descriptor: abi_version traps at load.
    wat = (
        WASI_WRITE
        + ABI_FUNCTIONS
        + (
            '(func (export "abi_version") (result i32)'
            " (drop (call $write (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0)))"
            f" i32.const {ABI_VERSION})"
        )
    )
    with pytest.raises(
        py_host.LoadError,
        match="called wasi_snapshot_preview1::fd_write, which no module is granted",
    ):
        py_host.load(module_file(tmp_path, wat))


GRANT_TRAPS = WITH_VERSION.replace(
    '(func (export "grant_executor"))', '(func (export "grant_executor") unreachable)'
)
GRANT_LOOPS = WITH_VERSION.replace(
    '(func (export "grant_executor"))',
    '(func (export "grant_executor") (loop $forever (br $forever)))',
)


def test_a_module_that_traps_as_its_executor_is_granted_is_refused(tmp_path: Path) -> None:
    # Explained from the Store's memory before the Store is freed.
    with pytest.raises(py_host.LoadError, match=r"cannot instantiate the module: .*unreachable"):
        py_host.load(module_file(tmp_path, GRANT_TRAPS), executor=py_host.SimulatedNetwork())


def test_the_first_calls_of_an_instance_run_under_the_deadline(tmp_path: Path) -> None:
    limits = py_host.Limits(deadline_seconds=0.2)
    with pytest.raises(py_host.LoadError, match="deadline"):
        py_host.load(
            module_file(tmp_path, GRANT_LOOPS), executor=py_host.SimulatedNetwork(), limits=limits
        )


def test_a_refused_module_is_not_asked_its_version_without_a_deadline(tmp_path: Path) -> None:
    # Its abi_version loops: with no deadline to stop it, it is not called.
    wat = (
        '(import "env" "f" (func))'
        + ABI_FUNCTIONS
        + '(func (export "abi_version") (result i32) (loop $forever (br $forever)) i32.const 2)'
    )
    limits = py_host.Limits(deadline_seconds=None)
    with pytest.raises(py_host.LoadError, match="imports env::f"):
        py_host.load(module_file(tmp_path, wat), limits=limits)


@pytest.mark.parametrize(
    ("wat", "missing"),
    [
        ('(func (export "alloc")) (func (export "dealloc"))', "memory"),
        ('(func (export "memory")) (func (export "alloc")) (func (export "dealloc"))', "memory"),
        ('(memory (export "memory") 1) (func (export "alloc"))', "dealloc"),
        (
            '(memory (export "memory") 1) (func (export "alloc")) (global (export "dealloc") i32 (i32.const 0))',
            "dealloc",
        ),
    ],
    ids=["no memory", "memory not a memory", "no function", "function not a function"],
)
def test_an_instance_without_the_exports_the_host_calls_is_refused(wat: str, missing: str) -> None:
    # check_module refuses such a module first; the transport, which looks
    # its exports up itself, refuses it all the same.
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, f"(module {wat})"), [])
    with pytest.raises(py_host.LoadError, match=f"does not export '{missing}'"):
        transport(store, instance, ["alloc", "dealloc"], i64_results=frozenset())
