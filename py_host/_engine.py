"""The one wasmtime Engine py_host uses, and the modules compiled with it."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import wasmtime

from .errors import LoadError


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    # By default wasmtime turns traps into SIGSEGV/SIGILL and catches them in
    # its signal handlers. A handler installed after wasmtime's, like the one
    # pytest's faulthandler installs, sees those signals first and kills the
    # process on the first trap. Explicit checks instead keep a trap a
    # Python exception whatever else handles signals.
    config.signals_based_traps = False
    return wasmtime.Engine(config)


ENGINE = _engine()
_compiled: dict[str, wasmtime.Module] = {}
_compiled_lock = threading.Lock()


def compile_module(wasm: bytes, path: Path) -> wasmtime.Module:
    """The compiled module for ``wasm``, compiled once per process."""
    key = hashlib.sha256(wasm).hexdigest()
    with _compiled_lock:
        if key not in _compiled:
            try:
                _compiled[key] = wasmtime.Module(ENGINE, wasm)
            except wasmtime.WasmtimeError as error:
                first_line = str(error).splitlines()[0]
                raise LoadError(f"{str(path)!r} is not a valid module: {first_line}") from None
        return _compiled[key]
