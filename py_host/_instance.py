"""One instance of the module in a Store of its own: the imports the host
grants, the exports it calls, its limits, and what went wrong during a call."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar, get_args

import wasmtime

from . import _interrupts as interrupts
from ._abi import NOT_GRANTED, Exports, pack
from ._engine import EPOCH_CLOCK, Flavor, deadline_ticks, engine
from ._rounds import RoundPolicy, encode_outcomes
from ._transport import Context, Signature, host_functions
from ._wasi import ModuleStopped, OutputOnlyWasi
from .errors import AbiViolation, DeadlineExceeded, Error, LimitExceeded, LoadError, ModuleTrap
from .executors import Executor, Outcome, Round, Status
from .limits import Limits

T = TypeVar("T")

_MAX_PANIC_MESSAGE = 64 * 1024
_STATUSES = frozenset(get_args(Status))
_MAX_TABLE_ELEMENTS = 100_000
"""Function-table entries a module may grow to: ours needs a few hundred."""
_REPORT_PANIC = Signature(2, None)
_EXECUTE_ROUND = Signature(2, "i64")
_OUT_OF_MEMORY = re.compile(r"memory allocation of (\d+) bytes failed")


class _Imports:
    """The host functions of one instance, and the state of its current call.

    They hold no reference to the Store, so the Store (and with it these
    functions) is freed as soon as the Instance is dropped. They answer a
    problem with an error code and record it in ``fault``, which also stops
    the module at its next epoch check; only ``KeyboardInterrupt`` and the
    like unwind the module, and then the instance is discarded.
    """

    def __init__(self, executor: Executor | None, limits: Limits) -> None:
        self.executor = executor
        self.limits = limits
        self.exports: Exports | None = None
        self.wasi = OutputOnlyWasi(lambda: self.exports, self, limits.max_output_bytes)
        self._host_functions = host_functions()
        self.dirty = True
        """Whether a host function ran in the current call, so its state
        needs resetting before the next."""
        self.whole_deadline_at: int | None = None
        """The epoch clock's tick count when the whole deadline was last set,
        or None when the clock was moving then, or once what was left of a
        deadline was set instead."""
        self.new_call(None)

    def new_call(self, policy: RoundPolicy | None) -> None:
        """Forget what the last call left, and start the deadline."""
        self.policy = policy
        self._seconds_left = self.limits.deadline_seconds
        self._running_since = time.monotonic()
        if self.dirty:
            self.panic_message: str | None = None
            self.exit_code: int | None = None
            self.fault: Error | None = None
            self.raised: BaseException | None = None
            """What a host function raised, to raise again when the call ends."""
            self.wasi.new_call()
            self.dirty = False

    def define(
        self, linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module
    ) -> None:
        host = self._host_functions
        self.wasi.define(linker, host)
        host.define(
            linker,
            ("host", "report_panic"),
            self._report_panic,
            _REPORT_PANIC,
            on_error=self.failed,
        )
        if self.executor is None:
            # execute_round, left undefined, answers 0, "no executor granted",
            # from wasmtime itself: a dry run never calls out to Python. (The
            # module was checked to import nothing else this host does not define.)
            linker.define_unknown_imports_as_default_values(store, module)
        else:
            host.define(
                linker,
                ("host", "execute_round"),
                self._execute_round,
                _EXECUTE_ROUND,
                on_error=self.failed,
            )

    # The call's state, shared with the WASI imports.

    def report(self, fault: Error, ctx: Context) -> NoReturn:
        """Record the first problem of a call, to raise when the call ends,
        and stop the module now: the host function that reports it traps."""
        self.dirty = True
        if self.fault is None:
            self.fault = fault
        raise ModuleStopped

    def failed(self, error: BaseException) -> None:
        """A host function raised ``error``: the module traps, and the call
        raises it again (a stop is not an error: its cause was recorded)."""
        self.dirty = True
        if not isinstance(error, ModuleStopped) and self.raised is None:
            self.raised = error

    def pause(self, ctx: Context) -> None:
        """The host starts work of its own, which does not count against the
        module's deadline; the module is stopped if it is already past it."""
        if self._seconds_left is not None:
            self._seconds_left -= time.monotonic() - self._running_since
            if self._seconds_left <= 0:
                self.report(self.deadline_exceeded(), ctx)

    def resume(self, ctx: Context) -> None:
        """The host's work is done: the module runs on with what is left of
        its deadline, unless a fault has stopped it."""
        self._running_since = time.monotonic()
        if self.fault is None and self._seconds_left is not None and self.exports is not None:
            self.exports.set_deadline(ctx, deadline_ticks(self._seconds_left))
            self.whole_deadline_at = None

    def deadline_exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the module ran past its {self.limits.deadline_seconds} s deadline"
        )

    def explain(self, trap: BaseException, ctx: Context | None) -> Error:
        """Why the module trapped, from what this instance saw: the
        exception itself may have come through wasmtime-py's one global slot
        for exceptions and belong to another thread's call."""
        if self.exit_code is not None:
            return ModuleTrap(f"the module exited with code {self.exit_code}")
        if self.raised is not None:
            return Error(f"a host function failed: {self.raised!r}")
        if self.panic_message is not None:
            message = self.panic_message
            return ModuleTrap(f"the module panicked: {message}", panic_message=message)
        oom = _OUT_OF_MEMORY.search(self.wasi.stderr.recent)
        exports = self.exports
        if (
            oom
            and exports
            and exports.memory_size(ctx) + int(oom[1]) > self.limits.max_memory_bytes
        ):
            return LimitExceeded(
                "memory",
                f"the module ran out of memory: it asked for {oom[1]} more bytes "
                f"with {exports.memory_size(ctx)} of its {self.limits.max_memory_bytes} in use",
            )
        if self.fault is not None:
            return self.fault
        code = trap.trap_code if isinstance(trap, wasmtime.Trap) else None
        if code == wasmtime.TrapCode.INTERRUPT:
            return self.deadline_exceeded()
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return LimitExceeded("fuel", f"the module used up its fuel ({self.limits.max_fuel})")
        if not isinstance(trap, (wasmtime.Trap, wasmtime.WasmtimeError)):
            # Another thread's exception, delivered here through that slot.
            return ModuleTrap("the module trapped")
        return ModuleTrap(f"the module trapped: {_first_cause(trap)}")

    # The host functions.

    def _execute_round(self, ctx: Context, ptr: int, length: int) -> int:
        exports = self.exports
        if exports is None or self.executor is None:
            return NOT_GRANTED
        self.pause(ctx)
        try:
            if self.policy is None:
                raise AbiViolation("the module asked for a round outside a procedure")
            round = self.policy.admit(exports.read(ctx, ptr, length))
            answer = encode_outcomes(_outcomes(self.executor, round))
            self.resume(ctx)
            return pack(exports.lend(ctx, answer), len(answer))
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
            self.report(self.explain(trap, ctx), ctx)
        except Error as error:
            self.report(error, ctx)
        except Exception as error:
            self.report(Error(f"answering execute_round failed: {error!r}"), ctx)

    def _report_panic(self, ctx: Context, ptr: int, length: int) -> None:
        exports = self.exports
        if exports is None:
            return
        self.dirty = True
        try:
            message = exports.read(ctx, ptr, min(length, _MAX_PANIC_MESSAGE))
        except AbiViolation:
            self.panic_message = "(the panic message was outside memory)"
            return
        self.panic_message = message.decode("utf-8", "replace")


def _outcomes(executor: Executor, round: Round) -> list[Outcome]:
    """What the executor says of ``round``, as outcomes the module can take;
    whatever goes wrong in the executor fails the round with the reason."""
    try:
        outcomes = list(executor.run_round(round))
    except Exception as error:
        reason = f"the executor raised {type(error).__name__}: {error}"
        return [Outcome.failed(_utf8_safe(reason))] * len(round.hosts)
    for outcome in outcomes:
        if not isinstance(outcome, Outcome):
            reason = f"the executor returned {type(outcome).__name__}, expected Outcome"
            return [Outcome.failed(reason)] * len(round.hosts)
        if outcome.status not in _STATUSES or not isinstance(outcome.reason, str):
            reason = f"the executor returned an invalid {outcome!r}"
            return [Outcome.failed(_utf8_safe(reason))] * len(round.hosts)
    return [Outcome(o.status, _utf8_safe(o.reason)) for o in outcomes]


def _utf8_safe(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


class Instance:
    """The module instantiated in its own Store, within its limits."""

    def __init__(self, module: wasmtime.Module, executor: Executor | None, limits: Limits) -> None:
        self._limits = limits
        flavor = Flavor.for_limits(limits)
        seconds = limits.deadline_seconds
        self._deadline_ticks = deadline_ticks(seconds) if seconds is not None else 0
        self.store = wasmtime.Store(engine(flavor))
        self.store.set_limits(
            memory_size=limits.max_memory_bytes,
            table_elements=_MAX_TABLE_ELEMENTS,
            instances=1,
            tables=4,
            memories=1,
        )
        self._imports = _Imports(executor, limits)
        self.orphans: list[int] = []
        """Replies whose ReplyBuffer was dropped unfreed, to free at the next call."""
        linker = wasmtime.Linker(engine(flavor))
        self._imports.define(linker, self.store, module)
        try:
            self._start_limits()
            with EPOCH_CLOCK.running():
                instance = linker.instantiate(self.store, module)
                exports = Exports(instance, self.store, limits.max_reply_bytes)
            self.exports = self._imports.exports = exports
        except LoadError:
            self.close()
            raise
        except (wasmtime.Trap, wasmtime.WasmtimeError, ModuleStopped) as trap:
            cause = self._imports.explain(trap, None)
            self.close()
            raise LoadError(f"cannot instantiate the module: {cause}") from None
        except BaseException:
            self.close()
            raise

    def call(self, run: Callable[[Exports, Context], T], policy: RoundPolicy | None = None) -> T:
        """``run(exports, context)``, with traps turned into py_host errors and
        problems the imports found raised. ``policy`` says which rounds the
        module may ask for. After anything but a :class:`~py_host.ModuleError`
        the instance must be discarded."""
        imports = self._imports
        imports.new_call(policy)
        exports = self.exports
        context = exports.store_context
        if self._deadline_ticks:
            # Setting a deadline is a call into wasmtime; while the clock has
            # not ticked, the one set for the last call is still whole.
            ticks = EPOCH_CLOCK.ticks
            if imports.whole_deadline_at != ticks:
                exports.set_deadline(context, self._deadline_ticks)
                imports.whole_deadline_at = None if ticks % 2 else ticks
        if self._limits.max_fuel is not None:
            self.store.set_fuel(self._limits.max_fuel)
        EPOCH_CLOCK.start()
        main_thread = interrupts.enter()
        try:
            result = run(exports, context)
        except BaseException as error:
            raised = imports.raised
            if raised is not None and not isinstance(raised, Exception):
                raise raised from None
            if isinstance(error, (wasmtime.Trap, wasmtime.WasmtimeError, ModuleStopped)):
                raise imports.explain(error, context) from None
            if imports.fault is not None:
                raise imports.fault from None
            raise
        finally:
            EPOCH_CLOCK.stop()
            if main_thread:
                interrupts.leave()
        if imports.fault is not None:
            raise imports.fault
        return result

    def close(self) -> None:
        self.store.close()

    def _start_limits(self) -> None:
        if self._deadline_ticks:
            self.store.set_epoch_deadline(self._deadline_ticks)
        if self._limits.max_fuel is not None:
            self.store.set_fuel(self._limits.max_fuel)


def _first_cause(error: BaseException) -> str:
    # wasmtime puts the backtrace first and the cause ("wasm trap: ...") last.
    text = error.message if isinstance(error, wasmtime.Trap) else str(error)
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[-1] if lines else type(error).__name__
