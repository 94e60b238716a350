"""Ctrl-C while the module runs, without crashing the process.

WebAssembly calls host functions through C callbacks, and an exception that
escapes a ctypes callback leaves the value it returns to wasmtime undefined:
wasmtime may then read garbage as a trap pointer and crash. Python raises
KeyboardInterrupt from its SIGINT handler at the next bytecode it runs, which
may be a callback's very first one, before any ``try`` can catch it.

So while a call from the main thread runs in the module, py_host's SIGINT
handler only notes the interrupt. The next host function then stops the
module (it traps), or the call ends, and the KeyboardInterrupt is raised
there, in the caller's code. Outside calls the previous handler runs as
before. The handler is installed on the first call from the main thread, and
only over Python's default one.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_MAIN = threading.main_thread().ident


class _Guard:
    """The interrupt state of the main thread's calls."""

    def __init__(self) -> None:
        self.installed = False
        self.previous: Any = None
        self.depth = 0
        """Calls from the main thread now running in WebAssembly."""
        self.pending = False
        """An interrupt arrived during such a call, and is not raised yet."""

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.depth:
            self.pending = True
            return
        if callable(self.previous):
            self.previous(signum, frame)
        else:
            raise KeyboardInterrupt


_guard = _Guard()


def enter() -> bool:
    """A call into the module begins; True when it is the main thread's,
    which must then :func:`leave`."""
    if threading.get_ident() != _MAIN:
        return False
    if not _guard.installed:
        _guard.installed = True
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            _guard.previous = signal.signal(signal.SIGINT, _guard.handler)
    _guard.depth += 1
    return True


def leave() -> None:
    """The main thread's call has ended: raise the interrupt it deferred."""
    _guard.depth -= 1
    if _guard.pending and not _guard.depth:
        _guard.pending = False
        raise KeyboardInterrupt


def take_pending() -> bool:
    """Whether an interrupt is waiting; a host function that sees one stops
    the module so it is raised at once."""
    if _guard.pending and threading.get_ident() == _MAIN:
        _guard.pending = False
        return True
    return False
