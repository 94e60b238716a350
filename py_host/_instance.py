"""One instance of the module in a Store of its own: its exports, its
limits, its output, and what went wrong when it trapped.

The module imports nothing that py_host implements: its few WASI imports
trap natively if ever called. So no Python code runs while WebAssembly is on
the stack, and a signal handler or an asynchronous exception can only land
between two calls, in ordinary Python, where it unwinds like any exception.
"""

from __future__ import annotations

import re
import sys
import time
import weakref
from collections.abc import Callable
from functools import partial
from threading import get_ident
from typing import TypeVar

import wasmtime

from ._abi import Exports
from ._engine import EPOCH_CLOCK, Flavor, deadline_ticks, engine
from ._transport import Context, close_store
from .errors import (
    AbiViolation,
    DeadlineExceeded,
    Error,
    LimitExceeded,
    LoadError,
    ModuleError,
    ModuleTrap,
)
from .limits import Limits

T = TypeVar("T")

_MAX_TABLE_ELEMENTS = 100_000
"""Function-table entries a module may grow to: ours needs a few hundred."""
_OUT_OF_MEMORY = re.compile(r"memory allocation of (\d+) bytes failed")
_IMPORT_CALLED = re.compile(r"unknown import: `(\w+::\w+)` has not been defined")
_TRAPS = (wasmtime.Trap, wasmtime.WasmtimeError)


def prepare(module: wasmtime.Module, limits: Limits) -> wasmtime.InstancePre:
    """``module`` linked once for all its instances: its few WASI imports,
    which Rust's std links in and never calls (it was checked at load to
    import nothing else), trap natively. One linker for all also means no
    finalizer runs as each instance is made."""
    linker = wasmtime.Linker(engine(Flavor.for_limits(limits)))
    linker.define_unknown_imports_as_traps(module)
    return linker.instantiate_pre(module)


class Instance:
    """The module instantiated in its own Store, within its limits.

    Calls on it come in **runs**: :meth:`begin` starts one (one call of the
    public API, which may take several steps of a procedure), and each
    :meth:`call` is one step. The limits on time, fuel and output hold for a
    whole run; the executor's time between steps is not the module's.
    """

    def __init__(
        self, linked: wasmtime.InstancePre, executor_granted: bool, limits: Limits
    ) -> None:
        self._limits = limits
        flavor = Flavor.for_limits(limits)
        seconds = limits.deadline_seconds
        self._whole_deadline = deadline_ticks(seconds) if seconds is not None else 0
        self._whole_deadline_at: int | None = None
        """The epoch clock's count when the whole deadline was last set, or
        None when the clock was moving then, or once less was set."""
        self._seconds_left = seconds
        self._run_ends = 0.0
        """When the run must end by, on the monotonic clock, with ``Limits.procedure_seconds``."""
        self._output_left = limits.max_output_bytes
        self.unread: dict[int, weakref.ref[object]] = {}
        """Replies left in memory, by pointer, with what holds each (a
        ReplyBuffer). One whose holder is gone is freed at the next run: no
        finalizer, which an exception could cut short, does it."""
        self.store = wasmtime.Store(engine(flavor))
        try:
            self.store.set_limits(
                memory_size=limits.max_memory_bytes,
                table_elements=_MAX_TABLE_ELEMENTS,
                instances=1,
                tables=4,
                memories=1,
            )
            if self._whole_deadline:
                self.store.set_epoch_deadline(self._whole_deadline)
            if limits.max_fuel is not None:
                self.store.set_fuel(limits.max_fuel)
            # The exports' first calls run the module too: under the deadline.
            with EPOCH_CLOCK.running():
                instance = linked.instantiate(self.store)
                self.exports = Exports(
                    instance, self.store, limits.max_reply_bytes, limits.max_output_bytes
                )
                if executor_granted:
                    self.exports.grant_executor(self.exports.store_context)
        except LoadError:
            self.close()
            raise
        except _TRAPS as trap:
            # Explained before the Store is freed: the reason lies in its memory.
            cause = self._explain(trap, self._context())
            self.close()
            raise LoadError(f"cannot instantiate the module: {cause}") from None
        except BaseException:
            self.close()
            raise

    def begin(self) -> None:
        """A new run: the whole deadline, fuel and output allowance again."""
        procedure_seconds = self._limits.procedure_seconds
        if procedure_seconds is not None:
            self._run_ends = time.monotonic() + procedure_seconds
        self._seconds_left = self._limits.deadline_seconds
        self._output_left = self._limits.max_output_bytes
        if self._limits.max_fuel is not None:
            self.store.set_fuel(self._limits.max_fuel)
        if self.unread:
            for ptr, holder in list(self.unread.items()):
                if holder() is None:
                    del self.unread[ptr]
                    if not self.call(partial(Exports.free_mem, ptr=ptr)):
                        raise AbiViolation("free_mem did not recognise a reply the module returned")

    def call(self, run: Callable[[Exports, Context], T], prints: bool = False) -> T:
        """One step: ``run(exports, context)``, within what is left of the
        run's limits, with a trap raised as the py_host error that explains
        it. When ``run`` calls an export that ``prints``, what it printed is
        written to ``sys.stdout`` after it. After anything but a
        :class:`~py_host.ModuleError` the instance must be discarded."""
        exports = self.exports
        context = exports.store_context
        seconds_left = self._seconds_left
        if seconds_left is not None:
            # Setting a deadline is a call into wasmtime; while the clock has
            # not ticked, the whole one set for the last run still holds.
            if (
                seconds_left != self._limits.deadline_seconds
                or self._whole_deadline_at != EPOCH_CLOCK.ticks
            ):
                self._set_deadline(context, seconds_left)
            started = time.monotonic()
        thread = get_ident()
        try:
            # EPOCH_CLOCK.start and stop, inline: a third of a short call's
            # own time went to calling them.
            EPOCH_CLOCK.calls[thread] = None
            if EPOCH_CLOCK.asleep:
                EPOCH_CLOCK.wake()
            result = run(exports, context)
        except _TRAPS as trap:
            raise self._explain(trap, context) from None
        finally:
            EPOCH_CLOCK.calls.pop(thread, None)
            if seconds_left is not None:
                self._seconds_left = seconds_left - (time.monotonic() - started)
        if prints:
            output = exports.take_output(context)
            if output:
                self._write_output(output)
        return result

    def print_output(self) -> None:
        """Write what the last step printed to ``sys.stdout``."""
        output = self.exports.take_output(self.exports.store_context)
        if output:
            self._write_output(output)

    def check_run_time(self) -> None:
        """Raise :class:`DeadlineExceeded` if the run is past its
        ``Limits.procedure_seconds``, executor time included."""
        left = self.run_time_left()
        if left is not None and left < 0:
            raise self.run_time_exceeded()

    def run_time_left(self) -> float | None:
        """Seconds left of the run's ``Limits.procedure_seconds``, if it has any."""
        if self._limits.procedure_seconds is None:
            return None
        return self._run_ends - time.monotonic()

    def run_time_exceeded(self) -> DeadlineExceeded:
        """The error for a run past its ``Limits.procedure_seconds``."""
        return DeadlineExceeded(
            f"the procedure ran past its {self._limits.procedure_seconds} s in all, "
            "its executor's rounds included",
            limit="procedure",
        )

    def close(self) -> None:
        close_store(self.store)

    def _context(self) -> Context:
        exports: Exports | None = getattr(self, "exports", None)
        return exports.store_context if exports else None

    def _set_deadline(self, context: Context, seconds_left: float) -> None:
        if seconds_left <= 0:
            raise self._deadline_exceeded()
        if seconds_left < self._limits.deadline_seconds:  # type: ignore[operator]
            self.exports.set_deadline(context, deadline_ticks(seconds_left))
            self._whole_deadline_at = None
        else:
            ticks = EPOCH_CLOCK.ticks
            self.exports.set_deadline(context, self._whole_deadline)
            self._whole_deadline_at = None if ticks % 2 else ticks

    def _write_output(self, output: bytes) -> None:
        self._output_left -= len(output)
        if self._output_left < 0:
            raise LimitExceeded(
                "output", f"the module wrote more than {self._limits.max_output_bytes} bytes"
            )
        stdout = sys.stdout
        if stdout is None:
            return
        text = output.decode("utf-8", "replace")
        try:
            stdout.write(text)
        except Exception as error:
            raise ModuleError("io", f"writing the module's output failed: {error!r}") from error

    def _deadline_exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the module ran past its {self._limits.deadline_seconds} s deadline"
        )

    def _explain(self, trap: Exception, context: Context) -> Error:
        """Why the module trapped: the runtime's trap code for a limit, else
        the reason the module left in its outbox, else the runtime's words."""
        code = trap.trap_code if isinstance(trap, wasmtime.Trap) else None
        if code == wasmtime.TrapCode.INTERRUPT:
            return self._deadline_exceeded()
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return LimitExceeded("fuel", f"the module used up its fuel ({self._limits.max_fuel})")
        exports: Exports | None = getattr(self, "exports", None)
        report = exports.trap_report(context) if exports else None
        oom = _OUT_OF_MEMORY.match(report) if report else None
        if oom and exports:
            in_use = exports.memory_size(context)
            limit = self._limits.max_memory_bytes
            message = f"the module ran out of memory: it asked for {oom[1]} more bytes"
            if in_use + int(oom[1]) > limit:
                return LimitExceeded("memory", f"{message} with {in_use} of its {limit} in use")
            return ModuleTrap(message)
        if report is not None:
            return ModuleTrap(f"the module panicked: {report}", panic_message=report)
        cause = _first_cause(trap)
        called = _IMPORT_CALLED.search(cause)
        if called:
            return ModuleTrap(f"the module called {called[1]}, which no module is granted")
        return ModuleTrap(f"the module trapped: {cause}")


def _first_cause(error: BaseException) -> str:
    # wasmtime puts the backtrace first and the cause ("wasm trap: ...") last.
    text = error.message if isinstance(error, wasmtime.Trap) else str(error)
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[-1] if lines else type(error).__name__
