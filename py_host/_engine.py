"""The wasmtime Engines py_host uses, the modules compiled with them, and
the clock that enforces call deadlines."""

from __future__ import annotations

import _thread
import contextlib
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from ._cache import ModuleCache, Source
from ._transport import epoch_incrementer
from .errors import LoadError
from .limits import DEFAULT_LIMITS, Limits

EPOCH_SECONDS = 0.01
"""How often the engines' epoch advances while a call runs: a deadline's
resolution."""
MAX_WASM_STACK = 256 * 1024
"""The native stack WebAssembly may use. wasmtime's default (512 KiB) can
overflow a Python thread started with a small ``threading.stack_size``
before wasmtime notices, and the process dies; 256 KiB leaves room."""
COMPILED_KEPT = 8
"""How many compiled modules a process keeps for reloading."""


@dataclass(frozen=True)
class Flavor:
    """What an engine compiles into the code, so what modules compiled for it
    can do: count fuel, and be interrupted by the epoch (for a deadline).
    Each costs some speed, so a module gets only what its limits use."""

    fuel: bool
    epochs: bool

    @classmethod
    def for_limits(cls, limits: Limits) -> Flavor:
        return cls(fuel=limits.max_fuel is not None, epochs=limits.deadline_seconds is not None)

    @property
    def name(self) -> str:
        return f"{'fuel' if self.fuel else 'nofuel'}-{'epochs' if self.epochs else 'noepochs'}"


def _engine(flavor: Flavor, *, parallel_compilation: bool = True) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.parallel_compilation = parallel_compilation
    # By default wasmtime turns traps into SIGSEGV/SIGILL and catches them in
    # its signal handlers. A handler installed after wasmtime's, like the one
    # pytest's faulthandler installs, sees those signals first and kills the
    # process on the first trap. Explicit checks instead keep a trap a
    # Python exception whatever else handles signals.
    config.signals_based_traps = False
    config.epoch_interruption = flavor.epochs
    config.consume_fuel = flavor.fuel
    config.max_wasm_stack = MAX_WASM_STACK
    # Memory reserves its whole range up front and grows in place, so its base
    # address never changes: py_host reads it once per instance.
    config.memory_may_move = False
    # One memory, as the ABI says: a module with more is refused at load,
    # rather than each memory getting the whole memory limit.
    config.wasm_multi_memory = False
    config.wasm_memory64 = False
    config.wasm_threads = False
    return wasmtime.Engine(config)


_engines: dict[Flavor, wasmtime.Engine] = {}
_advancers: dict[Flavor, Callable[[int], None]] = {}
"""How the epoch clock advances each engine's epoch."""
_compiled: OrderedDict[tuple[str, Flavor], wasmtime.Module] = OrderedDict()


class _Compiling:
    """What compiling needs in this process, made anew in a forked child."""

    def __init__(self) -> None:
        self.start(serially=False)
        # A lock another thread of the parent held at the fork stays held.
        os.register_at_fork(after_in_child=lambda: self.start(serially=True))

    def start(self, *, serially: bool) -> None:
        self.lock = threading.Lock()
        self.serially = serially
        """Whether to compile one function at a time: wasmtime compiles in
        parallel on rayon's thread pool, and a forked child has the pool, if
        anything in its parent compiled, but none of its threads, so a
        parallel compile there would wait for them for ever."""


_COMPILING = _Compiling()


def engine(flavor: Flavor) -> wasmtime.Engine:
    """The one engine of this flavor."""
    with _COMPILING.lock:
        if flavor not in _engines:
            _engines[flavor] = _engine(flavor)
            _advancers[flavor] = epoch_incrementer(_engines[flavor])
        return _engines[flavor]


# The default limits' engine, made at import rather than by the first load().
engine(Flavor.for_limits(DEFAULT_LIMITS))


def compile_module(
    wasm: bytes,
    source: Source,
    path: Path,
    *,
    flavor: Flavor,
    cache: ModuleCache | None,
    check: Callable[[wasmtime.Module], None],
) -> tuple[wasmtime.Module, str]:
    """The module for ``wasm``, read from ``source``, compiled for ``flavor``
    (whose name ``source.configuration`` is), and where it came from: this
    process's memory, else ``cache`` on disk, else compiled, passed through
    ``check`` (which raises to refuse it) and kept in both. So a kept module
    was checked."""
    module = kept_module(source.sha256, flavor)
    if module is not None:
        return module, "from this process's memory"
    cache_key = cache.key(source.sha256, source.configuration) if cache else ""
    module = cache.load(cache_key, engine(flavor), source=source) if cache else None
    where = "from the disk cache"
    if module is None:
        module = _compile(wasm, path, flavor)
        where = "compiled"
        check(module)
        if cache:
            cache.store(cache_key, module)
    keep_module(source.sha256, flavor, module)
    return module, where


def kept_module(sha256: str, flavor: Flavor) -> wasmtime.Module | None:
    """The module whose .wasm has SHA-256 ``sha256``, compiled for
    ``flavor``, if this process keeps it."""
    key = (sha256, flavor)
    with _COMPILING.lock:
        if key in _compiled:
            _compiled.move_to_end(key)
            return _compiled[key]
    return None


def keep_module(sha256: str, flavor: Flavor, module: wasmtime.Module) -> None:
    """Keep ``module`` (checked) for :func:`kept_module`, dropping the least lately
    used beyond :data:`COMPILED_KEPT`."""
    with _COMPILING.lock:
        _compiled[(sha256, flavor)] = module
        while len(_compiled) > COMPILED_KEPT:
            _compiled.popitem(last=False)


def _compile(wasm: bytes, path: Path, flavor: Flavor) -> wasmtime.Module:
    try:
        if _COMPILING.serially:
            # An engine of the same settings compiles it, and the result
            # moves over: the code is the same, only made on one thread.
            alone = wasmtime.Module(_engine(flavor, parallel_compilation=False), wasm)
            return wasmtime.Module.deserialize(engine(flavor), alone.serialize())
        return wasmtime.Module(engine(flavor), wasm)
    except wasmtime.WasmtimeError as error:
        # wasmtime's message is a summary, then "Caused by:" and the detail.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        summary = f"{lines[0]}: {lines[-1]}" if len(lines) > 1 else "".join(lines)
        raise LoadError(f"{str(path)!r} is not a valid module: {summary}") from None


def deadline_ticks(seconds: float) -> int:
    """Epoch ticks for ``seconds``."""
    return max(1, math.ceil(seconds / EPOCH_SECONDS))


class _EpochClock:
    """Advances every engine's epoch each ``EPOCH_SECONDS`` while at least one
    call is running, and sleeps otherwise.

    It is a Python thread, so it runs only when it gets the GIL: with busy
    Python threads that may be far less often than every ``EPOCH_SECONDS``.
    Each time it runs it advances the epochs by the ticks owed for the time
    that passed, so a deadline holds within about one wait for the GIL."""

    def __init__(self) -> None:
        self.ticks = 0
        """Twice the times the clock has ticked, counting on in a forked
        child; odd while the engines' epochs are moving. A deadline set when
        the count was even, and that reads the same now, has all its ticks."""
        self._reset()
        # A forked child has none of its parent's threads: start afresh.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[int, None] = {}
        """The threads whose call is running, by ident: a call sets its key
        and pops it when done (see :meth:`start`). Setting and popping a key
        are atomic, and popping one twice harmless, so no lock is needed, and
        an exception between the two leaves no call counted for ever: the
        thread's next call pops it."""
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        """Where the sleeping clock waits for a call to start. A C queue, not
        a threading.Event, whose Python code an exception could leave with
        its lock taken, and every later call waiting on it."""
        self.asleep = True
        """Whether the clock waits for a call (or was never started): a call
        that starts then must :meth:`wake` it."""
        self._started = False
        self._ticking = False

    def start(self, thread: int) -> None:
        """A call begins on ``thread`` (its ident): keep the clock going
        until its :meth:`stop`. (A hot path may do the same inline: set
        ``calls[thread]``, then :meth:`wake` the clock if it is ``asleep``.)"""
        self.calls[thread] = None
        if self.asleep:
            self.wake()

    def stop(self, thread: int) -> None:
        """The call on ``thread`` has ended."""
        self.calls.pop(thread, None)

    def wake(self) -> None:
        """Wake the clock for a call that started, starting it the first time."""
        if not self._wake.qsize():
            self._wake.put(None)
        if not self._started:
            with self._lock:
                if not self._started:
                    # Unlike threading.Thread.start, this does not wait for the
                    # thread to be scheduled: a tenth of a first call's time.
                    _thread.start_new_thread(self._tick, ())
                    self._started = True

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Keep the clock going for the duration of a block."""
        thread = threading.get_ident()
        try:
            self.start(thread)
            yield
        finally:
            self.stop(thread)

    def _tick(self) -> None:
        with self._lock:
            # An exception in start() after it started this thread, before
            # it noted so, makes the next start() start another: one ticks.
            if self._ticking:
                return
            self._ticking = True
        running, wake = self.calls, self._wake
        while True:
            # A call that starts after this looks finds the clock asleep, and
            # wakes it; one that started before is seen here.
            self.asleep = True
            if not running:
                wake.get()
            self.asleep = False
            last = time.monotonic()
            # Tick at least once per wake-up before looking whether calls
            # still run: a clock that went back to sleep at once would be
            # woken again by the next short call, and the next.
            while True:
                time.sleep(EPOCH_SECONDS)
                owed = int((time.monotonic() - last) / EPOCH_SECONDS)
                last += owed * EPOCH_SECONDS
                self.ticks += 1
                for advance in list(_advancers.values()):
                    advance(owed)
                self.ticks += 1
                if not running:
                    break


EPOCH_CLOCK = _EpochClock()
