"""A pool of instances of one module, so threads can call it at once.

An instance (a Store) must never be used by two threads at a time, but
wasmtime releases the GIL while WebAssembly runs, so threads on separate
instances run in parallel. Each call takes an idle instance, or makes one
while the pool is below its size, or waits for one to come back.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

from ._instance import Instance
from .errors import BufferFreed, ClosedError


class InstancePool:
    """At most ``size`` instances made by ``make``, each lent to one caller
    at a time."""

    def __init__(self, make: Callable[[], Instance], size: int) -> None:
        if size < 1:
            raise ValueError("a pool needs room for at least one instance")
        self._make = make
        self._size = size
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        first = make()
        self._idle: list[Instance] = [first]
        self._live: set[Instance] = {first}
        self._count = 1
        """Instances live or being made."""
        self._waiting = 0
        """Callers waiting for an instance to come back."""
        self._closed = False
        _POOLS.add(self)

    def acquire(self, wanted: Instance | None = None) -> Instance:
        """An idle instance (``wanted``, if given, once it is idle)."""
        with self._lock:
            while True:
                if self._closed:
                    raise ClosedError("the module was closed")
                if wanted is not None:
                    if wanted not in self._live:
                        raise BufferFreed("the instance that held this buffer was discarded")
                    if wanted in self._idle:
                        self._idle.remove(wanted)
                        return wanted
                elif self._idle:
                    return self._idle.pop()
                elif self._count < self._size:
                    self._count += 1
                    break
                self._waiting += 1
                try:
                    self._returned.wait()
                finally:
                    self._waiting -= 1
        try:
            instance = self._make()
        except BaseException:
            with self._lock:
                self._count -= 1
                self._wake_waiting()
            raise
        with self._lock:
            self._live.add(instance)
        return instance

    def release(self, instance: Instance, *, discard: bool = False) -> None:
        """Give ``instance`` back; ``discard`` it (after a trap, say) instead."""
        with self._lock:
            keep = not discard and not self._closed
            if keep:
                self._idle.append(instance)
            else:
                self._live.discard(instance)
                self._count -= 1
            self._wake_waiting()
        if not keep:
            instance.close()

    def _wake_waiting(self) -> None:
        # Callers wait for a particular instance or any: wake them all to look.
        if self._waiting:
            self._returned.notify_all()

    def _after_fork(self) -> None:
        # The threads that had instances lent are gone in the child: forget
        # those instances rather than wait for them forever.
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._waiting = 0
        self._live = set(self._idle)
        self._count = len(self._idle)

    def live(self) -> list[Instance]:
        """The instances now alive, idle or lent."""
        with self._lock:
            return list(self._live)

    def close(self) -> None:
        """Close the idle instances now, and lent ones when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for instance in idle:
                self._live.discard(instance)
                self._count -= 1
            self._wake_waiting()
        for instance in idle:
            instance.close()


_POOLS: weakref.WeakSet[InstancePool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
