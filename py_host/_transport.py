"""How py_host reaches into an instance: calls to its exports, and reads and
writes of its linear memory. This is the only file that touches linear
memory or calls into WebAssembly. The module has no import py_host
implements, so no Python code here is ever called from WebAssembly.

Two implementations of one interface. The fast one calls below wasmtime-py's
generic paths, through the C API's unchecked calls with preallocated
argument arrays, and moves bytes through a ``memoryview`` of linear memory
in place: an empty call costs about a twentieth of ``Func.__call__``. It relies on
wasmtime-py internals (``wasmtime._bindings``), so it is used only with the
wasmtime versions py_host's dependencies pin, and the public API stays as a
tested fallback (``PY_HOST_PUBLIC_API=1`` selects it).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import struct
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, cast

import wasmtime

from .errors import AbiViolation, LoadError

Context = Any
"""The Store's context, where a call or memory access happens. Opaque
outside this file."""

TESTED_WASMTIME = ("50.",)
"""The wasmtime versions whose internals the fast transport was written for."""


class OutOfBounds(AbiViolation):
    """A pointer and length that reach outside linear memory."""


class Transport(Protocol):
    """Calls and memory of one instance."""

    store_context: Context
    """The Store's context, for calls and memory accesses."""

    def call(self, ctx: Context, name: str, *args: int) -> int:
        """Call the export ``name`` (i32 params, one i32 or i64 result, or none)."""

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``; :class:`OutOfBounds` outside memory."""

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr``; :class:`OutOfBounds` outside memory."""

    def u32_reader(self, ctx: Context, ptr: int, count: int) -> Callable[[int], int]:
        """A function that reads the ``n``-th of the ``count`` little-endian
        u32s at ``ptr`` (which must lie inside memory, as it only grows) each
        time it is called with ``n``."""

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
        instance: wasmtime.Instance,
        names: Iterable[str],
        i64_results: frozenset[str],
    ) -> None:
        self.store_context = store
        exports = instance.exports(store)
        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise _not_exported("memory")
        self._memory = memory
        self._funcs: dict[str, wasmtime.Func] = {}
        for name in names:
            func = exports.get(name)
            if not isinstance(func, wasmtime.Func):
                raise _not_exported(name)
            self._funcs[name] = func

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

    def u32_reader(self, ctx: Context, ptr: int, count: int) -> Callable[[int], int]:
        check_bounds(self.memory_size(ctx), ptr, 4 * count)
        return lambda n: int(struct.unpack("<I", self.read(ctx, ptr + 4 * n, 4))[0])

    def memory_size(self, ctx: Context) -> int:
        return int(self._memory.data_len(ctx))

    def set_deadline(self, ctx: Context, ticks: int) -> None:
        ctx.set_epoch_deadline(ticks)


if FAST:
    from wasmtime import _bindings as ffi
    from wasmtime._ffi import WASMTIME_EXTERN_FUNC, WASMTIME_EXTERN_MEMORY, dll

    def _raw(name: str, result: Any, *params: Any) -> Any:
        """The C function ``name`` taking plain addresses: ctypes then skips
        the typed-pointer checks wasmtime-py's bindings make on every call.
        It lets the GIL go while it runs, as running WebAssembly must."""
        return ctypes.CFUNCTYPE(result, *params)((name, dll))

    def _quick(name: str, result: Any, *params: Any) -> Any:
        """Like :func:`_raw`, but for a function that returns at once: it
        keeps the GIL, so it never waits to take it back from another thread
        (the epoch clock, busy threads), which costs more than the call."""
        return ctypes.PYFUNCTYPE(result, *params)((name, dll))

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
    _SET_DEADLINE = _quick("wasmtime_context_set_epoch_deadline", None, _ADDRESS, ctypes.c_uint64)
    _DATA = _quick("wasmtime_memory_data", _ADDRESS, _ADDRESS, _ADDRESS)
    _DATA_SIZE = _quick("wasmtime_memory_data_size", ctypes.c_size_t, _ADDRESS, _ADDRESS)
    _STORE_DELETE = _raw("wasmtime_store_delete", None, _ADDRESS)
    # Also keeps the GIL for the epoch clock, which advances each tick it
    # owes in one go while other threads wait for the GIL.
    _INCREMENT_EPOCH = _quick("wasmtime_engine_increment_epoch", None, _ADDRESS)
    _TRAP_POINTER = ctypes.POINTER(ffi.wasm_trap_t)
    _ERROR_POINTER = ctypes.POINTER(ffi.wasmtime_error_t)
    _EXPORT_GET = _quick(
        "wasmtime_instance_export_get",
        ctypes.c_bool,
        _ADDRESS,
        _ADDRESS,
        ctypes.c_char_p,
        ctypes.c_size_t,
        _ADDRESS,
    )
    _EXTERN_FUNC = WASMTIME_EXTERN_FUNC.value
    _EXTERN_MEMORY = WASMTIME_EXTERN_MEMORY.value
    _EXTERN_OF = ffi.wasmtime_extern_t.of.offset
    """Where in a ``wasmtime_extern_t`` its function or memory lies."""
    # A view of linear memory without a ctypes array type for its size:
    # making one took 30 µs, at the first instance and at each growth.
    _MEMORY_VIEW = ctypes.PYFUNCTYPE(ctypes.py_object, _ADDRESS, ctypes.c_ssize_t, ctypes.c_int)(
        ("PyMemoryView_FromMemory", ctypes.pythonapi)
    )
    _PYBUF_WRITE = 0x200


def _address(pointer: Any) -> int:
    return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)


_MAX_VALUES = 4
"""The most parameters (or results) an export of the ABI has."""

if FAST:
    _VALUES = ffi.wasmtime_val_raw_t * _MAX_VALUES
    _VALUE_BYTES = ctypes.sizeof(ffi.wasmtime_val_raw_t)
    # The ABI's parameters are pointers and lengths, all u32: packed with
    # one struct call, each into the low four bytes of its value.
    _PACKERS = [
        struct.Struct("<" + f"I{_VALUE_BYTES - 4}x" * count).pack_into
        for count in range(_MAX_VALUES + 1)
    ]


class FastTransport:
    """Through the C API's unchecked calls and a view of linear memory,
    with contexts, functions and arrays passed as ready-made C values.

    py_host's engines never move memory (``memory_may_move`` is off), so
    its base address is read once and viewed in place. Every access is
    bounds-checked against the memory's size as last read, which is read
    again (and the view made anew) before refusing: memory only grows."""

    def __init__(
        self,
        store: wasmtime.Store,
        instance: wasmtime.Instance,
        names: Iterable[str],
        i64_results: frozenset[str],
    ) -> None:
        self.store_context = context = _address(store._context())
        # Only the exports py_host calls, each looked up by name in C:
        # wasmtime-py's exports() wraps every export in Python objects, which
        # took a fifth of a load's time.
        instance_address = ctypes.addressof(instance._instance)
        self._memory_extern = _export(context, instance_address, "memory", _EXTERN_MEMORY)
        self._memory = ctypes.addressof(self._memory_extern) + _EXTERN_OF
        self._base = int(_DATA(context, self._memory) or 0)
        self._size = 0
        self._view = memoryview(b"")
        self.memory_size(context)
        # One array for every call's arguments and results, and one trap
        # pointer: WebAssembly never calls back into Python, so calls on an
        # instance never nest.
        self._values = _VALUES()
        self._values_bytes = memoryview(self._values).cast("B")
        self._i32_result = ctypes.c_int32.from_buffer(self._values)
        self._i64_result = ctypes.c_int64.from_buffer(self._values)
        self._trap = ctypes.c_void_p()
        self._func_externs = {n: _export(context, instance_address, n, _EXTERN_FUNC) for n in names}
        # Each export's call with its C arguments made once: converting
        # Python ints to C on every call was half an empty call's time.
        fixed = (
            ctypes.c_void_p(context),
            ctypes.c_void_p(ctypes.addressof(self._values)),
            ctypes.c_size_t(_MAX_VALUES),
            ctypes.c_void_p(ctypes.addressof(self._trap)),
        )
        self._funcs = {
            name: (
                partial(
                    _CALL,
                    fixed[0],
                    ctypes.c_void_p(ctypes.addressof(extern) + _EXTERN_OF),
                    *fixed[1:],
                ),
                name in i64_results,
            )
            for name, extern in self._func_externs.items()
        }

    def call(self, ctx: Context, name: str, *args: int) -> int:
        call, i64_result = self._funcs[name]
        if args:
            _PACKERS[len(args)](self._values_bytes, 0, *args)
        error = call()
        if error:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, _ERROR_POINTER))
        trap = self._trap.value
        if trap:
            self._trap.value = None
            raise wasmtime.Trap._from_ptr(ctypes.cast(trap, _TRAP_POINTER))
        return self._i64_result.value if i64_result else self._i32_result.value

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        if ptr < 0 or length < 0 or ptr + length > self._size:
            check_bounds(self.memory_size(ctx), ptr, length)
        return self._view[ptr : ptr + length].tobytes()

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        if ptr < 0 or ptr + len(data) > self._size:
            check_bounds(self.memory_size(ctx), ptr, len(data))
        self._view[ptr : ptr + len(data)] = data

    def u32_reader(self, ctx: Context, ptr: int, count: int) -> Callable[[int], int]:
        check_bounds(self.memory_size(ctx), ptr, 4 * count)
        # A view straight onto linear memory, which never moves: reading it
        # costs no copy. (WebAssembly is little-endian; so is every platform
        # wasmtime-py ships for.)
        reader: Callable[[int], int] = self._view[ptr : ptr + 4 * count].cast("I").__getitem__
        return reader

    def memory_size(self, ctx: Context) -> int:
        size = int(_DATA_SIZE(ctx, self._memory))
        if size != self._size:
            self._view = _MEMORY_VIEW(self._base, size, _PYBUF_WRITE)
            self._size = size
        return size

    def set_deadline(self, ctx: Context, ticks: int) -> None:
        _SET_DEADLINE(ctx, ticks)


def _export(context: int, instance: int, name: str, kind: int) -> Any:
    """The ``wasmtime_extern_t`` of the export ``name``, which must be of ``kind``."""
    extern = ffi.wasmtime_extern_t()
    encoded = name.encode()
    found = _EXPORT_GET(context, instance, encoded, len(encoded), ctypes.addressof(extern))
    if not found or cast(int, extern.kind) != kind:
        raise _not_exported(name)
    return extern


def _not_exported(name: str) -> LoadError:
    # check_module refuses such a module before any instance of it is made.
    return LoadError(f"the module does not export {name!r} as the ABI says")


def transport(
    store: wasmtime.Store,
    instance: wasmtime.Instance,
    names: Iterable[str],
    *,
    i64_results: frozenset[str],
) -> Transport:
    """The transport for ``instance``'s memory and its functions ``names``;
    ``i64_results`` names those that return an i64."""
    return (FastTransport if FAST else PublicTransport)(store, instance, names, i64_results)


def epoch_incrementer(engine: wasmtime.Engine) -> Callable[[int], None]:
    """A function that advances ``engine``'s epoch by ``ticks``, holding the
    GIL throughout when it can (through the public API each tick lets the
    GIL go, and must wait for it again)."""
    if not FAST:

        def advance_publicly(ticks: int) -> None:
            for _ in range(ticks):
                engine.increment_epoch()

        return advance_publicly
    address = _address(engine.ptr())

    def advance(ticks: int) -> None:
        for _ in range(ticks):
            _INCREMENT_EPOCH(address)

    return advance


def close_store(store: wasmtime.Store) -> None:
    """Free ``store`` now, at most once whatever exception lands meanwhile.

    wasmtime-py's ``close()`` deletes the Store and only then forgets its
    pointer: an exception raised between the two (a signal handler's, say)
    leaves the pointer for ``__del__`` to delete again, and the process
    crashes. Here the pointer is forgotten first, by attribute stores, at
    which Python raises nothing, and the delete is one C call. The object
    then becomes a :class:`_ClosedStore`, which has no finalizer: a
    finalizer is Python code too, and an exception raised in it (a signal
    handler's) would only be printed and lost. Through the public API alone
    none of this can be done: the Store is left to ``__del__``, which runs
    once, when the last reference goes."""
    if not FAST:
        return
    ptr = getattr(store, "_Managed__ptr", None)
    if ptr is None:
        return
    address = _address(ptr)
    store._Managed__ptr = None  # type: ignore[attr-defined]
    store._Store__context = None  # type: ignore[attr-defined]
    _STORE_DELETE(address)
    store.__class__ = _ClosedStore  # type: ignore[assignment]


_T = TypeVar("_T")


class _ClosedStore(Generic[_T]):
    """What a Store is once :func:`close_store` freed it: nothing to free.
    Generic, as Store is, so that Python lets an object change between the
    two classes."""
