"""A pool of instances of one module, so threads can call it at once.

An instance (a Store) must never be used by two threads at a time, but
wasmtime releases the GIL while WebAssembly runs, so threads on separate
instances run in parallel. Each call takes an idle instance, or makes one
while the pool is below its size, or waits for one to come back.

An exception can land at any bytecode (a signal handler's, or one set on the
thread from outside), so no count is kept that such an exception could leave
wrong. What is lent is known by its :class:`Lease`, held weakly. The
borrower makes the lease before it is lent anything and ends it first thing
when done, with a C call no exception can cut short, so a lease outlives its
use only when the borrower's frame is gone, and it dies with it; even an
exception the caller keeps, whose traceback holds the lease, leaves its
place free. An instance is never idle twice, so never lent to two callers.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable
from threading import get_ident
from typing import Literal, overload

from ._instance import Instance
from .errors import BufferFreed, ClosedError, ConfigError, ReentrancyError

_RECHECK_SECONDS = 0.05
"""How long a caller waits for an instance before it counts again what is
lent: a lease lost to an exception frees its place without telling anyone."""


class Lease:
    """One caller's use of one instance: made empty by the caller (in C, with
    no Python frame an exception could land in), filled by
    :meth:`InstancePool.acquire`, ended by :attr:`InstancePool.end_lease`
    and then :meth:`InstancePool.release`."""

    instance: Instance | None = None
    """The instance, once lent."""
    thread = 0
    """The borrower's thread (its ident), once lent."""
    ref: weakref.ref[Lease] | None = None
    """How the pool knows the lease without keeping it alive, once lent."""


class InstancePool:
    """At most ``size`` instances made by ``make``, each lent to one caller
    at a time."""

    def __init__(self, make: Callable[[], Instance], size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"max_instances must be an int of at least 1; got {size!r}")
        self._make = make
        self._size = size
        self._idle: list[Instance] = [make()]
        self._closed = False
        self._start_sharing()
        _POOLS.add(self)

    def _start_sharing(self) -> None:
        # Also in a forked child, where the threads that held leases are
        # gone but their frames, and so the leases, never die: forget them.
        self._lock = threading.Lock()
        self._leases: set[weakref.ref[Lease]] = set()
        self.end_lease = self._leases.discard
        """``end_lease(lease.ref)`` makes the pool forget a lease. A C call,
        with no Python frame in it where an exception from outside could
        land first: call it first thing in a ``finally``, and an exception
        kept by the caller (its traceback holds the lease) still leaves the
        place free."""
        self._returned: queue.SimpleQueue[None] = queue.SimpleQueue()
        """A token for each instance given back while callers wait: a C
        queue, so a waiter interrupted in ``get`` leaves nothing half done."""
        self._waiting = 0
        """Callers waiting for a token. An exception may leave it wrong: too
        high costs a spare token, too low a waiter's next recount."""

    @overload
    def acquire(
        self, lease: Lease, wanted: Instance | None = None, *, wait: Literal[True] = True
    ) -> Instance: ...

    @overload
    def acquire(
        self, lease: Lease, wanted: Instance | None = None, *, wait: bool
    ) -> Instance | None: ...

    def acquire(
        self, lease: Lease, wanted: Instance | None = None, *, wait: bool = True
    ) -> Instance | None:
        """Lend ``lease`` an idle instance (``wanted``, if given, once it is
        idle) and return it. Whatever happens, end the lease and
        :meth:`release` it after: the pool counts it from the start.

        Without ``wait`` (an async task's lease) return None rather than
        wait, and leave a call from inside a call to the caller to refuse:
        tasks share their thread, so the thread cannot tell."""
        lease.thread = get_ident() if wait else 0
        lease.ref = ref = weakref.ref(lease)
        while True:
            with self._lock:
                if self._closed:
                    raise ClosedError("the module was closed")
                if self._leases and wait:
                    self._refuse_reentry(lease.thread)
                if wanted is not None:
                    if wanted in self._idle:
                        self._leases.add(ref)
                        self._idle.remove(wanted)
                        lease.instance = wanted
                        return wanted
                    if wanted not in self._lent():
                        raise BufferFreed("the instance that held this buffer was discarded")
                elif self._idle:
                    self._leases.add(ref)
                    lease.instance = self._idle.pop()
                    return lease.instance
                elif len(self._alive()) < self._size:
                    self._leases.add(ref)
                    break
            if not wait:
                return None
            self._waiting += 1
            with contextlib.suppress(queue.Empty):
                self._returned.get(timeout=_RECHECK_SECONDS)
            self._waiting -= 1
        lease.instance = self._make()
        return lease.instance

    def release(self, lease: Lease, *, discard: bool = False) -> None:
        """Give back the lease's instance; ``discard`` it (after a trap, say) instead."""
        instance = lease.instance
        with self._lock:
            self._leases.discard(lease.ref)
            lease.instance = None
            keep = instance is not None and not discard and not self._closed
            # Once the lease ended, another caller may have made an instance
            # in its place: never keep more than the pool's size.
            if keep and self._leases and len(self._idle) + len(self._alive()) >= self._size:
                keep = False
            if keep:
                self._idle.append(instance)  # type: ignore[arg-type]
        if self._waiting > 0 and self._returned.qsize() < self._size:
            self._returned.put(None)
        if instance is not None and not keep:
            instance.close()

    def live(self) -> list[Instance]:
        """The instances now alive, idle or lent."""
        with self._lock:
            return self._idle + self._lent()

    @property
    def size(self) -> int:
        """The most instances the pool makes."""
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the idle instances now, and lent ones when they come back."""
        with self._lock:
            if self._leases:
                self._refuse_reentry(get_ident())
            self._closed = True
            idle, self._idle = self._idle, []
        for instance in idle:
            instance.close()

    def _refuse_reentry(self, thread: int) -> None:
        # An executor, or sys.stdout, calling the module from inside its own
        # call would wait for the very instance it is running on.
        if any(lease.thread == thread for lease in self._alive()):
            raise ReentrancyError(
                "the module was called from inside one of its own calls "
                "(from an executor, or from sys.stdout while its output was written)"
            )

    def _alive(self) -> list[Lease]:
        """The leases out; the dead are forgotten (rarely any, so only here)."""
        # A copy: leases end (a C call) outside the lock.
        refs = self._leases.copy()
        leases = [lease for ref in refs if (lease := ref()) is not None]
        if len(leases) < len(refs):
            self._leases.difference_update(ref for ref in refs if ref() is None)
        return leases

    def _lent(self) -> list[Instance]:
        if not self._leases:
            return []
        return [lease.instance for lease in self._alive() if lease.instance is not None]


_POOLS: weakref.WeakSet[InstancePool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._start_sharing()


os.register_at_fork(after_in_child=_after_fork_in_child)
