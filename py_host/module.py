"""The loaded module: the tutorial's functions as Python methods."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import wasmtime
from pydantic import ValidationError

from ._abi import Exports
from ._engine import ENGINE, compile_module
from ._instance import Instance
from ._wire import (
    encode_input,
    invalid_input,
    parse_procedure_reply,
    procedure_output_json,
    raise_error_reply,
)
from .errors import AbiViolation, BufferFreed, ClosedError, InvalidInput, LoadError, ModuleTrap
from .executors import Executor, HostAction, as_executor
from .models import I32_MAX, I32_MIN, ProcedureInput, ProcedureOutput

T = TypeVar("T")

DEFAULT_WASM = Path(__file__).with_name("rust_lib.wasm")
"""The module ``just build`` puts beside this package."""
WASM_PAGE = 64 * 1024
"""Bytes in a page of linear memory."""


def load(
    path: str | os.PathLike[str] | None = None, *, executor: Executor | HostAction | None = None
) -> RustModule:
    """Load the module at ``path`` (by default the one ``just build`` made).

    ``executor`` is what the module may use to run actions on hosts: an
    :class:`~py_host.executors.Executor` such as
    :class:`~py_host.SimulatedNetwork` or :class:`~py_host.CommandExecutor`,
    or any callable ``(host, action, timeout) -> Outcome | bool``. Without
    one, every procedure is a dry run.
    """
    wasm_path = Path(path) if path is not None else DEFAULT_WASM
    try:
        wasm = wasm_path.read_bytes()
    except OSError as error:
        hint = " (run `just build`)" if path is None else ""
        raise LoadError(f"cannot read the module {str(wasm_path)!r}{hint}: {error}") from None
    granted = as_executor(executor) if executor is not None else None
    return RustModule(compile_module(wasm, wasm_path), granted)


class RustModule:
    """The module, loaded and ready; made by :func:`py_host.load`.

    Safe to share between threads: calls take turns. After a trap the
    instance is discarded and the next call runs on a fresh one. Use it as a
    context manager, or call :meth:`close`, to free it at once.
    """

    def __init__(self, module: wasmtime.Module, executor: Executor | None) -> None:
        self._module = module
        self._executor = executor
        self._lock = threading.RLock()
        self._instance: Instance | None = Instance(ENGINE, module, executor)
        self._closed = False
        self._orphans: list[tuple[Instance, int]] = []
        """Replies whose ReplyBuffer was dropped unfreed, to free at the next call."""

    def print_string(self, text: str | bytes) -> None:
        """Print ``text`` and a newline from Rust, to ``sys.stdout``.

        ``bytes`` must be UTF-8; invalid UTF-8, or a ``str`` with lone
        surrogates, raises :class:`InvalidInput`.
        """
        data = _utf8(text)
        reply = self._run(lambda exports, store: exports.print_string(store, data))
        if reply is not None:
            raise_error_reply("print_string", reply)

    def print_int(self, value: int) -> None:
        """Print ``Python gave us number <value>`` from Rust, to ``sys.stdout``.

        ``value`` must be an int in the i32 range.
        """
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput("invalid_type", f"expected an int, got {type(value).__name__}")
        if not I32_MIN <= value <= I32_MAX:
            raise InvalidInput("out_of_range", f"{value} is outside the i32 range")
        reply = self._run(lambda exports, store: exports.print_int(store, value))
        if reply is not None:
            raise_error_reply("print_int", reply)

    def start_procedure(self, procedure: ProcedureInput | Mapping[str, Any]) -> ProcedureOutput:
        """Run a procedure and return what it did.

        A mapping is validated as a :class:`ProcedureInput` first; invalid
        input raises :class:`InvalidInput` naming the field. The module
        checks the input again, so even a model made with ``model_construct``
        cannot get bad values past it.
        """
        if not isinstance(procedure, ProcedureInput):
            try:
                procedure = ProcedureInput.model_validate(procedure)
            except ValidationError as error:
                raise invalid_input(error) from None
        data = _utf8(encode_input(procedure))
        reply = self._run(lambda exports, store: exports.start_procedure(store, data))
        return parse_procedure_reply(reply)

    def start_procedure_json(self, data: bytes | str) -> bytes:
        """Run a procedure from ProcedureInput JSON and return ProcedureOutput
        JSON, with no models on this side: the module validates the input."""
        raw = _utf8(data)
        reply = self._run(lambda exports, store: exports.start_procedure(store, raw))
        return procedure_output_json(reply)

    def start_procedure_buffer(self, data: bytes | str) -> ReplyBuffer:
        """The tutorial's way: run a procedure from JSON and get a handle on
        the reply buffer still in the module's memory, to read and then free.
        Unlike the tutorial's pointer, the handle refuses use after free."""
        raw = _utf8(data)
        with self._lock:
            instance = self._current()
            ptr, length = self._run(
                lambda exports, store: exports.start_procedure_unread(store, raw)
            )
            return ReplyBuffer(self, instance, ptr, length)

    @property
    def memory_size(self) -> int:
        """The size of the module's linear memory in bytes."""
        return self._run(lambda exports, store: exports.memory_size(store))

    @property
    def memory_pages(self) -> int:
        """The size of the module's linear memory in 64 KiB pages."""
        return self.memory_size // WASM_PAGE

    def live_allocations(self) -> int:
        """How many buffers the module holds for the host: 0 between calls,
        unless a :class:`ReplyBuffer` is still unfreed."""
        return self._run(lambda exports, store: exports.live_allocations(store))

    def close(self) -> None:
        """Free the instance now. Further calls raise :class:`ClosedError`."""
        with self._lock:
            self._closed = True
            self._discard()

    def __enter__(self) -> RustModule:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _current(self) -> Instance:
        with self._lock:
            if self._closed:
                raise ClosedError("the module was closed")
            if self._instance is None:
                self._instance = Instance(ENGINE, self._module, self._executor)
            return self._instance

    def _run(
        self, run: Callable[[Exports, wasmtime.Store], T], instance: Instance | None = None
    ) -> T:
        """``run`` on the current instance (or on ``instance``, if it is still
        current), discarding the instance if the call trapped or broke the ABI."""
        with self._lock:
            current = self._current()
            if instance is not None and instance is not current:
                raise BufferFreed("the instance that held this buffer was discarded")
            try:
                self._free_orphans(current)
                return current.call(run)
            except (ModuleTrap, AbiViolation):
                self._discard()
                raise

    def _free_orphans(self, current: Instance) -> None:
        while self._orphans:
            owner, ptr = self._orphans.pop()
            if owner is current:
                current.call(partial(_free_mem, ptr=ptr))

    def _discard(self) -> None:
        if self._instance is not None:
            self._instance.close()
            self._instance = None


class ReplyBuffer:
    """A reply still in the module's memory, as the tutorial's pointer was:
    read it, then free it, once. Use after free raises :class:`BufferFreed`
    instead of the tutorial's ``double free detected ... Aborted``."""

    def __init__(self, module: RustModule, instance: Instance, ptr: int, length: int) -> None:
        self._module = module
        self._instance = instance
        self._ptr = ptr
        self._length = length
        self._freed = False

    @property
    def freed(self) -> bool:
        return self._freed

    def read(self) -> bytes:
        """A copy of the reply."""
        self._check_live()
        return self._module._run(
            lambda exports, store: exports.read(store, self._ptr, self._length), self._instance
        )

    def free(self) -> None:
        """Give the buffer back to the module, as the tutorial's ``free_mem``."""
        self._check_live()
        self._freed = True
        freed = self._module._run(
            lambda exports, store: exports.free_mem(store, self._ptr), self._instance
        )
        if not freed:
            raise AbiViolation("free_mem did not recognise a reply the module returned")

    def __enter__(self) -> ReplyBuffer:
        return self

    def __del__(self) -> None:
        # A dropped buffer is freed at the module's next call: freeing here
        # could re-enter the module in the middle of another call.
        if not self._freed:
            self._module._orphans.append((self._instance, self._ptr))

    def __exit__(self, *exc_info: object) -> None:
        if not self._freed:
            self.free()

    def _check_live(self) -> None:
        if self._freed:
            raise BufferFreed("this reply buffer was already freed")


def _free_mem(exports: Exports, store: wasmtime.Store, ptr: int) -> bool:
    return exports.free_mem(store, ptr)


def _utf8(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    if not isinstance(text, str):
        raise InvalidInput("invalid_type", f"expected str or bytes, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInput(
            "invalid_utf8", f"cannot encode as UTF-8 at index {error.start}: {error.reason}"
        ) from None
