"""Nothing leaks, and the tutorial's double free is refused, not fatal."""

from __future__ import annotations

import gc
import json
import threading

import pytest
from conftest import tutorial_input

import py_host

TUTORIAL_JSON = json.dumps(tutorial_input()).encode()


def test_the_leak_loop_keeps_memory_flat() -> None:
    network = py_host.SimulatedNetwork(down={"server1"})
    with py_host.load(executor=network) as rust:
        procedure = py_host.ProcedureInput(**tutorial_input())
        rust.start_procedure(procedure)
        pages = rust.memory_pages
        for _ in range(3_000):
            rust.start_procedure(procedure)
        assert rust.memory_pages == pages
        assert rust.live_allocations() == 0


def test_errors_leave_nothing_behind(rust: py_host.RustModule) -> None:
    rust.start_procedure_json(TUTORIAL_JSON)
    pages = rust.memory_pages
    for _ in range(500):
        with pytest.raises(py_host.InvalidInput):
            rust.start_procedure_json(b'{"timeout": 0}')
        with pytest.raises(py_host.InvalidInput):
            rust.print_string(b"\xff")
        with pytest.raises(py_host.InvalidInput):
            rust.start_procedure(tutorial_input(host_list=["a", "a"]))
    assert rust.memory_pages == pages
    assert rust.live_allocations() == 0


def test_a_reply_buffer_is_read_then_freed(rust: py_host.RustModule) -> None:
    reply = rust.start_procedure_buffer(TUTORIAL_JSON)
    assert rust.live_allocations() == 1
    assert json.loads(reply.read())["ok"]["job_id"] == 1
    reply.free()
    assert reply.freed
    assert rust.live_allocations() == 0


def test_the_tutorials_double_free_raises_and_the_module_keeps_working(
    rust: py_host.RustModule,
) -> None:
    # The tutorial: free_mem(ptr), then read and free the same pointer again,
    # "free(): double free detected in tcache 2 / Aborted".
    reply = rust.start_procedure_buffer(TUTORIAL_JSON)
    reply.free()
    with pytest.raises(py_host.BufferFreed):
        reply.read()
    with pytest.raises(py_host.BufferFreed):
        reply.free()
    assert rust.live_allocations() == 0
    assert rust.start_procedure(tutorial_input()).job_id == 1


def test_a_reply_buffer_frees_itself_as_a_context_manager(rust: py_host.RustModule) -> None:
    with rust.start_procedure_buffer(TUTORIAL_JSON) as reply:
        reply.read()
    assert reply.freed
    assert rust.live_allocations() == 0


def test_a_dropped_reply_buffer_is_freed_at_the_next_call(rust: py_host.RustModule) -> None:
    rust.start_procedure_buffer(TUTORIAL_JSON)
    gc.collect()
    rust.print_string("next call")
    assert rust.live_allocations() == 0


def free_racing(reply: py_host.ReplyBuffer, barrier: threading.Barrier, results: list[str]) -> None:
    barrier.wait()
    try:
        reply.free()
        results.append("freed")
    except py_host.BufferFreed:
        results.append("refused")


def test_threads_racing_to_free_one_buffer_free_it_once(rust: py_host.RustModule) -> None:
    for _ in range(100):
        reply = rust.start_procedure_buffer(TUTORIAL_JSON)
        barrier = threading.Barrier(3)
        results: list[str] = []
        threads = [
            threading.Thread(target=free_racing, args=(reply, barrier, results)) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["freed", "refused", "refused"]
    assert rust.live_allocations() == 0


def test_memory_that_grew_during_a_call_is_read_and_written(
    rust: py_host.RustModule, capsys: pytest.CaptureFixture[str]
) -> None:
    # Linear memory grows while a call runs, and its buffers may then lie
    # past what it had when the instance was made (docs/ABI.md): the text
    # below, and its printed copy, cannot fit in that.
    started_with = rust.memory_size
    text = "".join(chr(ord("a") + n % 26) for n in range(2 * started_with))
    rust.print_string(text)
    assert capsys.readouterr().out == text + "\n"
    assert rust.memory_size > 2 * started_with
    rust.print_string(text[::-1])
    assert capsys.readouterr().out == text[::-1] + "\n"
