"""One instance of the module in a Store of its own: the imports the host
grants, the exports it calls, and what went wrong during a call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar, get_args

import wasmtime
from wasmtime import _bindings

from ._abi import ANSWER_REFUSED, NOT_GRANTED, Exports, pack, u32
from ._engine import EPOCH_CLOCK, deadline_ticks, engine
from ._wasi import ModuleExit, OutputOnlyWasi
from ._wire import MAX_ROUNDS, encode_outcomes, parse_round
from .errors import AbiViolation, DeadlineExceeded, Error, LimitExceeded, LoadError, ModuleTrap
from .executors import Executor, Outcome, Round, Status
from .limits import Limits

T = TypeVar("T")

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()
_MAX_PANIC_MESSAGE = 64 * 1024
_STATUSES = frozenset(get_args(Status))


class _Imports:
    """The host functions of one instance. They hold no reference to the
    Store, so the Store (and with it these functions) is freed as soon as the
    Instance is dropped. They answer a problem with an error code and record
    it in ``fault``; only ``KeyboardInterrupt`` and the like unwind the
    module, and then the instance is discarded."""

    def __init__(self, executor: Executor | None, limits: Limits) -> None:
        self.executor = executor
        self.limits = limits
        self.exports: Exports | None = None
        self.panic_message: str | None = None
        self.fault: Error | None = None
        self.rounds = 0
        self.module_seconds_left = 0.0
        """What remains of the call's deadline: the module's own running time."""
        self.resumed_at = 0.0
        """When the module last got control back from the host."""
        self.wasi = OutputOnlyWasi(lambda: self.exports, self.report, limits.max_output_bytes)

    def define(self, linker: wasmtime.Linker) -> None:
        self.wasi.define(linker)
        linker.define_func(
            "host",
            "execute_round",
            wasmtime.FuncType([_I32, _I32], [_I64]),
            self._execute_round,
            access_caller=True,
        )
        linker.define_func(
            "host",
            "report_panic",
            wasmtime.FuncType([_I32, _I32], []),
            self._report_panic,
            access_caller=True,
        )

    def new_call(self) -> None:
        """Forget what the last call left, and start the deadline."""
        self.panic_message = None
        self.fault = None
        self.rounds = 0
        self.wasi.new_call()
        self.module_seconds_left = self.limits.deadline_seconds or 0.0
        self.resumed_at = time.monotonic()

    def report(self, fault: Error, caller: wasmtime.Caller) -> None:
        """Record the first problem of a call, to raise when the call ends,
        and stop the module at its next epoch check rather than let it go on."""
        if self.fault is None:
            self.fault = fault
        self._set_deadline(caller, 0)

    def _execute_round(self, caller: wasmtime.Caller, ptr: int, length: int) -> int:
        exports = self.exports
        if self.executor is None or exports is None:
            return NOT_GRANTED
        self.rounds += 1
        if self.rounds > MAX_ROUNDS:
            self.report(AbiViolation(f"the module asked for more than {MAX_ROUNDS} rounds"), caller)
            return NOT_GRANTED
        try:
            round = parse_round(exports.read(caller, u32(ptr), u32(length)))
            self.module_seconds_left -= time.monotonic() - self.resumed_at
            try:
                outcomes = _outcomes(self.executor, round)
            finally:
                self._resume(caller)
            answer = encode_outcomes(outcomes)
            return pack(exports.lend(caller, answer), len(answer))
        except Error as error:
            self.report(error, caller)
        except Exception as error:
            self.report(Error(f"answering execute_round failed: {error!r}"), caller)
        return ANSWER_REFUSED

    def _resume(self, caller: wasmtime.Caller) -> None:
        """Give the module what is left of its deadline: the time the
        executor took does not count against it."""
        self.resumed_at = time.monotonic()
        if self.limits.deadline_seconds is not None:
            self._set_deadline(caller, deadline_ticks(max(self.module_seconds_left, 0.0)))

    @staticmethod
    def _set_deadline(caller: wasmtime.Caller, ticks: int) -> None:
        # wasmtime-py has no public way to set a deadline through a Caller.
        _bindings.wasmtime_context_set_epoch_deadline(caller._context(), ticks)

    def _report_panic(self, caller: wasmtime.Caller, ptr: int, length: int) -> None:
        exports = self.exports
        if exports is None:
            return
        try:
            message = exports.read(caller, u32(ptr), min(u32(length), _MAX_PANIC_MESSAGE))
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
        fuel = limits.max_fuel is not None
        self.store = wasmtime.Store(engine(fuel))
        self.store.set_limits(memory_size=limits.max_memory_bytes)
        self.store.set_epoch_deadline(deadline_ticks(limits.deadline_seconds))
        if limits.max_fuel is not None:
            self.store.set_fuel(limits.max_fuel)
        self._imports = _Imports(executor, limits)
        linker = wasmtime.Linker(engine(fuel))
        self._imports.define(linker)
        try:
            with EPOCH_CLOCK.running():
                instance = linker.instantiate(self.store, module)
                exports = Exports(instance, self.store, limits.max_reply_bytes)
            self.exports = self._imports.exports = exports
        except LoadError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise LoadError(f"cannot instantiate the module: {_first_cause(error)}") from None
        except BaseException:
            self.close()
            raise

    def call(self, run: Callable[[Exports, wasmtime.Store], T]) -> T:
        """``run(exports, store)``, with traps turned into :class:`ModuleTrap` and
        problems the imports found raised. After anything but a
        :class:`~py_host.ModuleError`, the instance must be discarded."""
        imports = self._imports
        imports.new_call()
        limits = self._limits
        self.store.set_epoch_deadline(deadline_ticks(limits.deadline_seconds))
        if limits.max_fuel is not None:
            self.store.set_fuel(limits.max_fuel)
        try:
            with EPOCH_CLOCK.running():
                result = run(self.exports, self.store)
        except ModuleExit as exit:
            raise ModuleTrap(f"the module exited with code {exit.code}") from None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
            raise self._trap_error(trap) from None
        if imports.fault is not None:
            raise imports.fault
        return result

    def _trap_error(self, trap: wasmtime.Trap | wasmtime.WasmtimeError) -> Error:
        """The exception that says why the module trapped."""
        imports = self._imports
        if imports.fault is not None:
            return imports.fault
        panic = imports.panic_message
        if panic is not None:
            return ModuleTrap(f"the module panicked: {panic}", panic_message=panic)
        code = trap.trap_code if isinstance(trap, wasmtime.Trap) else None
        limits = self._limits
        if code == wasmtime.TrapCode.INTERRUPT:
            return DeadlineExceeded(f"the module ran past its {limits.deadline_seconds} s deadline")
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return LimitExceeded("fuel", f"the module used up its fuel ({limits.max_fuel})")
        # Rust's allocator reports running out of memory on stderr, then aborts.
        if "memory allocation of" in imports.wasi.stderr.recent:
            return LimitExceeded(
                "memory", f"the module ran out of memory (limit {limits.max_memory_bytes} bytes)"
            )
        return ModuleTrap(f"the module trapped: {_first_cause(trap)}")

    def close(self) -> None:
        self.store.close()


def _first_cause(error: BaseException) -> str:
    # wasmtime puts the backtrace first and the cause ("wasm trap: ...") last.
    text = error.message if isinstance(error, wasmtime.Trap) else str(error)
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[-1] if lines else type(error).__name__
