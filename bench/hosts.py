"""The three hosts the benchmark compares, behind one interface: the
tutorial's way (the same Rust logic as a native library through ctypes), a
naive wasmtime-py host that uses only the obvious public API, and py_host.
All three send the same pydantic-made JSON, parse the reply with the same
pydantic model, and drive a procedure's rounds through the same executor,
as docs/ABI.md (version 3) has a host do: each step's reply is the output,
an error, or a round to run and answer in the next step."""

from __future__ import annotations

import ctypes
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import wasmtime

import py_host
from py_host._rounds import encode_outcomes
from py_host._wire import parse_procedure_reply

ROUND_PREFIX = b'{"round":'
"""How a step reply that asks for a round starts: the module writes its
JSON without spaces."""


class Host(Protocol):
    name: str

    def empty(self) -> None: ...
    def print_int(self, value: int) -> None: ...
    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput: ...
    def start_procedure_json(self, data: bytes) -> bytes: ...
    def close(self) -> None: ...


def answer_round(executor: py_host.Executor | None, reply: bytes) -> bytes:
    """What every host's glue does with a reply asking for a round: parse,
    run, encode the answer."""
    if executor is None:
        raise RuntimeError("the module asked for a round, but no executor was granted")
    fields = json.loads(reply)["round"]
    round = py_host.Round(
        fields["action"], fields["timeout"], fields["attempt"], tuple(fields["hosts"])
    )
    return encode_outcomes(list(executor.run_round(round)))


def run_procedure(
    first: bytes, resume: Callable[[bytes], bytes], executor: py_host.Executor | None
) -> bytes:
    """The procedure's final reply, from its first step's: every round a
    reply asks for is run, and its answer resumes the procedure."""
    reply = first
    while reply.startswith(ROUND_PREFIX):
        reply = resume(answer_round(executor, reply))
    return reply


class _Outbox(ctypes.Structure):
    """bench/native's ``Outbox``: where the last ``print_int`` put its output."""

    _fields_ = [("output_ptr", ctypes.c_void_p), ("output_len", ctypes.c_size_t)]


class NativeHost:
    """The tutorial's way: a native cdylib through ctypes, in the module's
    shape: an instance of its own, rounds driven from here, replies freed
    with ``free_reply``, output read from the outbox."""

    name = "ctypes (native)"

    def __init__(self, library: Path, executor: py_host.Executor | None) -> None:
        lib = ctypes.CDLL(str(library))
        lib.instance_new.restype = ctypes.c_void_p
        lib.instance_free.argtypes = [ctypes.c_void_p]
        lib.grant_executor.argtypes = [ctypes.c_void_p]
        lib.outbox.argtypes = [ctypes.c_void_p]
        lib.outbox.restype = ctypes.POINTER(_Outbox)
        for step in (lib.start_procedure, lib.resume_procedure):
            step.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.c_size_t),
            ]
            step.restype = ctypes.c_void_p
        lib.free_reply.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.print_int.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
        lib.empty.restype = ctypes.c_uint32
        self._lib = lib
        self._instance = lib.instance_new()
        if executor is not None:
            lib.grant_executor(self._instance)
        self._outbox = lib.outbox(self._instance).contents
        self._executor = executor
        self._reply_len = ctypes.c_size_t()

    def empty(self) -> None:
        self._lib.empty()

    def print_int(self, value: int) -> None:
        self._lib.print_int(self._instance, ctypes.byref(ctypes.c_int32(value)))
        outbox = self._outbox
        sys.stdout.write(ctypes.string_at(outbox.output_ptr, outbox.output_len).decode())

    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput:
        return parse_procedure_reply(
            self.start_procedure_json(procedure.model_dump_json().encode())
        )

    def start_procedure_json(self, data: bytes) -> bytes:
        first = self._step(self._lib.start_procedure, data)
        return run_procedure(first, self._resume, self._executor)

    def _resume(self, answer: bytes) -> bytes:
        return self._step(self._lib.resume_procedure, answer)

    def _step(self, function: Callable[..., int | None], data: bytes) -> bytes:
        """The reply of one step, copied out and freed."""
        reply_len = self._reply_len
        reply = function(self._instance, data, len(data), ctypes.byref(reply_len))
        copied = ctypes.string_at(reply, reply_len.value)
        self._lib.free_reply(reply, reply_len.value)
        return copied

    def close(self) -> None:
        self._lib.instance_free(self._instance)


class NaiveHost:
    """wasmtime-py's obvious public API, as a newcomer would write it from
    docs/ABI.md: ``Func.__call__``, ``Memory.read`` and ``write``,
    ``Linker.define_unknown_imports_as_traps`` for the imports, alloc,
    write, call, read and dealloc for every buffer, and the outbox read
    after every call that may print."""

    name = "naive wasmtime-py"

    def __init__(self, wasm: Path, executor: py_host.Executor | None) -> None:
        engine = wasmtime.Engine()
        self._store = store = wasmtime.Store(engine)
        module = wasmtime.Module.from_file(engine, str(wasm))
        linker = wasmtime.Linker(engine)
        linker.define_unknown_imports_as_traps(module)
        self._exports = linker.instantiate(store, module).exports(store)
        if executor is not None:
            self._func("grant_executor")(store)
        self._outbox = self._func("outbox")(store) & 0xFFFF_FFFF
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

    def _read(self, ptr: int, length: int) -> bytes:
        return bytes(self._memory.read(self._store, ptr, ptr + length))

    def _lend(self, data: bytes) -> int:
        ptr: int = self._func("alloc")(self._store, len(data))
        self._memory.write(self._store, data, ptr)
        return ptr

    def _print_output(self) -> None:
        """Write what the last call printed, from the outbox, to sys.stdout."""
        ptr, length = struct.unpack("<II", self._read(self._outbox, 8))
        sys.stdout.write(self._read(ptr, length).decode())

    def empty(self) -> None:
        self._func("live_allocations")(self._store)

    def print_int(self, value: int) -> None:
        ptr = self._lend(value.to_bytes(4, "little", signed=True))
        self._func("print_int")(self._store, ptr)
        self._func("dealloc")(self._store, ptr, 4)
        self._print_output()

    def start_procedure(self, procedure: py_host.ProcedureInput) -> py_host.ProcedureOutput:
        return parse_procedure_reply(
            self.start_procedure_json(procedure.model_dump_json().encode())
        )

    def start_procedure_json(self, data: bytes) -> bytes:
        ptr = self._lend(data)
        packed = self._func("start_procedure")(self._store, ptr, len(data))
        first = self._take_step(packed, ptr, len(data))
        return run_procedure(first, self._resume, self._executor)

    def _resume(self, answer: bytes) -> bytes:
        ptr = self._lend(answer)
        # No room for the reply in the answer's buffer (out_cap 0): it comes
        # packed in a buffer of its own, as start_procedure's does.
        packed = self._func("resume_procedure")(self._store, ptr, len(answer), ptr, 0)
        return self._take_step(packed, ptr, len(answer))

    def _take_step(self, packed: int, ptr: int, length: int) -> bytes:
        """A step's reply, copied out; its input and reply buffers freed and
        its output printed."""
        self._func("dealloc")(self._store, ptr, length)
        self._print_output()
        reply_ptr, reply_len = (packed & (2**64 - 1)) >> 32, packed & 0xFFFF_FFFF
        reply = self._read(reply_ptr, reply_len)
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
