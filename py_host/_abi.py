"""The raw ABI of docs/ABI.md: the module's exports, packed pointers, and
the bounds-checked reads and writes of linear memory. This is the only file
of py_host that touches linear memory; nothing the module returns is used
before it has been checked here."""

from __future__ import annotations

import struct

import wasmtime

from .errors import AbiViolation, LimitExceeded, LoadError

ABI_VERSION = 1
"""The version of docs/ABI.md this host speaks."""
NOT_GRANTED = -1
"""What ``execute_round`` returns when no executor was granted."""
ANSWER_REFUSED = -2
"""What ``execute_round`` returns when the request could not be answered."""

MAX_INPUT = 2**31 - 1
"""The most bytes one input buffer can hold: lengths are i32."""

Context = wasmtime.Store | wasmtime.Caller
"""A Store from Python, or the Caller inside a host function."""

_FUNCTIONS = {
    "alloc": ([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]),
    "dealloc": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()]),
    "free_mem": ([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]),
    "live_allocations": ([], [wasmtime.ValType.i32()]),
    "abi_version": ([], [wasmtime.ValType.i32()]),
    "print_string": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i64()]),
    "print_int": ([wasmtime.ValType.i32()], [wasmtime.ValType.i64()]),
    "start_procedure": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i64()]),
}


class OutOfBounds(AbiViolation):
    """A pointer and length that reach outside linear memory."""


def u32(value: int) -> int:
    """An i32 from wasmtime, which arrives signed, as the unsigned pointer or
    length the ABI means."""
    return value & 0xFFFF_FFFF


def pack(ptr: int, length: int) -> int:
    """A buffer as the signed i64 of the ABI: pointer high, length low."""
    packed = (ptr << 32) | length
    return packed - (1 << 64) if packed >= 1 << 63 else packed


def unpack(packed: int) -> tuple[int, int]:
    """The pointer and length in a packed i64 (read as unsigned)."""
    packed &= (1 << 64) - 1
    return packed >> 32, packed & 0xFFFF_FFFF


class Exports:
    """The ABI exports of one instance, checked against docs/ABI.md."""

    def __init__(
        self, instance: wasmtime.Instance, store: wasmtime.Store, max_reply_bytes: int
    ) -> None:
        self._max_reply_bytes = max_reply_bytes
        exports = instance.exports(store)
        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise LoadError("the module does not export its linear memory as 'memory'")
        self.memory = memory
        funcs: dict[str, wasmtime.Func] = {}
        for name, (params, results) in _FUNCTIONS.items():
            func = exports.get(name)
            if not isinstance(func, wasmtime.Func):
                raise LoadError(f"the module does not export the function {name!r}")
            ty = func.type(store)
            if [str(p) for p in ty.params] != [str(p) for p in params] or [
                str(r) for r in ty.results
            ] != [str(r) for r in results]:
                raise LoadError(f"the module's {name!r} does not have the ABI's signature")
            funcs[name] = func
        self._alloc = funcs["alloc"]
        self._dealloc = funcs["dealloc"]
        self._free_mem = funcs["free_mem"]
        self._live_allocations = funcs["live_allocations"]
        self._print_string = funcs["print_string"]
        self._print_int = funcs["print_int"]
        self._start_procedure = funcs["start_procedure"]
        version = funcs["abi_version"](store)
        if version != ABI_VERSION:
            raise LoadError(
                f"the module speaks ABI version {version}; this py_host speaks {ABI_VERSION}"
            )

    # Linear memory, bounds-checked.

    def memory_size(self, ctx: Context) -> int:
        """The size of linear memory in bytes."""
        return self.memory.data_len(ctx)

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``."""
        self._check_bounds(ctx, ptr, length)
        return bytes(self.memory.read(ctx, ptr, ptr + length))

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr``."""
        self._check_bounds(ctx, ptr, len(data))
        if data:
            self.memory.write(ctx, data, ptr)

    def read_u32s(self, ctx: Context, ptr: int, count: int) -> tuple[int, ...]:
        """``count`` little-endian u32 values at ``ptr``."""
        return struct.unpack(f"<{count}I", self.read(ctx, ptr, 4 * count))

    def write_u32(self, ctx: Context, ptr: int, value: int) -> None:
        self.write(ctx, ptr, struct.pack("<I", value))

    def _check_bounds(self, ctx: Context, ptr: int, length: int) -> None:
        size = self.memory.data_len(ctx)
        if ptr < 0 or length < 0 or ptr + length > size:
            raise OutOfBounds(
                f"{length} bytes at {ptr:#x} reach outside linear memory of {size} bytes"
            )

    # Buffers.

    def lend(self, ctx: Context, data: bytes) -> int:
        """Copy ``data`` into a new buffer from ``alloc`` and return its pointer."""
        ptr = u32(self._alloc(ctx, len(data)))
        if ptr == 0:
            raise LimitExceeded("memory", f"the module could not allocate {len(data)} bytes")
        self.write(ctx, ptr, data)
        return ptr

    def dealloc(self, ctx: Context, ptr: int, length: int) -> bool:
        """Free a live buffer; False when ``(ptr, length)`` was not live."""
        return bool(self._dealloc(ctx, ptr, length) == 0)

    def free_mem(self, ctx: Context, ptr: int) -> bool:
        """The tutorial's free of a reply; False when ``ptr`` was not a live reply."""
        return bool(self._free_mem(ctx, ptr) == 0)

    def live_allocations(self, ctx: Context) -> int:
        return int(self._live_allocations(ctx))

    def take_reply(self, ctx: Context, function: str, packed: int) -> bytes:
        """Copy out and free the reply a call returned."""
        ptr, length = unpack(packed)
        self._check_reply_size(ctx, function, ptr, length)
        try:
            reply = self.read(ctx, ptr, length)
        except OutOfBounds as error:
            raise AbiViolation(f"{function} returned a reply outside memory: {error}") from None
        if not self.dealloc(ctx, ptr, length):
            raise AbiViolation(f"{function} returned a reply that is not a live buffer")
        return reply

    # The tutorial's functions. Input buffers are freed after a call that
    # returned; after a trap the whole instance is discarded instead.

    def print_string(self, ctx: Context, text: bytes) -> bytes | None:
        """None when printed, else the error reply."""
        packed = self._call_with_input(ctx, self._print_string, text)
        return self.take_reply(ctx, "print_string", packed) if packed else None

    def print_int(self, ctx: Context, value: int) -> bytes | None:
        """None when printed, else the error reply."""
        ptr = self.lend(ctx, struct.pack("<i", value))
        packed: int = self._print_int(ctx, ptr)
        self.dealloc(ctx, ptr, 4)
        return self.take_reply(ctx, "print_int", packed) if packed else None

    def start_procedure(self, ctx: Context, data: bytes) -> bytes:
        """The reply document (``ok`` or ``error``) for UTF-8 JSON input."""
        return self.take_reply(ctx, "start_procedure", self._start(ctx, data))

    def start_procedure_unread(self, ctx: Context, data: bytes) -> tuple[int, int]:
        """Run a procedure and leave its reply in memory: ``(ptr, length)``."""
        ptr, length = unpack(self._start(ctx, data))
        self._check_reply_size(ctx, "start_procedure", ptr, length)
        self._check_bounds(ctx, ptr, length)
        return ptr, length

    def _check_reply_size(self, ctx: Context, function: str, ptr: int, length: int) -> None:
        if length > self._max_reply_bytes:
            self.dealloc(ctx, ptr, length)
            raise LimitExceeded(
                "reply", f"{function} returned {length} bytes, more than {self._max_reply_bytes}"
            )

    def _start(self, ctx: Context, data: bytes) -> int:
        packed = self._call_with_input(ctx, self._start_procedure, data)
        if packed == 0:
            raise AbiViolation("start_procedure returned no reply")
        return packed

    def _call_with_input(self, ctx: Context, func: wasmtime.Func, data: bytes) -> int:
        ptr = self.lend(ctx, data)
        packed: int = func(ctx, ptr, len(data))
        self.dealloc(ctx, ptr, len(data))
        return packed
