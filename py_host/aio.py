"""The module for asyncio: :func:`load_async` and :class:`AsyncRustModule`,
the async twin of :func:`py_host.load` and :class:`py_host.RustModule`.

A procedure's steps are short calls into the module; between two of them the
executor's round runs on the event loop (an async executor) or in a thread
(a sync one), and the caller's task can be cancelled there, or stopped by
``Limits.procedure_seconds``. The steps of a large procedure, which take a
millisecond or more, run in a thread so the loop is never held that long.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import weakref
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import wasmtime

from ._abi import Exports
from ._instance import Instance
from ._pool import InstancePool, Lease
from ._rounds import (
    ROUND_ROOM,
    Answered,
    Policy,
    ProcedureRun,
    ProgressCallback,
    cancel,
    policy_for_input,
    policy_for_json,
    run_round,
    run_round_async,
)
from ._transport import Context
from .async_executors import AsyncHostAction, as_async_executor, is_async
from .errors import BufferFreed, ModuleError, ReentrancyError
from .executors import AsyncExecutor, Executor, HostAction, Round
from .limits import DEFAULT_LIMITS, Limits
from .models import ProcedureInput, ProcedureOutput
from .module import (
    Buffer,
    as_input,
    compile_for,
    linked_once,
    pool_size,
    print_int_step,
    print_string_step,
    procedure_input,
)

T = TypeVar("T")

OFFLOAD_BYTES = 16 * 1024
"""The input size from which a procedure's steps run in a thread rather than
on the event loop. A first step with an executor cost about 9 µs per KiB of
input (0.9 ms for 10,000 hosts) and handing a step to a thread and back
20 µs to 0.1 ms, on a busy machine: from 16 KiB, about 1,500 hosts, a step
would hold the loop for about 0.15 ms."""

_RECHECK_SECONDS = 0.005
"""How often a task waiting for an instance that another event loop holds
looks again. Tasks of one loop wait on its semaphore instead."""

_IN_EXECUTOR: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "py_host_in_executor", default=frozenset()
)
"""The modules (by id) whose executor runs in this context: a task the
executor starts inherits it, so a call back into the module, which would
wait for the instance its own procedure holds, is refused."""


async def load_async(
    path: str | os.PathLike[str] | None = None,
    *,
    executor: AsyncExecutor | AsyncHostAction | Executor | HostAction | None = None,
    limits: Limits | None = None,
    cache: bool | str | os.PathLike[str] = True,
    max_instances: int | None = None,
) -> AsyncRustModule:
    """Load the module as :func:`py_host.load` does, in a thread (compiling
    takes a fraction of a second when the cache is cold), for use from
    asyncio.

    ``executor`` may be async: an object with ``async def run_round(round)``
    (an :class:`~py_host.AsyncExecutor`), or an ``async def (host, action,
    timeout)``, whose attempts run as tasks on the caller's loop, at most 64
    at a time (:class:`~py_host.AsyncConcurrentExecutor` sets another
    bound). A sync executor works too: its rounds run in a thread. The other
    arguments are :func:`py_host.load`'s; ``max_instances`` also bounds how
    many calls run at once, and the others wait their turn on the loop.
    """
    limits = limits if limits is not None else DEFAULT_LIMITS
    granted = as_async_executor(executor) if executor is not None else None
    return await asyncio.to_thread(_load, path, granted, limits, cache, max_instances)


def _load(
    path: str | os.PathLike[str] | None,
    executor: AsyncExecutor | Executor | None,
    limits: Limits,
    cache: bool | str | os.PathLike[str],
    max_instances: int | None,
) -> AsyncRustModule:
    module, _, _ = compile_for(path, limits, cache)
    return AsyncRustModule(module, executor, limits, pool_size(max_instances, executor is not None))


class AsyncRustModule:
    """The module, loaded for asyncio; made by :func:`load_async`.

    Its methods are coroutines, and each call runs on an instance of its own
    from a pool, as :class:`~py_host.RustModule`'s do. A call cancelled
    while it waits for the executor, or stopped by the procedure's time
    limit, leaves its instance clean: the module abandons the procedure, and
    an instance cancelled in the middle of a step is discarded once the
    step ends. Use it with ``async with``, or call :meth:`aclose`.
    """

    def __init__(
        self,
        module: wasmtime.Module,
        executor: AsyncExecutor | Executor | None,
        limits: Limits,
        max_instances: int,
    ) -> None:
        self._executor = executor
        self._executor_is_async = executor is not None and is_async(executor)
        linked = linked_once(module, limits)
        granted = executor is not None
        self._pool = InstancePool(lambda: Instance(linked, granted, limits), max_instances)
        self._size = max_instances
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        # At most one thread per instance: a step or a sync executor's round.
        self._threads = ThreadPoolExecutor(max_instances, thread_name_prefix="py_host")
        self.crate_version: str = self._each_idle(Exports.crate_version)[0]
        """The module's own version (its Rust crate's)."""

    async def print_string(self, text: str | Buffer) -> None:
        """Print ``text`` and a newline from Rust, as :meth:`RustModule.print_string` does."""
        step = print_string_step(text)
        await self._lend(lambda instance, steps: steps.call(instance, step))

    async def print_int(self, value: int) -> None:
        """Print ``Python gave us number <value>`` from Rust, as
        :meth:`RustModule.print_int` does."""
        step = print_int_step(value)
        await self._lend(lambda instance, steps: steps.call(instance, step))

    async def start_procedure(
        self,
        procedure: ProcedureInput | Mapping[str, Any],
        *,
        progress: ProgressCallback | None = None,
    ) -> ProcedureOutput:
        """Run a procedure and return what it did, as
        :meth:`RustModule.start_procedure` does. Cancelling the task stops it
        at its next step: no round starts after that."""
        model, data = procedure_input(procedure)
        policy = policy_for_input(model, data, self._executor is not None)
        return await self._lend(partial(self._procedure, data, policy, progress))

    async def start_procedure_json(
        self, data: str | Buffer, *, progress: ProgressCallback | None = None
    ) -> bytes:
        """Run a procedure from ProcedureInput JSON and return ProcedureOutput
        JSON, as :meth:`RustModule.start_procedure_json` does."""
        raw = as_input(data)
        policy = policy_for_json(raw, self._executor is not None)
        output = await self._lend(partial(self._procedure, raw, policy, progress))
        return output.model_dump_json().encode()

    async def live_allocations(self) -> int:
        """How many buffers the module's instances hold for the host, counted
        once no call of this loop runs: 0 between calls."""
        slots = self._slots_of_this_loop()
        for _ in range(self._size):
            await slots.acquire()
        try:
            return sum(self._each_idle(lambda exports, ctx: exports.live_allocations(ctx)))
        finally:
            for _ in range(self._size):
                slots.release()

    async def aclose(self) -> None:
        """Free the module's instances, and its threads once their work
        ends. Further calls raise :class:`~py_host.ClosedError`."""
        self._pool.close()
        await asyncio.to_thread(self._threads.shutdown)

    async def __aenter__(self) -> AsyncRustModule:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _procedure(
        self,
        data: bytes,
        policy: Policy,
        progress: ProgressCallback | None,
        instance: Instance,
        steps: _Steps,
    ) -> ProcedureOutput:
        """The procedure whose input is ``data``, as the sync driver
        (py_host._rounds.procedure) runs it, with awaits between its steps."""
        run = ProcedureRun(instance, policy, progress)
        offload = len(data) >= OFFLOAD_BYTES
        try:
            start = partial(Exports.start_procedure, data=data, room=ROUND_ROOM)
            reply = await steps.call(instance, start, offload=offload)
            while (round := run.next_round(reply)) is not None:
                answer = run.answer(round, await self._run_round(instance, round))
                resume = partial(Exports.resume_procedure, answer=answer)
                reply = await steps.call(instance, resume, offload=offload)
        except ModuleError:
            cancel(instance)
            raise
        return run.output(reply)

    async def _run_round(self, instance: Instance, round: Round) -> Answered:
        """What the executor answered for ``round``, within what is left of
        the procedure's time."""
        executor = self._executor
        assert executor is not None  # a policy admits a round only with one
        outcomes: Awaitable[Answered]
        if self._executor_is_async:
            outcomes = run_round_async(executor, round)  # type: ignore[arg-type]
        else:
            outcomes = asyncio.wrap_future(
                self._threads.submit(run_round, executor, round)  # type: ignore[arg-type]
            )
        token = _IN_EXECUTOR.set(_IN_EXECUTOR.get() | {id(self)})
        try:
            left = instance.run_time_left()
            if left is None:
                return await outcomes
            try:
                return await asyncio.wait_for(outcomes, max(left, 0))
            except asyncio.TimeoutError:
                raise instance.run_time_exceeded() from None
        finally:
            _IN_EXECUTOR.reset(token)

    async def _lend(self, work: Callable[[Instance, _Steps], Awaitable[T]]) -> T:
        """``work`` on an instance lent from the pool for one run, as
        :meth:`RustModule._lend` does. A task cancelled while the module
        waits for its executor leaves the instance, which then abandons the
        procedure; one cancelled during a step leaves it to be discarded
        when the step ends."""
        if id(self) in _IN_EXECUTOR.get():
            raise ReentrancyError("the module was called from inside its own executor")
        async with self._slots_of_this_loop():
            lease = Lease()
            steps = _Steps(self._threads)
            discard = True
            try:
                instance = await self._acquire(lease)
                instance.begin()
                result = await work(instance, steps)
                discard = False
            except (ModuleError, BufferFreed):
                discard = False
                raise
            except asyncio.CancelledError:
                if steps.running is None and lease.instance is not None:
                    discard = not _abandoned(lease.instance)
                raise
            finally:
                running = steps.running
                if running is None or running.done():
                    self._pool.end_lease(lease.ref)
                    self._pool.release(lease, discard=discard)
                else:
                    running.add_done_callback(partial(self._release_late, lease))
        return result

    def _release_late(self, lease: Lease, step: Future[Any]) -> None:
        # The step a cancelled task left running has ended, in its thread:
        # what state it left the instance in is unknown.
        self._pool.end_lease(lease.ref)
        self._pool.release(lease, discard=True)

    async def _acquire(self, lease: Lease) -> Instance:
        while (instance := self._pool.acquire(lease, wait=False)) is None:
            await asyncio.sleep(_RECHECK_SECONDS)
        return instance

    def _slots_of_this_loop(self) -> asyncio.Semaphore:
        """What the tasks of the running loop wait on for an instance."""
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self._size)
        return slots

    def _each_idle(self, run: Callable[[Exports, Context], T]) -> list[T]:
        """``run`` on every instance idle now."""
        results = []
        for instance in self._pool.live():
            lease = Lease()
            discard = True
            try:
                if self._pool.acquire(lease, instance, wait=False) is None:
                    continue
                instance.begin()
                results.append(instance.call(run))
                discard = False
            except BufferFreed:
                discard = False
            finally:
                self._pool.end_lease(lease.ref)
                self._pool.release(lease, discard=discard)
        return results


class _Steps:
    """Runs one call's steps on its instance: on the event loop, or in a
    thread for a large procedure, knowing the step a thread is running."""

    def __init__(self, threads: ThreadPoolExecutor) -> None:
        self._threads = threads
        self.running: Future[Any] | None = None
        """The step running in a thread, if any: a task cancelled meanwhile
        must leave the instance to it."""

    async def call(
        self, instance: Instance, step: Callable[[Exports, Context], T], *, offload: bool = False
    ) -> T:
        if not offload:
            return instance.call(step, prints=True)
        self.running = self._threads.submit(instance.call, step, prints=True)
        result: T = await asyncio.wrap_future(self.running)
        self.running = None
        return result


def _abandoned(instance: Instance) -> bool:
    """Whether the module abandoned the procedure in progress on ``instance``,
    which is then as good as new."""
    try:
        cancel(instance)
    except Exception:
        return False
    return True
