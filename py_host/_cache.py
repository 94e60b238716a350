"""Compiled modules kept on disk, so a new process skips the compiler.

Compiling the module takes a fifth of a second; loading it compiled takes
well under a millisecond. An entry is keyed by the .wasm's SHA-256, the
wasmtime version and the engine's configuration, so a changed module, a new
wasmtime or another configuration never loads an old entry. Each entry's
name also carries the CRC-32 of its contents: a truncated or corrupted entry
is detected and rebuilt, never handed to wasmtime, which would trust it as
native code. The file itself is exactly what wasmtime serialized, so wasmtime
maps it instead of Python copying it.

The CRC-32 only detects accidents: anyone who can write an entry can also
make its contents match the name. A compiled module is native code that
wasmtime runs without checking it, so what keeps others' code out is
ownership: the cache is used only when the directory belongs to the user and
nobody else can write it, and an entry is loaded only when it is a regular
file of the user's that nobody else can write; any other entry is removed
and rebuilt. Every problem with the cache means compiling instead, never an
error. Hits, misses and why, and entries stored are logged at DEBUG on the
``py_host.cache`` logger; a directory or entry refused for its owner or mode
is logged at WARNING, as it slows every start until it is fixed.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import stat
import tempfile
import zlib
from pathlib import Path

import wasmtime

from ._transport import WASMTIME_VERSION

_LOG = logging.getLogger("py_host.cache")


def default_directory() -> Path | None:
    """``$PY_HOST_CACHE_DIR``, else ``$XDG_CACHE_HOME/py_host``, else
    ``~/.cache/py_host``; ``None`` when none of them is an absolute path.

    A variable that is empty or holds a relative path is ignored, as the XDG
    base directory specification says: a relative one would put native code
    in whatever directory the process happens to run in.
    """
    for variable, below in [("PY_HOST_CACHE_DIR", ""), ("XDG_CACHE_HOME", "py_host")]:
        value = Path(os.environ.get(variable, ""))
        if value.is_absolute():
            return value / below
    try:
        home = Path.home()
    except RuntimeError:  # no $HOME and no password entry
        return None
    return home / ".cache/py_host" if home.is_absolute() else None


class ModuleCache:
    """Compiled modules in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def key(self, wasm_sha256: str, configuration: str) -> str:
        """The key of the module with this hash compiled for this engine
        configuration: entries are named ``<key>-crc<checksum>.cwasm``."""
        return f"{wasm_sha256}-wasmtime{WASMTIME_VERSION}-{configuration}"

    def load(self, key: str, engine: wasmtime.Engine) -> wasmtime.Module | None:
        """The module kept under ``key``, or ``None`` when there is none or it
        is damaged or stale (a damaged or stale entry is removed)."""
        if not self._usable():
            return None
        entries = self._entries(key)
        if not entries:
            _LOG.debug("miss: no entry %s in %s", key, self.directory)
        for entry in entries:
            try:
                if _trusted_checksum(entry) == entry.stem.rsplit("-crc", 1)[1]:
                    module = wasmtime.Module.deserialize_file(engine, str(entry))
                    _LOG.debug("hit: %s", entry)
                    return module
                _LOG.debug("miss: %s is damaged (its CRC-32 differs from its name's)", entry)
            except Untrusted as error:
                _LOG.warning("refused %s: %s; compiling instead", entry, error)
            except wasmtime.WasmtimeError:
                _LOG.debug(
                    "miss: wasmtime refused %s (another wasmtime or engine configuration)", entry
                )
            except (OSError, ValueError, IndexError) as error:
                _LOG.debug("miss: cannot read %s: %s", entry, error)
            # A directory by that name, or a read-only cache, leaves the entry
            # in place: the module is compiled all the same.
            with contextlib.suppress(OSError):
                entry.unlink(missing_ok=True)
        return None

    def store(self, key: str, module: wasmtime.Module) -> None:
        """Keep ``module`` under ``key``; a cache that cannot be written is
        only a slower start, never an error."""
        body = module.serialize()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_private(self.directory.stat())
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        except (OSError, Untrusted) as error:
            # A refused directory was already logged by load().
            _LOG.debug("not stored in %s: %s", self.directory, error)
            return
        entry = self.directory / f"{key}-crc{zlib.crc32(body):08x}.cwasm"
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
            for old in self._entries(key):
                old.unlink(missing_ok=True)
            # Renaming is atomic: a reader finds the whole entry or none.
            os.replace(temporary, entry)
        except OSError as error:
            _LOG.debug("not stored in %s: %s", self.directory, error)
            Path(temporary).unlink(missing_ok=True)
            return
        _LOG.debug("stored %s", entry)

    def _usable(self) -> bool:
        """Whether the directory is there and the user's and only the user's
        to write; if not, logged why."""
        try:
            _check_private(self.directory.stat())
        except OSError as error:
            _LOG.debug("miss: no usable cache directory %s: %s", self.directory, error.strerror)
            return False
        except Untrusted as error:
            _LOG.warning(
                "refused the cache directory %s: %s; compiling instead", self.directory, error
            )
            return False
        return True

    def _entries(self, key: str) -> list[Path]:
        prefix = f"{key}-crc"
        try:
            with os.scandir(self.directory) as entries:
                names = [e.name for e in entries if e.name.startswith(prefix)]
        except OSError:
            return []
        return [self.directory / name for name in sorted(names) if name.endswith(".cwasm")]


class Untrusted(Exception):
    """A cache directory or entry that someone else could have written."""


def _check_private(status: os.stat_result) -> None:
    """Raise :class:`Untrusted` unless what has ``status`` is the user's and
    only the user's to write."""
    if status.st_uid != os.getuid():
        raise Untrusted(f"it belongs to user {status.st_uid}, not to user {os.getuid()}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise Untrusted(f"others can write it (mode {stat.S_IMODE(status.st_mode):o})")


def _trusted_checksum(entry: Path) -> str:
    """The CRC-32 of ``entry``; :class:`Untrusted` when others could have
    written it, ValueError when it is not a regular file."""
    # The checks use the descriptor the checksum reads through: they cost one
    # fstat and no lookup by name. A symbolic link is refused, not followed.
    descriptor = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        _check_private(status)
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return f"{zlib.crc32(data):08x}"
