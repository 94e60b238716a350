"""One instance of the module in a Store of its own: the imports the host
grants, the exports it calls, and what went wrong during a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import wasmtime

from ._abi import ANSWER_REFUSED, NOT_GRANTED, Exports, pack
from ._output import TextSink
from ._wasi import ModuleExit, OutputOnlyWasi
from ._wire import encode_outcomes, parse_round
from .errors import AbiViolation, Error, LoadError, ModuleTrap
from .executors import Executor, Outcome, Round

T = TypeVar("T")

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()
_MAX_PANIC_MESSAGE = 64 * 1024


class _Imports:
    """The host functions of one instance. They hold no reference to the
    Store, so the Store (and with it these functions) is freed as soon as the
    Instance is dropped. They never raise into the module: a problem is
    answered with an error code and recorded in ``fault``."""

    def __init__(self, executor: Executor | None) -> None:
        self.executor = executor
        self.exports: Exports | None = None
        self.panic_message: str | None = None
        self.fault: Error | None = None
        self.wasi = OutputOnlyWasi(self._exports, TextSink("stdout"), TextSink("stderr"))

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

    def _exports(self) -> Exports:
        assert self.exports is not None, "imports run only after instantiation"
        return self.exports

    def _execute_round(self, caller: wasmtime.Caller, ptr: int, length: int) -> int:
        if self.executor is None:
            return NOT_GRANTED
        exports = self._exports()
        try:
            round = parse_round(exports.read(caller, ptr, length))
        except (AbiViolation, ValueError, KeyError, TypeError) as error:
            self.fault = AbiViolation(f"execute_round was sent an invalid request: {error}")
            return ANSWER_REFUSED
        answer = encode_outcomes(_outcomes(self.executor, round))
        try:
            return pack(exports.lend(caller, answer), len(answer))
        except (AbiViolation, MemoryError, wasmtime.WasmtimeError) as error:
            self.fault = AbiViolation(f"cannot hand the round's answer to the module: {error}")
            return ANSWER_REFUSED

    def _report_panic(self, caller: wasmtime.Caller, ptr: int, length: int) -> None:
        try:
            message = self._exports().read(caller, ptr, min(length, _MAX_PANIC_MESSAGE))
        except AbiViolation:
            self.panic_message = "(the panic message was outside memory)"
            return
        self.panic_message = message.decode("utf-8", "replace")


def _outcomes(executor: Executor, round: Round) -> list[Outcome]:
    """What the executor says of ``round``; whatever goes wrong in it fails the round."""
    try:
        outcomes = list(executor.run_round(round))
    except Exception as error:
        reason = f"the executor raised {type(error).__name__}: {error}"
        return [Outcome.failed(reason)] * len(round.hosts)
    for outcome in outcomes:
        if not isinstance(outcome, Outcome):
            reason = f"the executor returned {type(outcome).__name__}, expected Outcome"
            return [Outcome.failed(reason)] * len(round.hosts)
    return outcomes


class Instance:
    """The module instantiated in its own Store."""

    def __init__(
        self, engine: wasmtime.Engine, module: wasmtime.Module, executor: Executor | None
    ) -> None:
        self.store = wasmtime.Store(engine)
        self._imports = _Imports(executor)
        linker = wasmtime.Linker(engine)
        self._imports.define(linker)
        try:
            instance = linker.instantiate(self.store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
            raise LoadError(f"cannot instantiate the module: {error}") from None
        self.exports = self._imports.exports = Exports(instance, self.store)

    def call(self, run: Callable[[Exports, wasmtime.Store], T]) -> T:
        """``run(exports, store)``, with traps turned into :class:`ModuleTrap` and
        ABI violations found by the imports raised as :class:`AbiViolation`.
        After either, the instance must be discarded."""
        imports = self._imports
        imports.panic_message = None
        imports.fault = None
        try:
            result = run(self.exports, self.store)
        except ModuleExit as exit:
            raise ModuleTrap(f"the module exited with code {exit.code}") from None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
            panic = imports.panic_message
            if panic is not None:
                raise ModuleTrap(f"the module panicked: {panic}", panic_message=panic) from None
            raise ModuleTrap(f"the module trapped: {_trap_message(trap)}") from None
        if imports.fault is not None:
            raise imports.fault
        return result

    def close(self) -> None:
        self.store.close()


def _trap_message(trap: wasmtime.Trap | wasmtime.WasmtimeError) -> str:
    # wasmtime puts the backtrace first and the cause ("wasm trap: ...") last.
    text = trap.message if isinstance(trap, wasmtime.Trap) else str(trap)
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[-1] if lines else "unknown trap"
