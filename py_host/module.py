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

from ._abi import MAX_INPUT, Exports, check_exports
from ._cache import ModuleCache, default_directory
from ._engine import NOT_GRANTED_WASM, compile_module
from ._instance import Instance
from ._rounds import RoundPolicy
from ._transport import Context
from ._wire import check_status, encode_input, invalid_input, parse_procedure_reply
from .errors import (
    AbiViolation,
    BufferFreed,
    ClosedError,
    Error,
    InvalidInput,
    LoadError,
    ModuleError,
    ReentrancyError,
)
from .executors import Executor, HostAction, as_executor
from .limits import Limits
from .models import I32_MAX, I32_MIN, ProcedureInput, ProcedureOutput

T = TypeVar("T")
Buffer = bytes | bytearray | memoryview
"""The bytes-like inputs accepted beside ``str``."""

DEFAULT_WASM = Path(__file__).with_name("rust_lib.wasm")
"""The module ``just build`` puts beside this package."""
WASM_PAGE = 64 * 1024
"""Bytes in a page of linear memory."""


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    executor: Executor | HostAction | None = None,
    limits: Limits | None = None,
    cache: bool | str | os.PathLike[str] = True,
) -> RustModule:
    """Load the module at ``path`` (by default the one ``just build`` made).

    ``executor`` is what the module may use to run actions on hosts: an
    :class:`~py_host.executors.Executor` such as
    :class:`~py_host.SimulatedNetwork` or :class:`~py_host.CommandExecutor`,
    or any callable ``(host, action, timeout) -> Outcome | bool``. Without
    one, every procedure is a dry run.

    ``limits`` bounds what the module may use (memory, time, fuel, reply and
    output size); see :class:`~py_host.Limits` for the defaults. The module
    is granted nothing else: no file, clock, environment or argument.

    ``cache`` keeps the compiled module on disk so the next process starts
    in about a millisecond instead of compiling: ``True`` for the default
    directory (``$PY_HOST_CACHE_DIR``, else ``$XDG_CACHE_HOME/py_host``, else
    ``~/.cache/py_host``), a path for another, ``False`` for none.
    """
    limits = limits if limits is not None else Limits()
    wasm_path = Path(path) if path is not None else DEFAULT_WASM
    try:
        wasm = wasm_path.read_bytes()
    except OSError as error:
        hint = " (run `just build`)" if path is None else ""
        raise LoadError(f"cannot read the module {str(wasm_path)!r}{hint}: {error}") from None
    granted = as_executor(executor) if executor is not None else None
    fuel = limits.max_fuel is not None
    directory = default_directory() if cache is True else Path(cache) if cache else None
    kept = ModuleCache(directory) if directory else None
    module = compile_module(wasm, wasm_path, fuel=fuel, cache=kept)
    check_exports(module)
    not_granted = compile_module(NOT_GRANTED_WASM, wasm_path, fuel=fuel, cache=kept)
    return RustModule((module, not_granted), granted, limits)


class RustModule:
    """The module, loaded and ready; made by :func:`py_host.load`.

    Safe to share between threads: calls take turns. After a trap the
    instance is discarded and the next call runs on a fresh one. Use it as a
    context manager, or call :meth:`close`, to free it at once.
    """

    def __init__(
        self,
        modules: tuple[wasmtime.Module, wasmtime.Module],
        executor: Executor | None,
        limits: Limits,
    ) -> None:
        self._modules = modules
        self._executor = executor
        self._limits = limits
        self._lock = threading.Lock()
        self._caller: int | None = None
        """The thread inside a call, to refuse re-entry instead of deadlocking."""
        self._instance: Instance | None = Instance(modules, executor, limits)
        self._closed = False
        self._orphans: list[tuple[Exports, int]] = []
        """Replies whose ReplyBuffer was dropped unfreed, to free at the next call."""

    def print_string(self, text: str | Buffer) -> None:
        """Print ``text`` and a newline from Rust, to ``sys.stdout``.

        ``bytes``, ``bytearray`` or ``memoryview`` must hold UTF-8; invalid
        UTF-8, or a ``str`` with lone surrogates, raises :class:`InvalidInput`.
        """
        data = _input(text)
        self._run(
            lambda exports, store: check_status("print_string", exports.print_string(store, data))
        )

    def print_int(self, value: int) -> None:
        """Print ``Python gave us number <value>`` from Rust, to ``sys.stdout``.

        ``value`` must be an int in the i32 range.
        """
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput("invalid_type", f"expected an int, got {type(value).__name__}")
        if not I32_MIN <= value <= I32_MAX:
            raise InvalidInput("out_of_range", f"{value} is outside the i32 range")
        self._run(lambda exports, store: check_status("print_int", exports.print_int(store, value)))

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
        data = _input(encode_input(procedure))
        policy = RoundPolicy.for_input(procedure, len(data)) if self._executor else None
        return self._run(
            lambda exports, store: parse_procedure_reply(exports.start_procedure(store, data)),
            policy=policy,
        )

    def start_procedure_json(self, data: str | Buffer) -> bytes:
        """Run a procedure from ProcedureInput JSON and return ProcedureOutput
        JSON, with no models on the input side: the module validates it."""
        raw = _input(data)
        output = self._run(
            lambda exports, store: parse_procedure_reply(exports.start_procedure(store, raw)),
            policy=self._policy_for_json(raw),
        )
        return output.model_dump_json().encode()

    def start_procedure_buffer(self, data: str | Buffer) -> ReplyBuffer:
        """The tutorial's way: run a procedure from JSON and get a handle on
        the reply buffer still in the module's memory, to read and then free.
        Unlike the tutorial's pointer, the handle refuses use after free."""
        raw = _input(data)
        return self._run(
            lambda exports, store: ReplyBuffer(
                self, exports, *exports.start_procedure_unread(store, raw)
            ),
            policy=self._policy_for_json(raw),
        )

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
        self._refuse_reentry()
        with self._lock:
            self._closed = True
            self._discard()

    def __enter__(self) -> RustModule:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _policy_for_json(self, raw: bytes) -> RoundPolicy | None:
        return RoundPolicy.for_json(raw) if self._executor else None

    def _run(
        self,
        run: Callable[[Exports, Context], T],
        *,
        policy: RoundPolicy | None = None,
        buffer: ReplyBuffer | None = None,
    ) -> T:
        """``run`` on the current instance (for a ``buffer``, only if it is
        still live there), with the rounds ``policy`` allows. The instance is
        discarded after anything but a :class:`ModuleError`, the module's own
        well-formed refusal."""
        self._refuse_reentry()
        with self._lock:
            self._caller = threading.get_ident()
            try:
                current = self._current()
                if buffer is not None:
                    buffer._check_live(current.exports)
                return self._call(current, run, policy)
            finally:
                self._caller = None

    def _call(
        self,
        current: Instance,
        run: Callable[[Exports, Context], T],
        policy: RoundPolicy | None,
    ) -> T:
        try:
            while self._orphans:
                exports, ptr = self._orphans.pop()
                if exports is current.exports:
                    current.call(partial(Exports.free_mem, ptr=ptr))
            return current.call(run, policy)
        except ModuleError:
            raise
        except Error:
            self._discard()
            raise
        except Exception as error:
            self._discard()
            raise Error(f"the call failed unexpectedly: {error!r}") from error
        except BaseException:
            self._discard()
            raise

    def _refuse_reentry(self) -> None:
        if self._caller == threading.get_ident():
            raise ReentrancyError(
                "the module was called from inside one of its own calls "
                "(from an executor, or from sys.stdout while it printed)"
            )

    def _current(self) -> Instance:
        if self._closed:
            raise ClosedError("the module was closed")
        if self._instance is None:
            self._instance = Instance(self._modules, self._executor, self._limits)
        return self._instance

    def _discard(self) -> None:
        if self._instance is not None:
            self._instance.close()
            self._instance = None


class ReplyBuffer:
    """A reply still in the module's memory, as the tutorial's pointer was:
    read it, then free it, once. Use after free raises :class:`BufferFreed`
    instead of the tutorial's ``double free detected ... Aborted``."""

    def __init__(self, module: RustModule, exports: Exports, ptr: int, length: int) -> None:
        self._module = module
        self._exports = exports
        self._ptr = ptr
        self._length = length
        self._freed = False

    @property
    def freed(self) -> bool:
        return self._freed

    def read(self) -> bytes:
        """A copy of the reply."""
        return self._module._run(
            lambda exports, store: exports.read(store, self._ptr, self._length), buffer=self
        )

    def free(self) -> None:
        """Give the buffer back to the module, as the tutorial's ``free_mem``."""

        def free(exports: Exports, store: Context) -> None:
            self._freed = True
            if not exports.free_mem(store, self._ptr):
                raise AbiViolation("free_mem did not recognise a reply the module returned")

        self._module._run(free, buffer=self)

    def __enter__(self) -> ReplyBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._freed:
            self.free()

    def __del__(self) -> None:
        # A dropped buffer is freed at the module's next call: freeing here
        # could re-enter the module in the middle of another call.
        if not self._freed:
            self._module._orphans.append((self._exports, self._ptr))

    def _check_live(self, current: Exports) -> None:
        """Called by the module under its lock, before any use."""
        if self._freed:
            raise BufferFreed("this reply buffer was already freed")
        if self._exports is not current:
            raise BufferFreed("the instance that held this buffer was discarded")


def _input(data: str | Buffer) -> bytes:
    """``data`` as the UTF-8 bytes of one input buffer."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidInput(
                "invalid_utf8", f"cannot encode as UTF-8 at index {error.start}: {error.reason}"
            ) from None
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidInput("invalid_type", f"expected str or bytes-like, got {type(data).__name__}")
    if len(data) > MAX_INPUT:
        raise InvalidInput(
            "invalid_value", f"{len(data)} bytes is more than an input can hold ({MAX_INPUT})"
        )
    return data
