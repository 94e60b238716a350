"""The ABI of docs/ABI.md: the module's exports, packed pointers, buffers
and their owners. Nothing the module returns is used before it has been
checked here; the bytes themselves move through ``_transport``."""

from __future__ import annotations

import struct

import wasmtime

from ._transport import Context, OutOfBounds, check_bounds, transport
from .errors import AbiViolation, LimitExceeded, LoadError

ABI_VERSION = 2
"""The version of docs/ABI.md this host speaks."""
NOT_GRANTED = 0
"""What ``execute_round`` returns when no executor was granted."""
IMPORTS = frozenset(
    {
        ("wasi_snapshot_preview1", "fd_write"),
        ("wasi_snapshot_preview1", "random_get"),
        ("wasi_snapshot_preview1", "environ_get"),
        ("wasi_snapshot_preview1", "environ_sizes_get"),
        ("wasi_snapshot_preview1", "proc_exit"),
        ("host", "execute_round"),
        ("host", "report_panic"),
    }
)
"""Everything the host grants; a module importing anything else is refused."""

MAX_INPUT = 2**31 - 1
"""The most bytes one input buffer can hold: lengths are i32."""

_MAX_VERSION_BYTES = 256
_FIRST_INPUT_BYTES = 4096
_KEPT_INPUT_BYTES = 64 * 1024
"""Inputs up to this size reuse one buffer; larger ones get their own, so a
huge input does not leave a huge buffer behind."""

_I64_RESULTS = frozenset(
    {"crate_version", "print_string", "print_int", "start_procedure", "start_procedure_into"}
)
_FUNCTIONS = {
    "alloc": ([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]),
    "dealloc": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()]),
    "free_mem": ([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]),
    "live_allocations": ([], [wasmtime.ValType.i32()]),
    "abi_version": ([], [wasmtime.ValType.i32()]),
    "crate_version": ([], [wasmtime.ValType.i64()]),
    "print_string": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i64()]),
    "print_int": ([wasmtime.ValType.i32()], [wasmtime.ValType.i64()]),
    "start_procedure": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i64()]),
    "start_procedure_into": ([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i64()]),
}


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


def check_module(module: wasmtime.Module) -> None:
    """Raise :class:`LoadError` unless ``module`` imports only what the host
    grants and exports what the ABI says, with the ABI's signatures.
    Checked once per module, not per instance."""
    for wanted in module.imports:
        if (wanted.module, wanted.name) not in IMPORTS:
            raise LoadError(
                f"the module imports {wanted.module}::{wanted.name}, which this host does not grant"
            )
    types = {export.name: export.type for export in module.exports}
    if not isinstance(types.get("memory"), wasmtime.MemoryType):
        raise LoadError("the module does not export its linear memory as 'memory'")
    for name, (params, results) in _FUNCTIONS.items():
        ty = types.get(name)
        speaks = f"ABI version {ABI_VERSION}, which this py_host speaks"
        if not isinstance(ty, wasmtime.FuncType):
            raise LoadError(f"the module does not export the function {name!r} of {speaks}")
        if [str(p) for p in ty.params] != [str(p) for p in params] or [
            str(r) for r in ty.results
        ] != [str(r) for r in results]:
            raise LoadError(f"the module's {name!r} does not have the signature of {speaks}")


class Exports:
    """The ABI exports of an instance of a module that passed :func:`check_exports`."""

    def __init__(
        self, instance: wasmtime.Instance, store: wasmtime.Store, max_reply_bytes: int
    ) -> None:
        self._max_reply_bytes = max_reply_bytes
        exports = instance.exports(store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        funcs: dict[str, wasmtime.Func] = {}
        for name in _FUNCTIONS:
            func = exports[name]
            assert isinstance(func, wasmtime.Func)
            funcs[name] = func
        self._transport = transport(store, memory, funcs, i64_results=_I64_RESULTS)
        self.store_context = self._transport.store_context
        self.set_deadline = self._transport.set_deadline
        """Trap the module ``ticks`` epochs from now: ``set_deadline(ctx, ticks)``."""
        version = self._transport.call(self.store_context, "abi_version")
        if version != ABI_VERSION:
            raise LoadError(
                f"the module speaks ABI version {version}; this py_host speaks {ABI_VERSION}"
            )
        self._input: tuple[int, int] | None = None
        """A buffer from alloc kept for small inputs, ``(ptr, capacity)``, so a
        call needs no alloc and dealloc of its own."""

    def crate_version(self, ctx: Context) -> str:
        """The module's own version, from its ``crate_version`` export."""
        ptr, length = unpack(self._transport.call(ctx, "crate_version"))
        try:
            if length > _MAX_VERSION_BYTES:
                raise ValueError(f"{length} bytes long")
            return self.read(ctx, ptr, length).decode()
        except (OutOfBounds, ValueError) as error:
            raise LoadError(f"the module's crate_version is not a version: {error}") from None

    # Linear memory.

    def memory_size(self, ctx: Context) -> int:
        """The size of linear memory in bytes."""
        return self._transport.memory_size(ctx)

    def read(self, ctx: Context, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``."""
        return self._transport.read(ctx, ptr, length)

    def write(self, ctx: Context, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr``."""
        self._transport.write(ctx, ptr, data)

    def read_u32s(self, ctx: Context, ptr: int, count: int) -> tuple[int, ...]:
        """``count`` little-endian u32 values at ``ptr``."""
        return struct.unpack(f"<{count}I", self.read(ctx, ptr, 4 * count))

    def write_u32(self, ctx: Context, ptr: int, value: int) -> None:
        self.write(ctx, ptr, struct.pack("<I", value))

    # Buffers.

    def lend(self, ctx: Context, data: bytes) -> int:
        """Copy ``data`` into a new buffer from ``alloc`` and return its pointer."""
        ptr = u32(self._transport.call(ctx, "alloc", len(data)))
        if ptr == 0:
            raise LimitExceeded("memory", f"the module could not allocate {len(data)} bytes")
        self.write(ctx, ptr, data)
        return ptr

    def dealloc(self, ctx: Context, ptr: int, length: int) -> bool:
        """Free a live buffer; False when ``(ptr, length)`` was not live."""
        return self._transport.call(ctx, "dealloc", ptr, length) == 0

    def free_mem(self, ctx: Context, ptr: int) -> bool:
        """The tutorial's free of a reply; False when ``ptr`` was not a live reply."""
        return self._transport.call(ctx, "free_mem", ptr) == 0

    def live_allocations(self, ctx: Context) -> int:
        """The live buffers, but for the one this host keeps for inputs."""
        live = self._transport.call(ctx, "live_allocations")
        return live - (self._input is not None)

    def take_reply(
        self, ctx: Context, function: str, packed: int, held: tuple[int, int] | None = None
    ) -> bytes:
        """Copy out and free the reply a call returned; ``held`` is the input
        buffer the call was given, if the host still holds it."""
        ptr, length = unpack(packed)
        self._refuse_input_as_reply(function, ptr, length, held)
        self._check_reply_size(ctx, function, ptr, length)
        try:
            reply = self.read(ctx, ptr, length)
        except OutOfBounds as error:
            raise AbiViolation(f"{function} returned a reply outside memory: {error}") from None
        if not self.dealloc(ctx, ptr, length):
            raise AbiViolation(f"{function} returned a reply that is not a live buffer")
        return reply

    # The tutorial's functions, called from Python. After a trap the whole
    # instance is discarded, with every buffer in it.

    def print_string(self, ctx: Context, text: bytes) -> bytes | None:
        """None when printed, else the error reply."""
        packed = self._call_with_input(ctx, "print_string", text)
        return self.take_reply(ctx, "print_string", packed) if packed else None

    def print_int(self, ctx: Context, value: int) -> bytes | None:
        """None when printed, else the error reply."""
        packed = self._call_with_input(ctx, "print_int", struct.pack("<i", value))
        return self.take_reply(ctx, "print_int", packed) if packed else None

    def start_procedure(self, ctx: Context, data: bytes) -> bytes:
        """The reply document (``ok`` or ``error``) for UTF-8 JSON input.

        The module writes the reply over the input's buffer when it fits, so
        most calls cross into the module once and free nothing."""
        ptr, capacity = self._hold_input(ctx, data)
        packed = self._transport.call(ctx, "start_procedure_into", ptr, len(data), ptr, capacity)
        if packed == 0:
            raise AbiViolation("start_procedure_into returned no reply")
        reply_ptr, length = unpack(packed)
        if reply_ptr:
            reply = self.take_reply(ctx, "start_procedure_into", packed, held=(ptr, capacity))
        elif length > capacity:
            raise AbiViolation(
                f"start_procedure_into wrote {length} bytes into a buffer of {capacity}"
            )
        else:
            self._check_reply_size(ctx, "start_procedure_into", 0, length)
            reply = self.read(ctx, ptr, length)
        self._drop_input(ctx, ptr, capacity)
        return reply

    def start_procedure_unread(self, ctx: Context, data: bytes) -> tuple[int, int]:
        """Run a procedure and leave its reply in memory: ``(ptr, length)``."""
        ptr, length = unpack(self._start(ctx, data))
        self._refuse_input_as_reply("start_procedure", ptr, length, None)
        self._check_reply_size(ctx, "start_procedure", ptr, length)
        check_bounds(self.memory_size(ctx), ptr, length)
        return ptr, length

    def _refuse_input_as_reply(
        self, function: str, ptr: int, length: int, held: tuple[int, int] | None
    ) -> None:
        # Freeing such a "reply" would free the host's own buffer, which it
        # then writes the next input into.
        for buffer in (self._input, held):
            if buffer is not None and ptr < buffer[0] + buffer[1] and buffer[0] < ptr + length:
                raise AbiViolation(f"{function} returned a reply inside the host's input buffer")

    def _check_reply_size(self, ctx: Context, function: str, ptr: int, length: int) -> None:
        if length > self._max_reply_bytes:
            if ptr:
                self.dealloc(ctx, ptr, length)
            raise LimitExceeded(
                "reply", f"{function} returned {length} bytes, more than {self._max_reply_bytes}"
            )

    def _start(self, ctx: Context, data: bytes) -> int:
        packed = self._call_with_input(ctx, "start_procedure", data)
        if packed == 0:
            raise AbiViolation("start_procedure returned no reply")
        return packed

    def _call_with_input(self, ctx: Context, function: str, data: bytes) -> int:
        """Call ``function`` with ``data`` in a buffer from ``alloc``."""
        ptr, capacity = self._hold_input(ctx, data)
        if function == "print_int":
            packed = self._transport.call(ctx, function, ptr)
        else:
            packed = self._transport.call(ctx, function, ptr, len(data))
        self._drop_input(ctx, ptr, capacity)
        return packed

    def _hold_input(self, ctx: Context, data: bytes) -> tuple[int, int]:
        """A buffer from ``alloc`` holding ``data``, ``(ptr, capacity)``: the
        kept input buffer when it fits, else one made for this call, which
        :meth:`_drop_input` frees."""
        if len(data) > _KEPT_INPUT_BYTES:
            return self.lend(ctx, data), len(data)
        if self._input is None or self._input[1] < len(data):
            if self._input is not None:
                self._free_input(ctx, *self._input)
                self._input = None
            capacity = max(len(data), _FIRST_INPUT_BYTES)
            self._input = (self.lend(ctx, bytes(capacity)), capacity)
        ptr, capacity = self._input
        self.write(ctx, ptr, data)
        return ptr, capacity

    def _drop_input(self, ctx: Context, ptr: int, capacity: int) -> None:
        if self._input is None or ptr != self._input[0]:
            self._free_input(ctx, ptr, capacity)

    def _free_input(self, ctx: Context, ptr: int, capacity: int) -> None:
        if not self.dealloc(ctx, ptr, capacity):
            raise AbiViolation(
                f"the module lost the host's input buffer ({capacity} bytes at {ptr})"
            )
