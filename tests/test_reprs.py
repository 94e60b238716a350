"""What a module, a reply buffer and an executor say they are when printed:
enough to tell them apart in a log or a debugger."""

from __future__ import annotations

import hashlib
import json
import pickle

from conftest import FAULTS_WASM, tutorial_input

import py_host


def test_a_module_names_its_file_version_executor_limits_pool_and_state() -> None:
    network = py_host.SimulatedNetwork(down={"server1"})
    sha = hashlib.sha256(FAULTS_WASM.read_bytes()).hexdigest()
    rust = py_host.load(
        FAULTS_WASM,
        executor=network,
        limits=py_host.Limits(max_memory_bytes=8 << 20, max_fuel=1000),
        max_instances=3,
    )
    described = (
        f"<RustModule {FAULTS_WASM.name} sha256:{sha[:12]}, module {rust.crate_version}, "
        "executor SimulatedNetwork(down=['server1']), "
        "Limits(max_memory_bytes=8388608, max_fuel=1000), up to 3 instances, {}>"
    )
    assert repr(rust) == described.format("open")
    rust.close()
    assert repr(rust) == described.format("closed")


def test_a_module_with_no_executor_and_the_default_limits() -> None:
    with py_host.load() as rust:
        assert ", no executor, Limits(), up to " in repr(rust)
        assert repr(rust).startswith("<RustModule the packaged module sha256:")


def test_an_unpickled_module_says_so_without_loading() -> None:
    with py_host.load() as rust:
        copy = pickle.loads(pickle.dumps(rust))
        assert repr(copy).endswith(", not loaded yet>")
        assert "_pool" not in vars(copy), "repr loaded the module"
        copy.print_int(1)
        assert repr(copy) == repr(rust)
        copy.close()
        assert repr(copy).endswith(", closed>")


def test_a_reply_buffer_gives_its_length_and_whether_it_was_freed() -> None:
    with py_host.load() as rust:
        buffer = rust.start_procedure_buffer(json.dumps(tutorial_input()))
        length = len(buffer.read())
        assert repr(buffer) == f"<ReplyBuffer of {length} bytes, live>"
        buffer.free()
        assert repr(buffer) == f"<ReplyBuffer of {length} bytes, freed>"


def ping(host: str, action: str, timeout: int) -> bool:
    return True


async def ping_async(host: str, action: str, timeout: int) -> bool:
    return True


def test_the_executors_say_what_they_run() -> None:
    network = py_host.SimulatedNetwork(down=["b", "A"], flaky={"c": 2}, slow={"d": 1.5})
    assert repr(network) == "SimulatedNetwork(down=['a', 'b'], flaky={'c': 2}, slow={'d': 1.5})"
    many = py_host.SimulatedNetwork(down=[f"h{i}" for i in range(6)])
    assert repr(many) == "SimulatedNetwork(down=<6 hosts>)"
    assert repr(py_host.SimulatedNetwork()) == "SimulatedNetwork()"
    commands = py_host.CommandExecutor({"reboot": ["true"], "ping": ["true"]}, max_workers=4)
    assert repr(commands) == "CommandExecutor(actions=['ping', 'reboot'], max_workers=4)"
    threads = py_host.ConcurrentExecutor(ping, max_workers=2)
    assert repr(threads) == (
        "ConcurrentExecutor(ping, max_workers=2, abandoned attempts still running: 0)"
    )
    tasks = py_host.AsyncConcurrentExecutor(ping_async, max_tasks=5)
    assert repr(tasks) == "AsyncConcurrentExecutor(ping_async, max_tasks=5)"
