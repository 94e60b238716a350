"""Executors that run a round on the caller's event loop, for
:func:`py_host.load_async`.

An async executor is anything with ``async def run_round(round)`` returning
one :class:`~py_host.Outcome` per host (:class:`~py_host.AsyncExecutor`), or
an ``async def`` :data:`AsyncHostAction` ``(host, action, timeout)``, which
:class:`AsyncConcurrentExecutor` runs for the hosts of a round as tasks.
A sync executor works with ``load_async`` too: its rounds run in a thread.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from .errors import ConfigError
from .executors import (
    AsyncExecutor,
    Executor,
    HostAction,
    Outcome,
    Round,
    _check_count,
    _check_host_action,
    _name,
    as_executor,
    is_coroutine_function,
    outcome_of,
    raised,
)

AsyncHostAction = Callable[[str, str, int], Awaitable["Outcome | bool"]]
"""An ``async def (host, action, timeout) -> Outcome | bool`` run once per attempt."""


class AsyncConcurrentExecutor:
    """Runs an :data:`AsyncHostAction` for the hosts of a round as tasks on
    the event loop, at most ``max_tasks`` attempts at a time, each cancelled
    at the round's timeout (unlike a thread, a task can be stopped) and
    reported as timed out. An exception, or a return value that is neither
    an :class:`~py_host.Outcome` nor a bool, is a failure with the reason.
    A cancelled round cancels its attempts.
    """

    def __init__(self, action: AsyncHostAction, *, max_tasks: int = 64) -> None:
        _check_host_action(action, "action")
        if not is_coroutine_function(action):
            raise ConfigError(f"action must be an async def (host, action, timeout): {action!r}")
        self._action = action
        self._max_tasks = _check_count(max_tasks, "max_tasks")

    def __repr__(self) -> str:
        return f"AsyncConcurrentExecutor({_name(self._action)}, max_tasks={self._max_tasks})"

    async def run_round(self, round: Round) -> list[Outcome]:
        """Run ``round.action`` on each host of ``round``; one outcome per host."""
        hosts = round.hosts
        outcomes: list[Outcome] = [Outcome.ok()] * len(hosts)
        to_start = iter(range(len(hosts)))

        async def attempts() -> None:
            # Each worker takes the next host not yet started: at most
            # max_tasks tasks, however many hosts the round has.
            for index in to_start:
                outcomes[index] = await self._attempt(hosts[index], round)

        workers = [
            asyncio.ensure_future(attempts()) for _ in range(min(self._max_tasks, len(hosts)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
        return outcomes

    async def _attempt(self, host: str, round: Round) -> Outcome:
        try:
            result = await _within(self._action(host, round.action, round.timeout), round.timeout)
        except _TimedOut:
            return Outcome.timed_out(round.timeout)
        except Exception as error:
            return raised(error)
        return outcome_of(result)


class _TimedOut(Exception):
    """An attempt ran past its round's timeout."""


if sys.version_info >= (3, 11):

    async def _within(attempt: Awaitable[object], seconds: float) -> object:
        try:
            async with asyncio.timeout(seconds) as scope:
                return await attempt
        except TimeoutError:
            if scope.expired():
                raise _TimedOut from None
            raise

else:  # pragma: no cover - Python 3.10

    async def _within(attempt: Awaitable[object], seconds: float) -> object:
        try:
            return await asyncio.wait_for(attempt, seconds)
        except asyncio.TimeoutError:
            raise _TimedOut from None


def as_async_executor(
    granted: AsyncExecutor | AsyncHostAction | Executor | HostAction,
) -> AsyncExecutor | Executor:
    """The executor for what was passed to ``load_async(executor=...)``: an
    async one as it is, or wrapped in an :class:`AsyncConcurrentExecutor`;
    a sync one as :func:`~py_host.load` takes it (its rounds run in a
    thread)."""
    run_round = getattr(granted, "run_round", None)
    if not isinstance(granted, type) and is_coroutine_function(run_round):
        return granted  # type: ignore[return-value]
    if run_round is None and is_coroutine_function(granted):
        return AsyncConcurrentExecutor(granted)  # type: ignore[arg-type]
    return as_executor(granted)  # type: ignore[arg-type]


def is_async(executor: AsyncExecutor | Executor) -> bool:
    """Whether ``executor`` runs its rounds on the event loop."""
    return is_coroutine_function(executor.run_round)
