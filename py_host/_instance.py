"""One instance of the module in a Store of its own: the imports the host
grants, the exports it calls, and what went wrong during a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, get_args

import wasmtime

from ._abi import ANSWER_REFUSED, NOT_GRANTED, Exports, pack, u32
from ._output import TextSink
from ._wasi import ModuleExit, OutputOnlyWasi
from ._wire import MAX_ROUNDS, encode_outcomes, parse_round
from .errors import AbiViolation, Error, LoadError, ModuleTrap
from .executors import Executor, Outcome, Round, Status

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

    def __init__(self, executor: Executor | None) -> None:
        self.executor = executor
        self.exports: Exports | None = None
        self.panic_message: str | None = None
        self.fault: Error | None = None
        self.rounds = 0
        self.wasi = OutputOnlyWasi(lambda: self.exports, TextSink("stdout"), TextSink("stderr"))

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

    def reset(self) -> None:
        """Forget what the last call left."""
        self.panic_message = None
        self.fault = None
        self.rounds = 0

    def _execute_round(self, caller: wasmtime.Caller, ptr: int, length: int) -> int:
        exports = self.exports
        if self.executor is None or exports is None:
            return NOT_GRANTED
        self.rounds += 1
        if self.rounds > MAX_ROUNDS:
            self.fault = AbiViolation(f"the module asked for more than {MAX_ROUNDS} rounds")
            return NOT_GRANTED
        try:
            round = parse_round(exports.read(caller, u32(ptr), u32(length)))
            answer = encode_outcomes(_outcomes(self.executor, round))
            return pack(exports.lend(caller, answer), len(answer))
        except Error as error:
            self.fault = error
        except Exception as error:
            self.fault = Error(f"answering execute_round failed: {error!r}")
        return ANSWER_REFUSED

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
            self.exports = self._imports.exports = Exports(instance, self.store)
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
        imports.reset()
        try:
            result = run(self.exports, self.store)
        except ModuleExit as exit:
            raise ModuleTrap(f"the module exited with code {exit.code}") from None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
            panic = imports.panic_message
            if panic is not None:
                raise ModuleTrap(f"the module panicked: {panic}", panic_message=panic) from None
            raise ModuleTrap(f"the module trapped: {_first_cause(trap)}") from None
        if imports.fault is not None:
            raise imports.fault
        return result

    def close(self) -> None:
        self.store.close()


def _first_cause(error: BaseException) -> str:
    # wasmtime puts the backtrace first and the cause ("wasm trap: ...") last.
    text = error.message if isinstance(error, wasmtime.Trap) else str(error)
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[-1] if lines else type(error).__name__
