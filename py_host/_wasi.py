"""WASI preview 1, as far as the module needs it and no further: standard
output and error, randomness, an empty environment, and exit.

wasmtime's own WASI would grant more than the module needs, and its custom
output callbacks run on a runtime thread after the call has returned (and
can panic at interpreter shutdown), so ``println!`` would not reach
``sys.stdout`` during the call. These few imports run on the calling thread,
in order, and grant no file, clock, argument or environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, Protocol

import wasmtime

from ._abi import Exports
from ._output import TextSink
from ._transport import (
    Context,
    FastHostFunctions,
    OutOfBounds,
    PublicHostFunctions,
    Signature,
)
from .errors import Error, LimitExceeded

_MODULE = "wasi_snapshot_preview1"
_ERRNO_SUCCESS = 0
_ERRNO_BADF = 8
_ERRNO_FAULT = 21
_ERRNO_FBIG = 22
_ERRNO_INVAL = 28
_ERRNO_IO = 29
_MAX_RANDOM = 1 << 16
_MAX_IOVECS = 1024
_KEPT_WHEN_OVER = 4096
_TWO_ARGS = Signature(2, "i32")
_FOUR_ARGS = Signature(4, "i32")
_PROC_EXIT = Signature(1, None)


class CallState(Protocol):
    """What the imports of an instance share about its current call."""

    exit_code: int | None
    dirty: bool

    def report(self, fault: Error, ctx: Context) -> NoReturn:
        """Record a problem and stop the module."""

    def pause(self, ctx: Context) -> None:
        """Stop the module's deadline clock for the host's own work (or stop
        the module, if it is past its deadline)."""

    def resume(self, ctx: Context) -> None:
        """Start it again."""

    def failed(self, error: BaseException) -> None:
        """A host function raised: record it for the end of the call."""


class OutputOnlyWasi:
    """The WASI imports of one instance. Each answers a problem with an
    errno, but for ``proc_exit`` and a broken limit, which stop the module."""

    def __init__(
        self,
        exports: Callable[[], Exports | None],
        call: CallState,
        max_output_bytes: int,
    ) -> None:
        self._exports = exports
        self._call = call
        self.stdout = TextSink("stdout")
        self.stderr = TextSink("stderr")
        self._sinks = {1: self.stdout, 2: self.stderr}
        self._max_output_bytes = max_output_bytes
        self._written = 0

    def new_call(self) -> None:
        """Start counting output afresh."""
        self._written = 0
        self.stdout.new_call()
        self.stderr.new_call()

    def define(
        self, linker: wasmtime.Linker, host: FastHostFunctions | PublicHostFunctions
    ) -> None:
        """Define the imports in ``linker``."""
        functions: list[tuple[str, Callable[..., int | None], Signature]] = [
            ("fd_write", self._fd_write, _FOUR_ARGS),
            ("random_get", self._random_get, _TWO_ARGS),
            ("environ_get", self._environ_get, _TWO_ARGS),
            ("environ_sizes_get", self._environ_sizes_get, _TWO_ARGS),
            ("proc_exit", self._proc_exit, _PROC_EXIT),
        ]
        for name, func, signature in functions:
            host.define(linker, (_MODULE, name), func, signature, on_error=self._call.failed)

    def _fd_write(self, ctx: Context, fd: int, iovs: int, count: int, written: int) -> int:
        self._call.dirty = True
        sink = self._sinks.get(fd)
        exports = self._exports()
        if sink is None or exports is None:
            return _ERRNO_BADF
        try:
            data = self._gather(ctx, exports, sink, iovs, count)
            exports.write_u32(ctx, written, len(data))
        except OutOfBounds:
            return _ERRNO_FAULT
        except LimitExceeded as limit:
            self._call.report(limit, ctx)
        except ValueError:
            return _ERRNO_INVAL
        self._call.pause(ctx)
        try:
            sink.write(data)
        except Exception:
            return _ERRNO_IO
        finally:
            self._call.resume(ctx)
        return _ERRNO_SUCCESS

    def _gather(
        self, ctx: Context, exports: Exports, sink: TextSink, iovs: int, count: int
    ) -> bytes:
        """The bytes of ``count`` iovecs at ``iovs``, counted against the
        output limit before they are copied: the lengths are the module's."""
        if count > _MAX_IOVECS:
            raise ValueError("too many iovecs")
        fields = exports.read_u32s(ctx, iovs, 2 * count)
        length = sum(fields[1::2])
        self._written += length
        over = self._written > self._max_output_bytes
        if over and length > _KEPT_WHEN_OVER:
            raise LimitExceeded(
                "output", f"the module wrote more than {self._max_output_bytes} bytes"
            )
        data = b"".join(
            exports.read(ctx, fields[i], fields[i + 1]) for i in range(0, len(fields), 2)
        )
        if over:
            # A last short message, like Rust's "memory allocation ... failed",
            # still explains a trap that follows, though it is not printed.
            sink.remember(data)
            raise LimitExceeded(
                "output", f"the module wrote more than {self._max_output_bytes} bytes"
            )
        return data

    def _random_get(self, ctx: Context, buf: int, length: int) -> int:
        exports = self._exports()
        if exports is None:
            return _ERRNO_FAULT
        if length > _MAX_RANDOM:
            return _ERRNO_INVAL
        try:
            exports.write(ctx, buf, os.urandom(length))
        except OutOfBounds:
            return _ERRNO_FAULT
        return _ERRNO_SUCCESS

    def _environ_get(self, ctx: Context, environ: int, buf: int) -> int:
        return _ERRNO_SUCCESS

    def _environ_sizes_get(self, ctx: Context, count: int, size: int) -> int:
        exports = self._exports()
        if exports is None:
            return _ERRNO_FAULT
        try:
            exports.write_u32(ctx, count, 0)
            exports.write_u32(ctx, size, 0)
        except OutOfBounds:
            return _ERRNO_FAULT
        return _ERRNO_SUCCESS

    def _proc_exit(self, ctx: Context, code: int) -> None:
        # proc_exit must not return to the module.
        self._call.dirty = True
        self._call.exit_code = code
        raise ModuleStopped


class ModuleStopped(Exception):
    """Raised by a host function to end the module's call at once (it exited,
    or broke a rule or a limit); why was recorded before."""
