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

import itertools
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

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
        return cls("ok")

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


@dataclass(frozen=True)
class Round:
    """The attempts one round asks for: ``action`` on each of ``hosts``."""

    action: str
    timeout: int
    """Seconds each attempt may take."""
    attempt: int
    """1 for the first attempt, up to ``1 + retries``."""
    hosts: tuple[str, ...]


@runtime_checkable
class Executor(Protocol):
    """Runs a round: returns one outcome per host, in the round's order."""

    def run_round(self, round: Round) -> Sequence[Outcome]: ...


HostAction = Callable[[str, str, int], "Outcome | bool"]
"""A callable ``(host, action, timeout) -> Outcome | bool`` run once per attempt."""


class ConcurrentExecutor:
    """Runs a :data:`HostAction` for the hosts of a round in threads, each
    attempt bounded by the round's timeout from the moment it starts, and at
    most ``max_workers`` attempts at a time.

    An attempt past its timeout is reported as timed out and abandoned: a
    Python thread cannot be killed, so it runs on in the background, no
    longer counted against ``max_workers`` and its result ignored. While
    ``max_workers`` abandoned attempts are still running, new attempts fail
    at once rather than pile up more threads. An exception, or a return
    value that is neither an :class:`Outcome` nor a bool, is a failure with
    the reason.
    """

    def __init__(self, action: HostAction, *, max_workers: int = 32) -> None:
        if max_workers < 1:
            raise ConfigError("max_workers must be at least 1")
        self._action = action
        self._max_workers = max_workers
        self._abandoned: list[threading.Thread] = []
        self._abandoned_lock = threading.Lock()

    def run_round(self, round: Round) -> list[Outcome]:
        with self._abandoned_lock:
            self._abandoned = [thread for thread in self._abandoned if thread.is_alive()]
            stuck = len(self._abandoned)
        if stuck >= self._max_workers:
            reason = f"{stuck} earlier attempts are still running past their timeout"
            return [Outcome.failed(reason)] * len(round.hosts)
        outcomes: dict[int, Outcome] = {}
        finished: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
        running: dict[int, tuple[float, threading.Thread]] = {}
        waiting = iter(enumerate(round.hosts))

        def attempt(index: int, host: str) -> None:
            finished.put((index, self._attempt(host, round)))

        while len(outcomes) < len(round.hosts):
            for index, host in itertools.islice(waiting, self._max_workers - len(running)):
                thread = threading.Thread(
                    target=attempt, args=(index, host), daemon=True, name=f"py_host {host}"
                )
                running[index] = (time.monotonic() + round.timeout, thread)
                thread.start()
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
        return [outcomes[index] for index in range(len(round.hosts))]

    def _attempt(self, host: str, round: Round) -> Outcome:
        try:
            result = self._action(host, round.action, round.timeout)
        except Exception as error:
            return Outcome.failed(f"the executor raised {type(error).__name__}: {error}")
        if isinstance(result, Outcome):
            return result
        if isinstance(result, bool):
            return Outcome.ok() if result else Outcome.failed("the executor reported failure")
        return Outcome.failed(
            f"the executor returned {type(result).__name__}, expected Outcome or bool"
        )


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
    an RFC 1123 name. Exit status 0 is success; the process is killed at the
    round's timeout. An action not in ``commands`` is refused for every host
    without running anything: the module can only do what the host grants.
    """

    def __init__(self, commands: Mapping[str, Sequence[str]], *, max_workers: int = 32) -> None:
        for action, argv in commands.items():
            if not argv or isinstance(argv, str):
                raise ConfigError(f"the command for {action!r} must be a non-empty argv list")
        self.commands = {action: tuple(argv) for action, argv in commands.items()}
        self._runner = ConcurrentExecutor(self._run, max_workers=max_workers)

    def run_round(self, round: Round) -> list[Outcome]:
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
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return Outcome.timed_out(timeout)
        except OSError as error:
            return Outcome.failed(f"cannot run {argv[0]!r}: {error.strerror or error}")
        if done.returncode == 0:
            return Outcome.ok()
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last_line = f": {detail[-1]}" if detail else ""
        return Outcome.failed(f"exit status {done.returncode}{last_line}")


def as_executor(granted: Executor | HostAction) -> Executor:
    """The executor for what was passed to ``load(executor=...)``."""
    if isinstance(granted, Executor):
        return granted
    if callable(granted):
        return ConcurrentExecutor(granted)
    raise ConfigError(
        f"executor must be an Executor or a callable (host, action, timeout), "
        f"not {type(granted).__name__}"
    )
