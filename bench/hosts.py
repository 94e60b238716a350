"""The three hosts the benchmark compares, behind one interface: the
tutorial's way (the same Rust logic as a native library through ctypes), a
naive wasmtime-py host that uses only the obvious public API, and py_host.
All three send the same pydantic-made JSON, parse the reply with the same
pydantic model, and run rounds through the same executor."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any, Protocol

import wasmtime

import py_host
from py_host._rounds import encode_outcomes
from py_host._wire import parse_procedure_reply

_ROUND_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int32,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_size_t),
)


class Host(Protocol):
    name: str

    def empty(self) -> None: ...
    def print_int(self, value: int) -> None: ...
    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput: ...
    def start_procedure_json(self, data: bytes) -> bytes: ...
    def close(self) -> None: ...


def answer_round(executor: py_host.Executor, request: bytes) -> bytes:
    """What every host's glue does with a round: parse, run, encode."""
    fields = json.loads(request)
    round = py_host.Round(
        fields["action"], fields["timeout"], fields["attempt"], tuple(fields["hosts"])
    )
    return encode_outcomes(list(executor.run_round(round)))


class NativeHost:
    """The tutorial's way: a native cdylib through ctypes, its executor a
    ctypes callback."""

    name = "ctypes (native)"

    def __init__(self, library: Path, executor: py_host.Executor | None) -> None:
        lib = ctypes.CDLL(str(library))
        lib.start_procedure.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            _ROUND_CALLBACK,
            ctypes.POINTER(ctypes.c_size_t),
        ]
        lib.start_procedure.restype = ctypes.c_void_p
        lib.free_reply.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.print_int.argtypes = [ctypes.POINTER(ctypes.c_int32)]
        lib.empty.restype = ctypes.c_uint32
        self._lib = lib
        self._executor = executor
        self._answer = b""
        self._callback = _ROUND_CALLBACK(self._execute_round)
        self._reply_len = ctypes.c_size_t()

    def _execute_round(self, request: int, length: int, answer: Any, answer_len: Any) -> int:
        if self._executor is None:
            return -1
        self._answer = answer_round(self._executor, ctypes.string_at(request, length))
        answer[0] = ctypes.cast(ctypes.c_char_p(self._answer), ctypes.c_void_p).value
        answer_len[0] = len(self._answer)
        return 0

    def empty(self) -> None:
        self._lib.empty()

    def print_int(self, value: int) -> None:
        self._lib.print_int(ctypes.byref(ctypes.c_int32(value)))

    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput:
        return parse_procedure_reply(
            self.start_procedure_json(procedure.model_dump_json().encode())
        )

    def start_procedure_json(self, data: bytes) -> bytes:
        reply_len = self._reply_len
        reply = self._lib.start_procedure(data, len(data), self._callback, ctypes.byref(reply_len))
        copied = ctypes.string_at(reply, reply_len.value)
        self._lib.free_reply(reply, reply_len.value)
        return copied

    def close(self) -> None:
        pass


class NaiveHost:
    """wasmtime-py's obvious public API: ``Func.__call__``, ``Memory.read``
    and ``write``, wasmtime's WASI, ``Linker.define_func`` for the executor,
    and alloc, write, call, read and dealloc for every call."""

    name = "naive wasmtime-py"

    def __init__(self, wasm: Path, executor: py_host.Executor | None) -> None:
        engine = wasmtime.Engine()
        self._store = store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        store.set_wasi(wasmtime.WasiConfig())
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        linker.define_func(
            "host",
            "execute_round",
            wasmtime.FuncType([i32, i32], [i64]),
            self._execute_round,
            access_caller=True,
        )
        linker.define_func(
            "host", "report_panic", wasmtime.FuncType([i32, i32], []), lambda *_: None
        )
        instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(wasm)))
        self._exports = instance.exports(store)
        self._executor = executor

    def _func(self, name: str) -> wasmtime.Func:
        func = self._exports[name]
        assert isinstance(func, wasmtime.Func)
        return func

    @property
    def _memory(self) -> wasmtime.Memory:
        memory = self._exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        return memory

    def _execute_round(self, caller: wasmtime.Caller, ptr: int, length: int) -> int:
        if self._executor is None:
            return 0  # docs/ABI.md: no executor granted
        answer = answer_round(self._executor, bytes(self._memory.read(caller, ptr, ptr + length)))
        answer_ptr = self._func("alloc")(caller, len(answer))
        self._memory.write(caller, answer, answer_ptr)
        return int((answer_ptr << 32) | len(answer))

    def _lend(self, data: bytes) -> int:
        ptr: int = self._func("alloc")(self._store, len(data))
        self._memory.write(self._store, data, ptr)
        return ptr

    def empty(self) -> None:
        self._func("live_allocations")(self._store)

    def print_int(self, value: int) -> None:
        ptr = self._lend(value.to_bytes(4, "little", signed=True))
        self._func("print_int")(self._store, ptr)
        self._func("dealloc")(self._store, ptr, 4)

    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput:
        return parse_procedure_reply(
            self.start_procedure_json(procedure.model_dump_json().encode())
        )

    def start_procedure_json(self, data: bytes) -> bytes:
        ptr = self._lend(data)
        packed = self._func("start_procedure")(self._store, ptr, len(data)) & (2**64 - 1)
        self._func("dealloc")(self._store, ptr, len(data))
        reply_ptr, reply_len = packed >> 32, packed & 0xFFFF_FFFF
        reply = bytes(self._memory.read(self._store, reply_ptr, reply_ptr + reply_len))
        self._func("dealloc")(self._store, reply_ptr, reply_len)
        return reply

    def close(self) -> None:
        self._store.close()


class PyHost:
    """py_host, as a user calls it."""

    name = "py_host"

    def __init__(
        self, wasm: Path, executor: py_host.Executor | None, limits: py_host.Limits | None = None
    ) -> None:
        self.module = py_host.load(wasm, executor=executor, limits=limits)

    def empty(self) -> None:
        self.module.live_allocations()

    def print_int(self, value: int) -> None:
        self.module.print_int(value)

    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput:
        return self.module.start_procedure(procedure)

    def start_procedure_json(self, data: bytes) -> bytes:
        return self.module.start_procedure_json(data)

    def close(self) -> None:
        self.module.close()
