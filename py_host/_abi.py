"""The ABI of docs/ABI.md: the module's exports, packed pointers, buffers
and their owners. Nothing the module returns is used before it has been
checked here; the bytes themselves move through ``_transport``."""

from __future__ import annotations

import contextlib
import struct

import wasmtime

from ._engine import EPOCH_CLOCK, deadline_ticks
from ._transport import Context, OutOfBounds, check_bounds, close_store, transport
from ._wire import check_status
from .errors import AbiViolation, LimitExceeded, LoadError

ABI_VERSION = 3
"""The version of docs/ABI.md this host speaks."""
_I32 = wasmtime.ValType.i32()
IMPORTS = {
    ("wasi_snapshot_preview1", "fd_write"): ([_I32] * 4, [_I32]),
    ("wasi_snapshot_preview1", "environ_get"): ([_I32] * 2, [_I32]),
    ("wasi_snapshot_preview1", "environ_sizes_get"): ([_I32] * 2, [_I32]),
    ("wasi_snapshot_preview1", "proc_exit"): ([_I32], []),
}
"""The imports a module may have, with their types (params, results), which
Rust's standard library links in and the module never calls: the host
defines each as a function that traps, with no Python behind it. A module
importing anything else, or one of these with another type, is refused."""
_LITTLE_ENDIAN_I32 = struct.Struct("<i")
"""print_int's input."""
ROUND_PREFIX = b'{"round":'
"""How a step reply that asks for a round begins."""

MAX_INPUT = 2**31 - 1
"""The most bytes one input buffer can hold: lengths are i32."""

_MAX_VERSION_BYTES = 256
_MAX_TRAP_REPORT = 64 * 1024
_OUTPUT_PTR, _OUTPUT_LEN, _TRAP_PTR, _TRAP_LEN = range(4)
"""The outbox's fields, in order."""
_PROBE_SECONDS = 1.0
_PROBE_FUEL = 100_000_000
_FIRST_INPUT_BYTES = 4096
_KEPT_INPUT_BYTES = 64 * 1024
"""The kept buffer grows for a larger input or procedure, and is let go
after it down to nothing above this size."""

_I64_RESULTS = frozenset(
    {
        "crate_version",
        "print_string",
        "print_int",
        "start_procedure",
        "start_procedure_into",
        "resume_procedure",
    }
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
    "resume_procedure": ([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i64()]),
    "cancel_procedure": ([], [wasmtime.ValType.i32()]),
    "grant_executor": ([], []),
    "outbox": ([], [wasmtime.ValType.i32()]),
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


def check_module(module: wasmtime.Module, engine: wasmtime.Engine | None) -> None:
    """Raise :class:`LoadError` unless ``module`` imports only what the ABI
    allows and exports what it says, with its signatures. A module that
    fails because it speaks another version of the ABI is told so, when
    ``engine`` (the module's) has a deadline to bound asking it. Checked
    once per module, not per instance."""
    try:
        _check_imports_and_exports(module)
    except LoadError:
        version = _abi_version(module, engine) if engine else None
        if version is not None and version != ABI_VERSION:
            raise LoadError(
                f"the module speaks ABI version {version}; this py_host speaks {ABI_VERSION}"
            ) from None
        raise


def _check_imports_and_exports(module: wasmtime.Module) -> None:
    for wanted in module.imports:
        name = f"{wanted.module}::{wanted.name}"
        signature = IMPORTS.get((wanted.module, wanted.name or ""))
        if signature is None:
            raise LoadError(f"the module imports {name}, which this host does not grant")
        if not _has_signature(wanted.type, signature):
            raise LoadError(
                f"the module imports {name} with another type than ABI version {ABI_VERSION} gives"
            )
    types = {export.name: export.type for export in module.exports}
    if not isinstance(types.get("memory"), wasmtime.MemoryType):
        raise LoadError("the module does not export its linear memory as 'memory'")
    for name, (params, results) in _FUNCTIONS.items():
        ty = types.get(name)
        speaks = f"ABI version {ABI_VERSION}, which this py_host speaks"
        if not isinstance(ty, wasmtime.FuncType):
            raise LoadError(f"the module does not export the function {name!r} of {speaks}")
        if not _has_signature(ty, (params, results)):
            raise LoadError(f"the module's {name!r} does not have the signature of {speaks}")


def _has_signature(
    ty: object, signature: tuple[list[wasmtime.ValType], list[wasmtime.ValType]]
) -> bool:
    """Whether ``ty`` is the type of a function with ``signature``: (params, results)."""
    params, results = signature
    return (
        isinstance(ty, wasmtime.FuncType)
        and [str(p) for p in ty.params] == [str(p) for p in params]
        and [str(r) for r in ty.results] == [str(r) for r in results]
    )


def _abi_version(module: wasmtime.Module, engine: wasmtime.Engine) -> int | None:
    """What the refused ``module``'s ``abi_version`` says, from an instance
    whose every import traps, bounded in time and fuel; None if it cannot say."""
    store = wasmtime.Store(engine)
    try:
        store.set_epoch_deadline(deadline_ticks(_PROBE_SECONDS))
        with contextlib.suppress(wasmtime.WasmtimeError):
            store.set_fuel(_PROBE_FUEL)
        linker = wasmtime.Linker(engine)
        linker.define_unknown_imports_as_traps(module)
        with EPOCH_CLOCK.running():
            version = linker.instantiate(store, module).exports(store)["abi_version"]
            if isinstance(version, wasmtime.Func):
                result = version(store)
                return result if isinstance(result, int) else None
    except (wasmtime.Trap, wasmtime.WasmtimeError, KeyError, TypeError):
        return None
    finally:
        close_store(store)
    return None


class Exports:
    """The ABI exports of an instance of a module that passed :func:`check_module`."""

    def __init__(
        self,
        instance: wasmtime.Instance,
        store: wasmtime.Store,
        max_reply_bytes: int,
        max_output_bytes: int,
    ) -> None:
        self._max_reply_bytes = max_reply_bytes
        self._max_output_bytes = max_output_bytes
        self._transport = transport(store, instance, _FUNCTIONS, i64_results=_I64_RESULTS)
        self.store_context = self._transport.store_context
        self.set_deadline = self._transport.set_deadline
        """Trap the module ``ticks`` epochs from now: ``set_deadline(ctx, ticks)``."""
        self.read = self._transport.read
        """A copy of ``length`` bytes at ``ptr``: ``read(ctx, ptr, length)``."""
        self.write = self._transport.write
        """Copy ``data`` to ``ptr``: ``write(ctx, ptr, data)``."""
        version = self._transport.call(self.store_context, "abi_version")
        if version != ABI_VERSION:
            raise LoadError(
                f"the module speaks ABI version {version}; this py_host speaks {ABI_VERSION}"
            )
        outbox = u32(self._transport.call(self.store_context, "outbox"))
        try:
            self._outbox = self._transport.u32_reader(self.store_context, outbox, 4)
        except OutOfBounds as error:
            raise LoadError(f"the module's outbox lies outside memory: {error}") from None
        self._input: tuple[int, int] | None = None
        """A buffer from alloc kept for inputs, answers and replies,
        ``(ptr, capacity)``, so a call needs no alloc and dealloc of its own."""

    def grant_executor(self, ctx: Context) -> None:
        """From now on procedures ask for rounds, instead of being dry runs."""
        self._transport.call(ctx, "grant_executor")

    # The outbox.

    def take_output(self, ctx: Context) -> bytes:
        """What the last call printed, checked against the output limit."""
        length = self._outbox(_OUTPUT_LEN)
        if not length:
            return b""
        ptr = self._outbox(_OUTPUT_PTR)
        if length > self._max_output_bytes:
            raise LimitExceeded(
                "output", f"the module wrote {length} bytes, more than {self._max_output_bytes}"
            )
        try:
            return self.read(ctx, ptr, length)
        except OutOfBounds as error:
            raise AbiViolation(f"the module's output lies outside memory: {error}") from None

    def trap_report(self, ctx: Context) -> str | None:
        """Why the module said it was trapping, if it said; only meaningful
        after a trap."""
        length = self._outbox(_TRAP_LEN)
        if not length:
            return None
        ptr = self._outbox(_TRAP_PTR)
        try:
            return self.read(ctx, ptr, min(length, _MAX_TRAP_REPORT)).decode("utf-8", "replace")
        except AbiViolation:
            return "(the module's trap report lies outside memory)"

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

    # Buffers.

    def _alloc(self, ctx: Context, length: int) -> int:
        """A new buffer of ``length`` zeroed bytes from ``alloc``."""
        ptr = u32(self._transport.call(ctx, "alloc", length))
        if ptr == 0:
            raise LimitExceeded("memory", f"the module could not allocate {length} bytes")
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

    def take_reply(self, ctx: Context, function: str, packed: int) -> bytes:
        """Copy out and free the reply a call returned."""
        ptr, length = unpack(packed)
        self._refuse_input_as_reply(function, ptr, length)
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

    def print_string(self, ctx: Context, text: bytes) -> None:
        """Print ``text``; raise the module's error if it replied with one."""
        ptr, _ = self._hold_input(ctx, text, len(text))
        packed = self._transport.call(ctx, "print_string", ptr, len(text))
        self._shrink_input(ctx)
        if packed:
            check_status("print_string", self.take_reply(ctx, "print_string", packed))

    def print_int(self, ctx: Context, value: int) -> None:
        """Print ``value`` (an i32); raise the module's error if it replied with one."""
        ptr, _ = self._hold_input(ctx, _LITTLE_ENDIAN_I32.pack(value), 4)
        packed = self._transport.call(ctx, "print_int", ptr)
        if packed:
            check_status("print_int", self.take_reply(ctx, "print_int", packed))

    def start_procedure(self, ctx: Context, data: bytes, room: int) -> bytes:
        """The first step's reply (``ok``, ``error`` or ``round``) for UTF-8
        JSON input; ``room`` is what the reply may need beyond the input's
        length (a round asks for at most the input's hosts).

        The module writes each step's reply over the kept buffer when it
        fits, so most steps cross into the module once and free nothing."""
        return self._step(ctx, "start_procedure_into", data, len(data) + room)

    def resume_procedure(self, ctx: Context, answer: bytes) -> bytes:
        """The next step's reply, for the executor's answer to the last round."""
        return self._step(ctx, "resume_procedure", answer, len(answer))

    def cancel_procedure(self, ctx: Context) -> None:
        """Abandon the procedure in progress, if any."""
        self._transport.call(ctx, "cancel_procedure")
        self._shrink_input(ctx)

    def start_procedure_unread(self, ctx: Context, data: bytes) -> tuple[int, int]:
        """Start a procedure and leave its first step's reply in memory: ``(ptr, length)``."""
        ptr, _ = self._hold_input(ctx, data, len(data))
        return self._unread(
            ctx, "start_procedure", self._transport.call(ctx, "start_procedure", ptr, len(data))
        )

    def resume_procedure_unread(self, ctx: Context, answer: bytes) -> tuple[int, int]:
        """Take the answer to a round and leave the next step's reply in memory."""
        ptr, _ = self._hold_input(ctx, answer, len(answer))
        # No room for the reply in the host's buffer: it comes in one of its own.
        packed = self._transport.call(ctx, "resume_procedure", ptr, len(answer), ptr, 0)
        return self._unread(ctx, "resume_procedure", packed)

    def round_or_kept(self, ctx: Context, reply: tuple[int, int]) -> bytes | None:
        """The round an unread step reply asks for, read and freed; None, and
        the reply left unread, for any other."""
        ptr, length = reply
        if self.read(ctx, ptr, min(length, len(ROUND_PREFIX))) != ROUND_PREFIX:
            return None
        return self.take_reply(ctx, "a procedure's step", pack(ptr, length))

    def _step(self, ctx: Context, function: str, data: bytes, capacity: int) -> bytes:
        ptr, capacity = self._hold_input(ctx, data, capacity)
        packed = self._transport.call(ctx, function, ptr, len(data), ptr, capacity)
        if packed == 0:
            raise AbiViolation(f"{function} returned no reply")
        reply_ptr, length = unpack(packed)
        if reply_ptr:
            reply = self.take_reply(ctx, function, packed)
        elif length > capacity:
            raise AbiViolation(f"{function} wrote {length} bytes into a buffer of {capacity}")
        else:
            self._check_reply_size(ctx, function, 0, length)
            reply = self.read(ctx, ptr, length)
        if capacity > _KEPT_INPUT_BYTES and not reply.startswith(ROUND_PREFIX):
            self._shrink_input(ctx)
        return reply

    def _unread(self, ctx: Context, function: str, packed: int) -> tuple[int, int]:
        self._shrink_input(ctx)
        if packed == 0 or not packed >> 32:
            raise AbiViolation(f"{function} returned no reply")
        ptr, length = unpack(packed)
        self._refuse_input_as_reply(function, ptr, length)
        self._check_reply_size(ctx, function, ptr, length)
        check_bounds(self.memory_size(ctx), ptr, length)
        return ptr, length

    def _refuse_input_as_reply(self, function: str, ptr: int, length: int) -> None:
        # Freeing such a "reply" would free the host's own buffer, which it
        # then writes the next input into.
        held = self._input
        if held is not None and ptr < held[0] + held[1] and held[0] < ptr + length:
            raise AbiViolation(f"{function} returned a reply inside the host's input buffer")

    def _check_reply_size(self, ctx: Context, function: str, ptr: int, length: int) -> None:
        if length > self._max_reply_bytes:
            if ptr:
                self.dealloc(ctx, ptr, length)
            raise LimitExceeded(
                "reply", f"{function} returned {length} bytes, more than {self._max_reply_bytes}"
            )

    def _hold_input(self, ctx: Context, data: bytes, capacity: int) -> tuple[int, int]:
        """The kept buffer from ``alloc``, of at least ``capacity`` bytes,
        holding ``data``: ``(ptr, capacity)``."""
        if self._input is None or self._input[1] < capacity:
            if self._input is not None:
                self._free_input(ctx)
            capacity = max(capacity, _FIRST_INPUT_BYTES)
            self._input = (self._alloc(ctx, capacity), capacity)
        ptr, capacity = self._input
        self.write(ctx, ptr, data)
        return ptr, capacity

    def _shrink_input(self, ctx: Context) -> None:
        """Let a large kept buffer go: a huge input or procedure does not
        leave a huge buffer behind."""
        if self._input is not None and self._input[1] > _KEPT_INPUT_BYTES:
            self._free_input(ctx)

    def _free_input(self, ctx: Context) -> None:
        assert self._input is not None
        ptr, capacity = self._input
        self._input = None
        if not self.dealloc(ctx, ptr, capacity):
            raise AbiViolation(
                f"the module lost the host's input buffer ({capacity} bytes at {ptr})"
            )
