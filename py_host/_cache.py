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

Checking costs more than loading: hashing the .wasm and the CRC-32 of the
entry took two thirds of a millisecond of a load's two. So once a load has
checked both, and both files last changed at least :data:`SETTLED_SECONDS`
before, it notes in an index what it found: the .wasm's status (device,
inode, size, modification and change times), its SHA-256, and the entry's
name and status. A later load whose .wasm and entry still have those
statuses loads the entry without reading or hashing either. Any write to a
file through the file system changes its change time, which no program can
set back, so a changed file always misses the index and is checked in full;
the settling time covers writes within one tick of a coarse file system
clock, which the change time could not tell apart. Entries are written to
disk (fsync) before they are renamed into place, so a crash cannot leave a
whole-looking entry with lost contents. What the index cannot see is damage
below the file system (a failing disk), which no other native code a process
loads is checked for either. The index is trusted as the entries are: only
when the directory and the index are the user's and nobody else's to write.

A cache in use grows by an entry with every rebuilt .wasm, new py_host or
wasmtime, or other limits, so each store keeps only the latest
:data:`KEPT_ENTRIES` and removes what went stale with the others.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import stat
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from ._transport import WASMTIME_VERSION

_LOG = logging.getLogger("py_host.cache")

KEPT_ENTRIES = 16
"""How many entries the cache keeps: the latest stored. Each is a megabyte
or two, and every rebuilt .wasm, new py_host or wasmtime, or other limits
add one; a module whose entry went is compiled and stored again."""
_ABANDONED_SECONDS = 3600.0
"""How old a temporary file is before it counts as left by a store that
never finished (a crash): a store renames its own within moments."""
_TEMPORARY_PREFIX = ".py_host-"

SETTLED_SECONDS = 2.0
"""How long before a check a file must have last changed for its status to
stand for its contents from then on: longer than any file system's clock
tick (FAT's is two seconds)."""
_MAX_INDEX_BYTES = 1024

FileIdentity = tuple[int, int, int, int, int]
"""What a file's status says of its contents: device, inode, size,
modification and change times (ns)."""


def identity(status: os.stat_result) -> FileIdentity:
    """The :data:`FileIdentity` in ``status``."""
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )


def settled(status: os.stat_result) -> bool:
    """Whether the file with ``status`` is a regular file that last changed
    at least :data:`SETTLED_SECONDS` ago: a later change will show in its
    status."""
    changed = max(status.st_mtime_ns, status.st_ctime_ns)
    return stat.S_ISREG(status.st_mode) and time.time_ns() - changed >= SETTLED_SECONDS * 1e9


@dataclass(frozen=True)
class Source:
    """The .wasm file a module is loaded from, as load() found it."""

    status: os.stat_result
    """Its status, taken through the descriptor it was read from."""
    sha256: str
    configuration: str
    """The engine configuration the module is compiled for."""


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

    def recall(
        self, wasm: os.stat_result, configuration: str, engine: wasmtime.Engine
    ) -> tuple[str, wasmtime.Module] | None:
        """The SHA-256 of the .wasm with status ``wasm`` and its module
        compiled for ``configuration``, when the index says a load checked
        both and neither file changed since; ``None`` otherwise (then
        :meth:`load` checks in full)."""
        # Paths as strings, files as descriptors: pathlib's objects and
        # buffered files took a tenth of a load's time here.
        directory = os.fspath(self.directory)
        try:
            _check_private(os.stat(directory))
            index = os.path.join(directory, self._index_name(wasm, configuration))
            fields = _read_private(index, _MAX_INDEX_BYTES).decode().split()
            if len(fields) != 12 or tuple(map(int, fields[:5])) != identity(wasm):
                return None
            sha256, name = fields[5], fields[6]
            if not name.startswith(f"{self.key(sha256, configuration)}-crc"):
                return None
            entry = os.path.join(directory, name)
            descriptor, status = _open_private(entry)
            os.close(descriptor)
            if identity(status) != tuple(map(int, fields[7:])):
                return None
            module = wasmtime.Module.deserialize_file(engine, entry)
        except (OSError, ValueError, Untrusted, wasmtime.WasmtimeError):
            return None
        _LOG.debug("hit: %s (unchanged since a load checked it)", entry)
        return sha256, module

    def load(
        self, key: str, engine: wasmtime.Engine, *, source: Source | None = None
    ) -> wasmtime.Module | None:
        """The module kept under ``key``, or ``None`` when there is none or it
        is damaged or stale (a damaged or stale entry is removed). On a hit,
        the index notes it for :meth:`recall` when ``source`` (the .wasm
        ``key`` names) and the entry have settled."""
        if not self._usable():
            return None
        entries = self._entries(key)
        if not entries:
            _LOG.debug("miss: no entry %s in %s", key, self.directory)
        for entry in entries:
            try:
                checksum, status = _trusted_checksum(entry)
                if checksum == entry.stem.rsplit("-crc", 1)[1]:
                    module = wasmtime.Module.deserialize_file(engine, str(entry))
                    _LOG.debug("hit: %s", entry)
                    if source is not None:
                        self._note(source, entry, status)
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
            descriptor, temporary = _temporary(self.directory)
        except (OSError, Untrusted) as error:
            # A refused directory was already logged by load().
            _LOG.debug("not stored in %s: %s", self.directory, error)
            return
        entry = self.directory / f"{key}-crc{zlib.crc32(body):08x}.cwasm"
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
                # On disk before it has its name: after a crash the entry is
                # whole or missing, never its name over lost contents.
                file.flush()
                os.fsync(file.fileno())
            for old in self._entries(key):
                old.unlink(missing_ok=True)
            # Renaming is atomic: a reader finds the whole entry or none.
            os.replace(temporary, entry)
        except OSError as error:
            _LOG.debug("not stored in %s: %s", self.directory, error)
            Path(temporary).unlink(missing_ok=True)
            return
        _LOG.debug("stored %s", entry)
        self._prune()

    def _prune(self) -> None:
        """Remove all but the :data:`KEPT_ENTRIES` latest stored entries,
        the indexes that name an entry no longer there, and temporary files
        a crashed store left; only when a store added an entry, so a cache
        in use only for loading is never written. An entry another process
        has loaded stays mapped in it; one it is about to load is then
        compiled again. Nothing but py_host's own names is touched."""
        try:
            with os.scandir(self.directory) as found:
                files = [(entry.name, entry.stat(follow_symlinks=False)) for entry in found]
        except OSError:
            return
        newest_first = sorted(
            ((status.st_mtime_ns, name) for name, status in files if name.endswith(".cwasm")),
            reverse=True,
        )
        left = {name for _, name in newest_first[:KEPT_ENTRIES]}
        abandoned = time.time() - _ABANDONED_SECONDS
        doomed = [
            *(name for _, name in newest_first[KEPT_ENTRIES:]),
            *(
                name
                for name, _ in files
                if name.startswith("index-") and self._indexed_entry(name) not in left
            ),
            *(
                name
                for name, status in files
                if name.startswith(_TEMPORARY_PREFIX) and status.st_mtime < abandoned
            ),
        ]
        for name in doomed:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()
        if doomed:
            _LOG.debug("removed %d old files from %s", len(doomed), self.directory)

    def _indexed_entry(self, index: str) -> str | None:
        """The entry the index file ``index`` names, if it can be read."""
        try:
            fields = _read_private(os.path.join(self.directory, index), _MAX_INDEX_BYTES).split()
            return fields[6].decode() if len(fields) == 12 else None
        except (OSError, ValueError, Untrusted):
            return None

    def _note(self, source: Source, entry: Path, status: os.stat_result) -> None:
        """Note in the index that ``entry``, with ``status``, was checked and
        holds ``source``'s module; only once both have settled, and only as
        a faster start: a failure is ignored."""
        if not (settled(source.status) and settled(status)):
            return
        fields = [*identity(source.status), source.sha256, entry.name, *identity(status)]
        index = self.directory / self._index_name(source.status, source.configuration)
        try:
            descriptor, temporary = _temporary(self.directory)
        except OSError:
            return
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(" ".join(map(str, fields)) + "\n")
            os.replace(temporary, index)
        except OSError as error:
            _LOG.debug("index not written in %s: %s", self.directory, error)
            Path(temporary).unlink(missing_ok=True)

    def _index_name(self, wasm: os.stat_result, configuration: str) -> str:
        """One index per .wasm file (device and inode), wasmtime and engine
        configuration: a rebuilt .wasm replaces its own."""
        return f"index-wasmtime{WASMTIME_VERSION}-{configuration}-{wasm.st_dev}-{wasm.st_ino}"

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


def _temporary(directory: Path) -> tuple[int, str]:
    """A new file in ``directory`` to write and then rename into place:
    its descriptor and path. Named so that only py_host removes it, should
    a crash leave it behind."""
    return tempfile.mkstemp(dir=directory, prefix=_TEMPORARY_PREFIX, suffix=".tmp")


class Untrusted(Exception):
    """A cache directory or entry that someone else could have written."""


def _check_private(status: os.stat_result) -> None:
    """Raise :class:`Untrusted` unless what has ``status`` is the user's and
    only the user's to write."""
    if status.st_uid != os.getuid():
        raise Untrusted(f"it belongs to user {status.st_uid}, not to user {os.getuid()}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise Untrusted(f"others can write it (mode {stat.S_IMODE(status.st_mode):o})")


def _open_private(path: str | Path) -> tuple[int, os.stat_result]:
    """``path`` opened for reading (a descriptor, which the caller closes),
    and its status; :class:`Untrusted` when others could have written it,
    ValueError when it is not a regular file."""
    # The checks use the descriptor that is read: they cost one fstat and no
    # lookup by name. A symbolic link is refused, not followed.
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        _check_private(status)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor, status


def _read_private(path: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``path``, checked as :func:`_open_private` does."""
    descriptor, _ = _open_private(path)
    try:
        return os.read(descriptor, limit)
    finally:
        os.close(descriptor)


def _trusted_checksum(entry: Path) -> tuple[str, os.stat_result]:
    """The CRC-32 of ``entry`` and its status; :class:`Untrusted` when others
    could have written it, ValueError when it is not a regular file."""
    descriptor, status = _open_private(entry)
    try:
        with mmap.mmap(descriptor, 0, access=mmap.ACCESS_READ) as data:
            return f"{zlib.crc32(data):08x}", status
    finally:
        os.close(descriptor)
