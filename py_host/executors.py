"""Executors: what the host grants the module to run actions on hosts.

The module never runs anything itself. For each round of a procedure it
asks py_host to run one action on a batch of hosts, and returns; py_host
runs the round with the executor granted at load time, while no WebAssembly
runs, and hands one :class:`Outcome` per host back in the next call. Three
kinds come built in:

- any callable ``(host, action, timeout) -> Outcome | bool``, run for the
  hosts of a round concurrently, each attempt bounded by the timeout;
- :class:`SimulatedNetwork`, hosts marked down, flaky or slow, for demos and
  tests;
- :class:`CommandExecutor`, which maps each permitted action to an argv
  template and runs it with :mod:`subprocess`; any other action is refused.

An executor runs while the procedure holds its instance, so it must not call
back into the module it serves: from the same thread that raises
:class:`~py_host.ReentrancyError`, and from another thread the call waits
for an instance, which may be this one.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, runtime_checkable

from .errors import ConfigError

Status = Literal["ok", "failed", "timeout", "refused"]


@dataclass(frozen=True)
class Outcome:
    """How one attempt on one host ended.

    ``failed`` and ``timeout`` are retried while the host has retries left;
    ``refused`` means retrying cannot help, so the host is not tried again.
    """

    status: Status
    reason: str = ""

    @classmethod
    def ok(cls) -> Outcome:
        """The attempt succeeded."""
        # One object for every success: py_host checks a round answered all
        # alike once (and an Outcome cannot change).
        return _OK if cls is Outcome else cls("ok")

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        """The attempt failed; worth another try."""
        return cls("failed", reason)

    @classmethod
    def timed_out(cls, timeout: float) -> Outcome:
        """The attempt ran past its timeout."""
        return cls("timeout", f"timed out after {timeout:g} s")

    @classmethod
    def refused(cls, reason: str) -> Outcome:
        """The executor will not run this; retrying cannot help."""
        return cls("refused", reason)


_OK = Outcome("ok")


@dataclass(frozen=True)
class Round:
    """The attempts one round asks for: ``action`` on each of ``hosts``."""

    action: str
    timeout: int
    """Seconds each attempt may take."""
    attempt: int
    """1 for the first attempt, up to ``1 + retries``."""
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Progress:
    """Where a procedure stands after a round: what a progress callback gets
    (``start_procedure(..., progress=callback)``), for a progress bar over
    ``hosts`` advanced to ``hosts_done``."""

    job_id: int
    rounds: int
    """Rounds run so far."""
    hosts: int
    """Hosts in the input."""
    hosts_done: int
    """Hosts with no attempt to come: they succeeded, or failed for good."""
    hosts_failed: int
    """Of those, the hosts that failed for good."""


@runtime_checkable
class Executor(Protocol):
    """Runs a round: returns one outcome per host, in the round's order."""

    def run_round(self, round: Round) -> Sequence[Outcome]: ...


class AsyncExecutor(Protocol):
    """Runs a round on the event loop (for :func:`py_host.load_async`):
    returns one outcome per host, in the round's order."""

    async def run_round(self, round: Round) -> Sequence[Outcome]: ...


HostAction = Callable[[str, str, int], "Outcome | bool"]
"""A callable ``(host, action, timeout) -> Outcome | bool`` run once per attempt."""


class ConcurrentExecutor:
    """Runs a :data:`HostAction` for the hosts of a round in threads, each
    attempt bounded by the round's timeout from the moment it starts, and at
    most ``max_workers`` attempts at a time.

    An attempt past its timeout is reported as timed out and abandoned: a
    Python thread cannot be killed, so it runs on in the background, no
    longer counted against ``max_workers`` and its result ignored. While
    ``max_workers`` abandoned attempts are still running, from this round or
    an earlier one, attempts not yet started fail at once rather than pile
    up more threads: however many hosts a round has, its attempts running
    and abandoned stay fewer than ``2 * max_workers`` threads. An exception,
    or a return value that is neither an :class:`Outcome` nor a bool, is a
    failure with the reason.
    """

    def __init__(self, action: HostAction, *, max_workers: int = 32) -> None:
        _check_host_action(action, "action")
        self._action = action
        self._max_workers = _check_count(max_workers, "max_workers")
        self._abandoned: list[threading.Thread] = []
        self._abandoned_lock = threading.Lock()
        # Seconds an attempt may run past its timeout before it is abandoned.
        self._grace = 0.0

    def __repr__(self) -> str:
        with self._abandoned_lock:
            abandoned = sum(thread.is_alive() for thread in self._abandoned)
        return (
            f"ConcurrentExecutor({_name(self._action)}, max_workers={self._max_workers}, "
            f"abandoned attempts still running: {abandoned})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as how it was made: its lock and abandoned threads are this
        # process's alone.
        return (partial(ConcurrentExecutor, max_workers=self._max_workers), (self._action,))

    def run_round(self, round: Round) -> list[Outcome]:
        """Run ``round.action`` on each host of ``round``; one outcome per host."""
        count = len(round.hosts)
        outcomes: dict[int, Outcome] = {}
        finished: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
        running: dict[int, tuple[float, threading.Thread]] = {}
        started = 0

        def attempt(index: int, host: str) -> None:
            finished.put((index, self._attempt(host, round)))

        while len(outcomes) < count:
            if started < count and len(running) < self._max_workers:
                # Checked before every start, not once a round: attempts that
                # hang in this round count as soon as they are abandoned.
                stuck = self._still_abandoned()
                if stuck >= self._max_workers:
                    reason = f"{stuck} earlier attempts are still running past their timeout"
                    outcomes.update(dict.fromkeys(range(started, count), Outcome.failed(reason)))
                    started = count
                for index in range(started, min(count, started + self._max_workers - len(running))):
                    thread = threading.Thread(
                        target=attempt,
                        args=(index, round.hosts[index]),
                        daemon=True,
                        name=f"py_host {round.hosts[index]}",
                    )
                    running[index] = (time.monotonic() + round.timeout + self._grace, thread)
                    thread.start()
                    started = index + 1
            if not running:
                continue
            try:
                wait = max(
                    0.0, min(deadline for deadline, _ in running.values()) - time.monotonic()
                )
                index, outcome = finished.get(timeout=wait)
                if running.pop(index, None) is not None:
                    outcomes[index] = outcome
            except queue.Empty:
                now = time.monotonic()
                for index in [i for i, (deadline, _) in running.items() if deadline <= now]:
                    with self._abandoned_lock:
                        self._abandoned.append(running.pop(index)[1])
                    outcomes[index] = Outcome.timed_out(round.timeout)
        return [outcomes[index] for index in range(count)]

    def _still_abandoned(self) -> int:
        with self._abandoned_lock:
            self._abandoned = [thread for thread in self._abandoned if thread.is_alive()]
            return len(self._abandoned)

    def _attempt(self, host: str, round: Round) -> Outcome:
        try:
            result = self._action(host, round.action, round.timeout)
        except Exception as error:
            return raised(error)
        return outcome_of(result)


class SimulatedNetwork:
    """A network that exists only in memory, for demos and tests.

    Hosts in ``down`` fail every attempt; a host in ``flaky`` fails its first
    N attempts and then succeeds; a host in ``slow`` takes that many
    (simulated) seconds and times out when that is longer than the round's
    timeout. Every other host succeeds at once. Host names ignore case.
    """

    def __init__(
        self,
        *,
        down: Iterable[str] = (),
        flaky: Mapping[str, int] | None = None,
        slow: Mapping[str, float] | None = None,
    ) -> None:
        self.down = frozenset(host.lower() for host in down)
        self.flaky = {host.lower(): failures for host, failures in (flaky or {}).items()}
        self.slow = {host.lower(): seconds for host, seconds in (slow or {}).items()}

    def __repr__(self) -> str:
        parts = [
            f"{name}={_few(hosts)}"
            for name, hosts in (("down", self.down), ("flaky", self.flaky), ("slow", self.slow))
            if hosts
        ]
        return f"SimulatedNetwork({', '.join(parts)})"

    def run_round(self, round: Round) -> list[Outcome]:
        return [self._attempt(host.lower(), round) for host in round.hosts]

    def _attempt(self, host: str, round: Round) -> Outcome:
        if host in self.down:
            return Outcome.failed("host is down")
        if round.attempt <= self.flaky.get(host, 0):
            return Outcome.failed(f"host is flaky: attempt {round.attempt} dropped")
        if self.slow.get(host, 0.0) > round.timeout:
            return Outcome.timed_out(round.timeout)
        return Outcome.ok()


class CommandExecutor:
    """Runs each permitted action as a command, once per host and attempt.

    ``commands`` maps an action name to an argv template; ``{host}``,
    ``{action}`` and ``{timeout}`` in its items are replaced. No shell is
    involved, and the module has already refused any host name that is not
    an RFC 1123 name. Exit status 0 is success; a failure's reason is the
    exit status and the last line of standard error, at most 1 KiB of it
    (marked ``(cut)`` when longer). Standard output is discarded. Each
    command runs in a process group of its own, and at the round's timeout
    the whole group is killed, with any children the command started; this
    needs a POSIX system. An action not in ``commands`` is refused for every host
    without running anything: the module can only do what the host grants.
    """

    def __init__(self, commands: Mapping[str, Sequence[str]], *, max_workers: int = 32) -> None:
        if not isinstance(commands, Mapping):
            raise ConfigError(
                f"commands must be a mapping of action to argv list, not {type(commands).__name__}"
            )
        for action, argv in commands.items():
            if not isinstance(action, str) or not action:
                raise ConfigError(f"commands: an action must be a non-empty str, not {action!r}")
            if (
                isinstance(argv, (str, bytes))
                or not isinstance(argv, Sequence)
                or not argv
                or not all(isinstance(item, str) for item in argv)
            ):
                raise ConfigError(
                    f"commands: the command for {action!r} must be a non-empty argv list "
                    f"of str, not {argv!r}"
                )
        self.commands = {action: tuple(argv) for action, argv in commands.items()}
        self._max_workers = max_workers
        self._runner = ConcurrentExecutor(self._run, max_workers=max_workers)
        # A command ends at the timeout by itself, its group killed: the grace
        # lets it report so, and a round returns only once its groups are gone.
        self._runner._grace = _KILL_GRACE

    def __repr__(self) -> str:
        return (
            f"CommandExecutor(actions={sorted(self.commands)!r}, max_workers={self._max_workers})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as how it was made, as ConcurrentExecutor is.
        return (partial(CommandExecutor, max_workers=self._max_workers), (self.commands,))

    def run_round(self, round: Round) -> list[Outcome]:
        """Run the command for ``round.action`` on each host of ``round``."""
        if round.action not in self.commands:
            permitted = ", ".join(sorted(self.commands)) or "none"
            refusal = Outcome.refused(
                f"action {round.action!r} is not permitted (permitted: {permitted})"
            )
            return [refusal] * len(round.hosts)
        return self._runner.run_round(round)

    def argv(self, host: str, action: str, timeout: int) -> list[str]:
        """The command line for one attempt."""
        values = {"{host}": host, "{action}": action, "{timeout}": str(timeout)}
        argv = []
        for template in self.commands[action]:
            item = template
            for placeholder, value in values.items():
                item = item.replace(placeholder, value)
            argv.append(item)
        return argv

    def _run(self, host: str, action: str, timeout: int) -> Outcome:
        argv = self.argv(host, action, timeout)
        deadline = time.monotonic() + timeout
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            return Outcome.failed(f"cannot run {argv[0]!r}: {error.strerror or error}")
        with process:
            assert process.stderr is not None
            last_line = _last_line(process, process.stderr.fileno(), deadline)
            try:
                status = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                last_line = None
            if last_line is None:
                _kill_group(process)
                return Outcome.timed_out(timeout)
        if status == 0:
            return Outcome.ok()
        return Outcome.failed(f"exit status {status}{f': {last_line}' if last_line else ''}")


_KILL_GRACE = 5.0
REASON_BYTES = 1024
"""The most bytes of a command's standard error that make its reason."""
_CHUNK = 64 * 1024
_EXITED_POLL = 0.05
"""How often to look whether a command has exited while its standard error
stays open, held by a child it left running."""


class _LastLineOf:
    """The last non-blank line of a stream fed in chunks, keeping at most
    :data:`REASON_BYTES` and a little more of any line."""

    _KEEP = REASON_BYTES + 4  # enough to find a cut's UTF-8 boundary

    def __init__(self) -> None:
        self.current = bytearray()
        self.current_cut = False
        self.last = b""
        self.last_cut = False

    def feed(self, chunk: bytes) -> None:
        for number, piece in enumerate(chunk.split(b"\n")):
            if number:
                self.end_line()
            room = self._KEEP - len(self.current)
            self.current += piece[:room]
            self.current_cut |= len(piece) > room

    def end_line(self) -> None:
        if self.current.strip() or self.current_cut:
            self.last, self.last_cut = bytes(self.current), self.current_cut
        self.current.clear()
        self.current_cut = False

    def text(self) -> str:
        self.end_line()
        data = self.last.strip()
        cut = self.last_cut or len(data) > REASON_BYTES
        if cut:
            end = REASON_BYTES
            # Never keep part of a character: back off to the start of the
            # one the limit falls in (at most 3 continuation bytes).
            while end > REASON_BYTES - 3 and end < len(data) and data[end] & 0xC0 == 0x80:
                end -= 1
            data = data[:end]
        lines = data.decode("utf-8", "replace").strip().splitlines()
        text = lines[-1] if lines else ""
        return f"{text}… (cut)" if cut else text


def _last_line(process: subprocess.Popen[bytes], descriptor: int, deadline: float) -> str | None:
    """The last line ``process`` writes to ``descriptor`` before it exits, or
    ``None`` at ``deadline``; never more than a bounded part of it in memory."""
    last = _LastLineOf()
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(min(remaining, _EXITED_POLL)):
                chunk = os.read(descriptor, _CHUNK)
                if not chunk:
                    return last.text()
                last.feed(chunk)
            elif process.poll() is not None:
                return last.text()
    return None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The group outlives its leader while a child of the command is in it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def outcome_of(result: object) -> Outcome:
    """The outcome of one attempt by a :data:`HostAction` that returned ``result``."""
    if isinstance(result, Outcome):
        return result
    if isinstance(result, bool):
        return Outcome.ok() if result else Outcome.failed("the executor reported failure")
    return Outcome.failed(
        f"the executor returned {type(result).__name__}, expected Outcome or bool"
    )


MAX_SHOWN = 5
"""The most hosts a repr names; more are counted."""


def _few(hosts: Collection[str] | Mapping[str, object]) -> str:
    """``hosts`` for a repr: written out when few, else how many."""
    if len(hosts) > MAX_SHOWN:
        return f"<{len(hosts)} hosts>"
    if isinstance(hosts, Mapping):
        return repr(dict(sorted(hosts.items())))
    return repr(sorted(hosts))


def _name(action: object) -> str:
    """A host action for a repr: its qualified name, else its repr."""
    return getattr(action, "__qualname__", None) or repr(action)


def raised(error: Exception) -> Outcome:
    """The outcome of one attempt that raised ``error``."""
    return Outcome.failed(f"the executor raised {type(error).__name__}: {error}")


def as_executor(granted: Executor | HostAction) -> Executor:
    """The executor for what was passed to ``load(executor=...)``."""
    if isinstance(granted, type):
        raise ConfigError(
            f"executor must be an Executor or a callable (host, action, timeout), "
            f"not the class {granted.__name__}: pass an instance"
        )
    if _is_async(granted):
        raise ConfigError(
            f"executor: {granted!r} is async; load the module with py_host.load_async "
            "to run it on an event loop"
        )
    if isinstance(granted, Executor):
        if not callable(granted.run_round):
            raise ConfigError(
                f"executor: the run_round of {type(granted).__name__} is not callable"
            )
        return granted
    if not callable(granted):
        raise ConfigError(
            f"executor must be an Executor or a callable (host, action, timeout), "
            f"not {type(granted).__name__}"
        )
    _check_host_action(granted, "executor")
    return ConcurrentExecutor(granted)


def _is_async(granted: object) -> bool:
    """Whether ``granted`` is an async executor or an async :data:`HostAction`."""
    run_round = getattr(granted, "run_round", None)
    return is_coroutine_function(run_round) or (
        run_round is None and is_coroutine_function(granted)
    )


def is_coroutine_function(function: object) -> bool:
    """Whether calling ``function`` makes a coroutine: an ``async def``, or
    an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004
    )


def _check_host_action(action: object, name: str) -> None:
    if not callable(action):
        raise ConfigError(
            f"{name} must be a callable (host, action, timeout), not {type(action).__name__}"
        )
    try:
        inspect.signature(action).bind("host", "action", 1)
    except TypeError:
        raise ConfigError(
            f"{name} must accept three arguments (host, action, timeout): {action!r} does not"
        ) from None
    except ValueError:  # no signature to inspect, as for some builtins
        pass


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
    return value
