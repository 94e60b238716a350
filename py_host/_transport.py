"""How py_host reaches into an instance: calls to its exports, reads and
writes of its linear memory, and host functions for its imports. This is the
only file that touches linear memory or calls into WebAssembly.

Two implementations of one interface. The fast one calls below wasmtime-py's
generic paths, through the C API's unchecked calls with preallocated
argument arrays, and moves bytes with one ``memmove`` on the memory's base
pointer: an empty call costs about a tenth of ``Func.__call__``. It relies on
wasmtime-py internals (``wasmtime._bindings``), so it is used only with the
wasmtime versions py_host's dependencies pin, and the public API stays as a
tested fallback (``PY_HOST_PUBLIC_API=1`` selects it).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import itertools
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import wasmtime

from ._interrupts import take_pending
from .errors import AbiViolation

Context = Any
"""Where a call or memory access happens: the Store's context for calls from
Python, the caller's inside a host function. Opaque outside this file."""

HostFunction = Callable[..., int | None]
"""A host function: ``(ctx, *i32_params) -> result``. It must not raise;
whatever it raises is recorded through ``on_error`` and traps the module."""

ResultType = Literal["i32", "i64"] | None
"""A host function's result: one i32, one i64, or none."""

TESTED_WASMTIME = ("50.",)
"""The wasmtime versions whose internals the fast transport was written for."""


class OutOfBounds(AbiViolation):
    """A pointer and length that reach outside linear memory."""


class Transport(Protocol):
    """Calls and memory of one instance."""

    store_context: Context
    """The context for calls made from Python (not from a host function)."""

    def call(self, ctx: Context, name: str, *args: int) -> int:
        """Call the export ``name`` (i32 params, one i32 or i64 result, or none)."""

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``; :class:`OutOfBounds` outside memory."""

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr``; :class:`OutOfBounds` outside memory."""

    def memory_size(self, ctx: Context) -> int:
        """The size of linear memory in bytes."""

    def set_deadline(self, ctx: Context, ticks: int) -> None:
        """Trap the module ``ticks`` epochs from now."""


WASMTIME_VERSION = importlib.metadata.version("wasmtime")


def _fast_path_available() -> bool:
    if os.environ.get("PY_HOST_PUBLIC_API") == "1":
        return False
    return WASMTIME_VERSION.startswith(TESTED_WASMTIME)


FAST = _fast_path_available()
"""Whether the fast transport is in use."""


def check_bounds(size: int, ptr: int, length: int) -> None:
    """Raise :class:`OutOfBounds` unless ``[ptr, ptr + length)`` fits in ``size`` bytes."""
    if ptr < 0 or length < 0 or ptr + length > size:
        raise OutOfBounds(f"{length} bytes at {ptr:#x} reach outside linear memory of {size} bytes")


def _i32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


class PublicTransport:
    """Through wasmtime-py's public API only."""

    def __init__(
        self,
        store: wasmtime.Store,
        memory: wasmtime.Memory,
        funcs: dict[str, wasmtime.Func],
        i64_results: frozenset[str],
    ) -> None:
        # A proxy, not the Store: wasmtime-py's global table of host functions
        # reaches this object, and a reference from here would keep the Store.
        self.store_context = weakref.proxy(store)
        self._memory = memory
        self._funcs = funcs

    def call(self, ctx: Context, name: str, *args: int) -> int:
        result = self._funcs[name](ctx, *(_i32(arg) for arg in args))
        return int(result) if result is not None else 0

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        check_bounds(self._memory.data_len(ctx), ptr, length)
        return bytes(self._memory.read(ctx, ptr, ptr + length))

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        check_bounds(self._memory.data_len(ctx), ptr, len(data))
        if data:
            self._memory.write(ctx, data, ptr)

    def memory_size(self, ctx: Context) -> int:
        return int(self._memory.data_len(ctx))

    def set_deadline(self, ctx: Context, ticks: int) -> None:
        # Store.set_epoch_deadline only needs a context, which a Caller has too.
        wasmtime.Store.set_epoch_deadline(ctx, ticks)


if FAST:
    from wasmtime import _bindings as ffi
    from wasmtime._ffi import dll

    _I32S_PER_VALUE = ctypes.sizeof(ffi.wasmtime_val_raw_t) // 4

    def _raw(name: str, result: Any, *params: Any) -> Any:
        """The C function ``name`` taking plain addresses: ctypes then skips
        the typed-pointer checks wasmtime-py's bindings make on every call."""
        return ctypes.CFUNCTYPE(result, *params)((name, dll))

    _ADDRESS = ctypes.c_void_p
    _CALL = _raw(
        "wasmtime_func_call_unchecked",
        _ADDRESS,
        _ADDRESS,
        _ADDRESS,
        _ADDRESS,
        ctypes.c_size_t,
        _ADDRESS,
    )
    _SET_DEADLINE = _raw("wasmtime_context_set_epoch_deadline", None, _ADDRESS, ctypes.c_uint64)
    _DATA = _raw("wasmtime_memory_data", _ADDRESS, _ADDRESS, _ADDRESS)
    _DATA_SIZE = _raw("wasmtime_memory_data_size", ctypes.c_size_t, _ADDRESS, _ADDRESS)
    _CALLER_CONTEXT = _raw("wasmtime_caller_context", _ADDRESS, _ADDRESS)
    _TRAP_POINTER = ctypes.POINTER(ffi.wasm_trap_t)
    _ERROR_POINTER = ctypes.POINTER(ffi.wasmtime_error_t)


def _address(pointer: Any) -> int:
    return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)


_MAX_VALUES = 4
"""The most parameters (or results) an export of the ABI has."""


class _CallSlot:
    """Where one call's arguments, results and trap go."""

    def __init__(self) -> None:
        self.values = (ffi.wasmtime_val_raw_t * _MAX_VALUES)()
        self.values_address = ctypes.addressof(self.values)
        # The same bytes as plain integers: setting an element costs less
        # than a union's field through a struct proxy. Value n's i32 is
        # i32s[_I32S_PER_VALUE * n]; a result's i64 is i64s[0].
        slots = ctypes.sizeof(self.values)
        self.i32s = (ctypes.c_int32 * (slots // 4)).from_buffer(self.values)
        self.i64s = (ctypes.c_int64 * (slots // 8)).from_buffer(self.values)
        self._new_trap()

    def _new_trap(self) -> None:
        self.trap = _TRAP_POINTER()
        self.trap_address = ctypes.addressof(self.trap)

    def take_trap(self) -> Any:
        """The trap a call left here, now the caller's; the slot is empty again."""
        trap = self.trap
        self._new_trap()
        return trap


class FastTransport:
    """Through the C API's unchecked calls and the memory's base pointer,
    with contexts, functions and arrays passed as plain addresses.

    py_host's engines never move memory (``memory_may_move`` is off), so the
    base address is read once. Every access is bounds-checked against the
    memory's size as last read, which is read again before refusing: memory
    only grows."""

    def __init__(
        self,
        store: wasmtime.Store,
        memory: wasmtime.Memory,
        funcs: dict[str, wasmtime.Func],
        i64_results: frozenset[str],
    ) -> None:
        # No reference to the Store, which the instance owns: one here would be
        # reachable from the registry of host functions, and never freed.
        self.store_context = _address(store._context())
        self._memory_struct = memory._memory
        self._memory = ctypes.addressof(memory._memory)
        self._base = int(_DATA(self.store_context, self._memory) or 0)
        self._size = int(_DATA_SIZE(self.store_context, self._memory))
        self._func_structs = [func._func for func in funcs.values()]
        self._funcs = {
            name: (ctypes.addressof(func._func), name in i64_results)
            for name, func in funcs.items()
        }
        self._slots: list[_CallSlot] = []
        """An argument array and a trap slot for each depth of calls: a host
        function may call an export while the outer call is still running."""
        self._depth = 0

    def call(self, ctx: Context, name: str, *args: int) -> int:
        depth = self._depth
        if depth == len(self._slots):
            self._slots.append(_CallSlot())
        slot = self._slots[depth]
        i32s = slot.i32s
        for index, arg in enumerate(args):
            i32s[_I32S_PER_VALUE * index] = arg - (1 << 32) if arg >= 1 << 31 else arg
        func, i64_result = self._funcs[name]
        self._depth = depth + 1
        try:
            error = _CALL(ctx, func, slot.values_address, _MAX_VALUES, slot.trap_address)
        finally:
            self._depth = depth
        if error:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, _ERROR_POINTER))
        if slot.trap:
            raise wasmtime.Trap._from_ptr(slot.take_trap())
        return slot.i64s[0] if i64_result else i32s[0]

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        self._check(ctx, ptr, length)
        return ctypes.string_at(self._base + ptr, length)

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        self._check(ctx, ptr, len(data))
        ctypes.memmove(self._base + ptr, data, len(data))

    def memory_size(self, ctx: Context) -> int:
        self._size = int(_DATA_SIZE(ctx, self._memory))
        return self._size

    def set_deadline(self, ctx: Context, ticks: int) -> None:
        _SET_DEADLINE(ctx, ticks)

    def _check(self, ctx: Context, ptr: int, length: int) -> None:
        if ptr < 0 or length < 0 or ptr + length > self._size:
            check_bounds(self.memory_size(ctx), ptr, length)


class Signature:
    """A host function's type: ``params`` i32s in, one i32 or i64 or nothing
    out."""

    def __init__(self, params: int, result: ResultType) -> None:
        self.params = params
        self.result = result
        self._func_types: dict[wasmtime.Engine, wasmtime.FuncType] = {}

    def func_type(self, engine: wasmtime.Engine) -> wasmtime.FuncType:
        """The wasmtime type, made once for each engine: making one costs
        more than defining a function with it, and wasmtime ties a type to
        the first engine that uses it (another engine aborts the process)."""
        func_type = self._func_types.get(engine)
        if func_type is None:
            i32 = wasmtime.ValType.i32()
            results = [] if self.result is None else [getattr(wasmtime.ValType, self.result)()]
            func_type = self._func_types.setdefault(
                engine, wasmtime.FuncType([i32] * self.params, results)
            )
        return func_type


@dataclass(frozen=True)
class _HostFunction:
    function: HostFunction
    on_error: Callable[[BaseException], None]
    params: int
    result: ResultType
    failure: bytes
    """The trap's message when the function raises."""


_host_functions: dict[int, _HostFunction] = {}
"""Every host function defined, by the number wasmtime hands back to the
trampoline; removed when wasmtime drops the function."""
_next_host_function = itertools.count(1)


def _trampoline(env: int, caller: int, values: Any, count: int) -> int:
    """Every host function's entry from WebAssembly: reads the raw arguments,
    runs the function, writes its result. A Python exception never crosses
    into wasmtime: it is recorded and the module traps."""
    # ctypes cannot pass an exception that escapes here on to wasmtime: it
    # would leave the returned trap pointer undefined. So nothing may.
    try:
        if take_pending():
            raise KeyboardInterrupt
        entry = _host_functions[env]
        ctx = _CALLER_CONTEXT(caller)
        result = entry.function(ctx, *(values[i].i32 & 0xFFFF_FFFF for i in range(entry.params)))
        if entry.result == "i64":
            values[0].i64 = result
        elif entry.result == "i32":
            values[0].i32 = result
        return 0
    except BaseException as error:
        failure = b"host function failed"
        try:
            entry = _host_functions[env]
            failure = entry.failure
            entry.on_error(error)
        except BaseException:  # the trap below still stops the module
            pass
        return _address(ffi.wasmtime_trap_new(failure, len(failure)))


def _forget(env: int) -> None:
    _host_functions.pop(env, None)


if FAST:
    # One C callback for all host functions, made once: making one per
    # function would cost a libffi closure each, on every instantiation.
    _C_TRAMPOLINE = ctypes.CFUNCTYPE(
        ctypes.c_size_t,
        ctypes.c_size_t,
        _ADDRESS,
        ctypes.POINTER(ffi.wasmtime_val_raw_t),
        ctypes.c_size_t,
    )(_trampoline)
    _C_FORGET = ctypes.CFUNCTYPE(None, ctypes.c_size_t)(_forget)
    _DEFINE = _raw(
        "wasmtime_linker_define_func_unchecked",
        _ADDRESS,
        _ADDRESS,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        _ADDRESS,
        _ADDRESS,
        ctypes.c_size_t,
        _ADDRESS,
    )


class FastHostFunctions:
    """Host functions reached through one C trampoline on the raw argument
    array: no wasmtime-py trampoline, and nothing raised through wasmtime-py's
    one global exception slot, which threads would share."""

    def define(
        self,
        linker: wasmtime.Linker,
        name: tuple[str, str],
        function: HostFunction,
        signature: Signature,
        *,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Define ``function`` as the import ``name`` (module, field)."""
        module, field = name
        env = next(_next_host_function)
        _host_functions[env] = _HostFunction(
            function,
            on_error,
            signature.params,
            signature.result,
            f"host function {field} failed".encode(),
        )
        module_bytes, name_bytes = module.encode(), field.encode()
        error = _DEFINE(
            _address(linker.ptr()),
            module_bytes,
            len(module_bytes),
            name_bytes,
            len(name_bytes),
            _address(signature.func_type(linker.engine).ptr()),
            _address(_C_TRAMPOLINE),
            env,
            _address(_C_FORGET),
        )
        if error:
            _host_functions.pop(env, None)
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, _ERROR_POINTER))


class PublicHostFunctions:
    """Host functions through ``Linker.define_func``."""

    def define(
        self,
        linker: wasmtime.Linker,
        name: tuple[str, str],
        function: HostFunction,
        signature: Signature,
        *,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Define ``function`` as the import ``name`` (module, field)."""

        def host(caller: wasmtime.Caller, *args: int) -> int | None:
            try:
                if take_pending():
                    raise KeyboardInterrupt
                return function(caller, *(arg & 0xFFFF_FFFF for arg in args))
            except BaseException as error:
                on_error(error)
                raise

        linker.define_func(*name, signature.func_type(linker.engine), host, access_caller=True)


def transport(
    store: wasmtime.Store,
    memory: wasmtime.Memory,
    funcs: dict[str, wasmtime.Func],
    *,
    i64_results: frozenset[str],
) -> Transport:
    """The transport for an instance's memory and exports; ``i64_results``
    names the exports that return an i64."""
    return (FastTransport if FAST else PublicTransport)(store, memory, funcs, i64_results)


def host_functions() -> FastHostFunctions | PublicHostFunctions:
    """A definer of host functions, to keep with the instance it serves."""
    return FastHostFunctions() if FAST else PublicHostFunctions()
