"""Many threads, one module: calls run in parallel on a pool of instances."""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref
from collections.abc import Sequence

import pytest
from conftest import run_python, tutorial_input

import py_host
from py_host import Outcome, Round
from py_host._pool import Lease


class Gate:
    """An executor whose rounds wait until the gate opens."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def run_round(self, round: Round) -> Sequence[Outcome]:
        self.entered.set()
        assert self.open.wait(30)
        return [Outcome.ok()] * len(round.hosts)


def start(target: object) -> threading.Thread:
    thread = threading.Thread(target=target)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_second_thread_runs_while_the_first_is_busy(capsys: pytest.CaptureFixture[str]) -> None:
    gate = Gate()
    outputs: list[py_host.ProcedureOutput] = []
    second_done = threading.Event()
    with py_host.load(executor=gate, max_instances=2) as rust:
        first = start(lambda: outputs.append(rust.start_procedure(tutorial_input())))
        try:
            assert gate.entered.wait(30)
            second = start(lambda: (rust.print_int(1), second_done.set()))
            # The gate stays shut until the second call is done, so the first call is
            # still inside its round: finishing now means the calls ran side by side.
            assert second_done.wait(30), "the second call waited for the busy instance"
            assert first.is_alive()
        finally:
            gate.open.set()
        first.join()
        second.join()
    assert [output.result for output in outputs] == ["success"]
    assert capsys.readouterr().out == "Python gave us number 1\n"


def test_with_one_instance_calls_take_turns() -> None:
    gate = Gate()
    finished: list[str] = []
    with py_host.load(executor=gate, max_instances=1) as rust:
        first = start(lambda: (rust.start_procedure(tutorial_input()), finished.append("first")))
        assert gate.entered.wait(30)
        second = start(lambda: (rust.print_int(1), finished.append("second")))
        second.join(0.5)
        assert finished == [], "the second call waits for the only instance"
        gate.open.set()
        first.join()
        second.join()
    assert finished == ["first", "second"]


def test_an_executor_thread_may_call_the_module_on_another_instance() -> None:
    modules: list[py_host.RustModule] = []

    def calls_back(host: str, action: str, timeout: int) -> bool:
        modules[0].print_int(7)
        return True

    with py_host.load(executor=calls_back, max_instances=2) as rust:
        modules.append(rust)
        assert rust.start_procedure(tutorial_input(retries=0)).result == "success"


def test_reply_buffers_belong_to_their_instance() -> None:
    gate = Gate()
    gate.open.set()
    with py_host.load(executor=gate, max_instances=3) as rust:
        replies: list[py_host.ReplyBuffer] = []
        lock = threading.Lock()

        def take() -> None:
            reply = rust.start_procedure_buffer(
                '{"timeout":1,"retries":0,"host_list":["a"],"action":"x","job_id":1}'
            )
            with lock:
                replies.append(reply)

        threads = [start(take) for _ in range(6)]
        for thread in threads:
            thread.join()
        for reply in replies:
            assert b'"job_id":1' in reply.read()
            reply.free()
        assert rust.live_allocations() == 0


def test_many_threads_share_one_module() -> None:
    errors: list[BaseException] = []
    network = py_host.SimulatedNetwork(down={"server1"})
    with py_host.load(executor=network, max_instances=4) as rust:

        def work(job_id: int) -> None:
            try:
                for _ in range(100):
                    output = rust.start_procedure(tutorial_input(job_id=job_id))
                    assert (output.job_id, output.failed_hosts) == (job_id, ["server1"])
            except BaseException as error:
                errors.append(error)

        threads = [start(lambda i=i: work(i)) for i in range(8)]
        for thread in threads:
            thread.join()
        assert errors == []
        assert rust.live_allocations() == 0
        assert len(rust._pool.live()) <= 4


def test_an_ended_lease_frees_its_place_but_never_grows_the_pool() -> None:
    # A lease ends before its instance comes back (docs in _pool.py), so
    # another caller may make an instance in its place meanwhile: the one
    # coming back must then be closed, not kept beyond the pool's size.
    with py_host.load(max_instances=1) as rust:
        pool = rust._pool
        first = Lease()
        returning = pool.acquire(first)
        pool.end_lease(first.ref)
        second = Lease()
        made = pool.acquire(second)
        assert made is not returning
        pool.release(first)
        pool.release(second)
        assert pool.live() == [made]
        rust.print_int(1)


@pytest.mark.parametrize("size", [0, -1, 1.5, "2", True])
def test_a_pool_needs_room_for_one(size: object) -> None:
    with pytest.raises(py_host.ConfigError, match="max_instances must be an int of at least 1"):
        py_host.load(max_instances=size)  # type: ignore[arg-type]


def test_a_module_dropped_without_close_is_freed() -> None:
    rust = py_host.load(executor=py_host.SimulatedNetwork())
    rust.start_procedure(tutorial_input())
    stores = [weakref.ref(instance.store) for instance in rust._pool.live()]
    del rust
    gc.collect()
    assert [store() for store in stores] == [None] * len(stores)


def test_totals_skip_an_instance_another_thread_discards(faulty: py_host.RustModule) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def trap_repeatedly() -> None:
        while not stop.is_set():
            with contextlib.suppress(py_host.ModuleTrap):
                faulty.print_string("fault:panic")

    trapper = start(trap_repeatedly)
    try:
        for _ in range(300):
            try:
                assert faulty.memory_size >= 0
                faulty.live_allocations()
            except BaseException as error:
                errors.append(error)
    finally:
        stop.set()
        trapper.join()
    assert errors == []


def test_a_forked_child_gets_instances_its_parent_had_lent() -> None:
    done = run_python(
        """
        import os, threading, py_host
        class Gate:
            entered, open = threading.Event(), threading.Event()
            def run_round(self, round):
                self.entered.set(); self.open.wait(30)
                return [py_host.Outcome.ok()] * len(round.hosts)
        gate = Gate()
        rust = py_host.load(executor=gate, max_instances=1)
        worker = threading.Thread(target=lambda: rust.start_procedure(dict(timeout=1, retries=0, action="a", host_list=["h"], job_id=1)))
        worker.start(); gate.entered.wait(30)
        child = os.fork()
        if child == 0:
            rust.print_int(42)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        gate.open.set(); worker.join()
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert done.stdout.splitlines()[-1] == "0", done.stdout + done.stderr
