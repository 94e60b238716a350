"""The loaded module: the tutorial's functions as Python methods."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import wasmtime

from ._abi import MAX_INPUT, Exports, check_module
from ._cache import FileIdentity, ModuleCache, Source, default_directory, identity, settled
from ._engine import Flavor, compile_module, engine, keep_module, kept_module
from ._instance import Instance, prepare
from ._pool import InstancePool, Lease
from ._rounds import ProgressCallback, policy_for_input, policy_for_json, procedure_unread
from ._rounds import procedure as procedure_run
from ._transport import Context
from ._wire import encode_input
from .errors import (
    AbiViolation,
    BufferFreed,
    ClosedError,
    InvalidInput,
    LoadError,
    ModuleError,
)
from .executors import Executor, HostAction, as_executor
from .limits import DEFAULT_LIMITS, Limits
from .models import I32_MAX, I32_MIN, ProcedureInput, ProcedureOutput

T = TypeVar("T")
P = ParamSpec("P")
Buffer = bytes | bytearray | memoryview
"""The bytes-like inputs accepted beside ``str``."""

DEFAULT_WASM = Path(__file__).with_name("rust_lib.wasm")
"""The package's own module: inside an installed package, built with it;
in a clone of the repository, where ``just build`` puts it."""
MAX_MODULE_BYTES = 64 << 20
"""The largest .wasm file load() reads (ours is about 0.3 MB): a path such
as /dev/zero must not be read without end."""
WASM_PAGE = 64 * 1024
"""Bytes in a page of linear memory."""

_LOG = logging.getLogger("py_host.load")


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    executor: Executor | HostAction | None = None,
    limits: Limits | None = None,
    cache: bool | str | os.PathLike[str] = True,
    max_instances: int | None = None,
) -> RustModule:
    """Load the module at ``path`` (by default the package's own, :data:`DEFAULT_WASM`).

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

    ``max_instances`` bounds the pool of instances that serve calls from
    several threads at once; each has its own memory and its own limits, so
    a module may use up to ``max_instances * limits.max_memory_bytes``. By
    default it is 64 when an executor is granted (a procedure holds its
    instance while its rounds wait on hosts) and the number of CPUs, at
    most 8, when none is (calls only compute). Instances are made as calls
    need them.
    """
    limits = limits if limits is not None else DEFAULT_LIMITS
    granted = as_executor(executor) if executor is not None else None
    module, where, sha256 = compile_for(path, limits, cache)
    size = pool_size(max_instances, granted is not None)
    loaded = _Loaded(where, sha256, granted, limits, cache, size)
    return RustModule(module, granted, limits, size, loaded=loaded)


IO_INSTANCES = 64
"""The pool's default size when an executor is granted: a procedure holds
its instance while the executor's rounds wait on hosts, so the pool bounds
how many procedures wait at once. With a 20 ms executor and 64 callers,
throughput grew with the pool up to 64 (docs/BENCHMARKS.md); instances
are made only when callers need them."""


def pool_size(max_instances: int | None, granted: bool) -> int:
    """The pool's size: ``max_instances``, or by default :data:`IO_INSTANCES`
    when an executor is ``granted`` and the number of CPUs (at most 8) when
    every call only computes."""
    if max_instances is not None:
        return max_instances
    return IO_INSTANCES if granted else min(os.cpu_count() or 1, 8)


def compile_for(
    path: str | os.PathLike[str] | None,
    limits: Limits,
    cache: bool | str | os.PathLike[str],
) -> tuple[wasmtime.Module, str | None, str]:
    """The module at ``path`` compiled for ``limits`` (through ``cache``),
    the absolute path it was read from (None for the packaged one), and its
    SHA-256: the work of load() and load_async() before instances are made."""
    started = time.perf_counter()
    wasm_path = Path(path) if path is not None else DEFAULT_WASM
    flavor = Flavor.for_limits(limits)
    directory = default_directory() if cache is True else Path(cache) if cache else None
    kept = ModuleCache(directory) if directory else None
    wasm = b""
    try:
        # A descriptor, not a file object: a warm load reads nothing from it.
        descriptor = os.open(wasm_path, os.O_RDONLY)
        try:
            status = os.fstat(descriptor)
            known = _known(status, flavor, kept)
            if known is None:
                with open(descriptor, "rb", closefd=False) as file:
                    wasm = file.read(MAX_MODULE_BYTES + 1)
        finally:
            os.close(descriptor)
    except OSError as error:
        hint = (
            " (the package's own module: reinstall the package, whose build makes it,"
            " or in a clone of its repository run `just build`)"
            if path is None
            else ""
        )
        raise LoadError(f"cannot read the module {str(wasm_path)!r}{hint}: {error}") from None
    if known is not None:
        module, source, sha256 = known
    else:
        if len(wasm) > MAX_MODULE_BYTES:
            raise LoadError(
                f"the module {str(wasm_path)!r} is larger than {MAX_MODULE_BYTES} bytes, "
                "the most py_host reads"
            )
        sha256 = hashlib.sha256(wasm).hexdigest()
        module, source = compile_module(
            wasm,
            Source(status, sha256, flavor.name),
            wasm_path,
            flavor=flavor,
            cache=kept,
            check=partial(check_module, engine=engine(flavor) if flavor.epochs else None),
        )
        if settled(status):
            # Each a single dict operation, safe from any thread without a
            # lock (which a fork could leave held): more files than this
            # are rare, and then only hashed again.
            if len(_SHA256S) >= _SHA256S_KEPT:
                _SHA256S.clear()
            _SHA256S[identity(status)] = sha256
    if _LOG.isEnabledFor(logging.DEBUG):
        _LOG.debug(
            "loaded %s (sha256 %s), %s, in %.1f ms",
            wasm_path,
            sha256[:12],
            source,
            (time.perf_counter() - started) * 1000,
        )
    return module, os.path.realpath(wasm_path) if path is not None else None, sha256


_SHA256S: dict[FileIdentity, str] = {}
"""The SHA-256 of each .wasm file this process read, by what its status says
of its contents; only files that had settled (see ``_cache.settled``), so a
change to one shows in its status and misses this."""
_SHA256S_KEPT = 64


def _known(
    status: os.stat_result, flavor: Flavor, cache: ModuleCache | None
) -> tuple[wasmtime.Module, str, str] | None:
    """The module, where it came from and the SHA-256 of the .wasm whose
    status is ``status``, if it is known unchanged since it was checked: by
    this process, or by an earlier one through ``cache``'s index. ``None``
    means the .wasm must be read and hashed."""
    sha256 = _SHA256S.get(identity(status))
    if sha256 is not None:
        module = kept_module(sha256, flavor)
        if module is not None:
            return module, "from this process's memory", sha256
    recalled = cache.recall(status, flavor.name, engine(flavor)) if cache else None
    if recalled is None:
        return None
    sha256, module = recalled
    keep_module(sha256, flavor, module)
    return module, "from the disk cache", sha256


_LINKED: weakref.WeakKeyDictionary[wasmtime.Module, wasmtime.InstancePre] = (
    weakref.WeakKeyDictionary()
)


def linked_once(module: wasmtime.Module, limits: Limits) -> wasmtime.InstancePre:
    """``module`` linked for instances (see ``_instance.prepare``), once per
    compiled module: a module is compiled for one engine, the one its
    ``limits`` choose, and a reload of it in this process links nothing."""
    linked = _LINKED.get(module)
    if linked is None:
        # No lock: two threads may both link it, and one result is kept.
        linked = _LINKED.setdefault(module, prepare(module, limits))
    return linked


@dataclass(frozen=True)
class _Loaded:
    """How a RustModule was loaded: what pickling it sends, and what loads it
    again in another process."""

    path: str | None
    """The module's file, or None for the one packaged with py_host (each
    process loads its own: the same file wherever this py_host is installed)."""
    sha256: str
    """The module's SHA-256: the one loaded again must be the very same."""
    executor: Executor | None
    limits: Limits
    cache: bool | str | os.PathLike[str]
    max_instances: int


def _load_again(loaded: _Loaded) -> RustModule:
    """The module ``loaded`` describes, for this process: what unpickling
    makes. It is loaded at its first use."""
    return _UnpickledModule(loaded)


def _load_checked(loaded: _Loaded) -> RustModule:
    """The module ``loaded`` describes, loaded in this process."""
    rust = load(
        loaded.path,
        executor=loaded.executor,
        limits=loaded.limits,
        cache=loaded.cache,
        max_instances=loaded.max_instances,
    )
    if rust._loaded.sha256 != loaded.sha256:
        rust.close()
        where = loaded.path or "py_host's packaged module"
        raise LoadError(f"{where} is not the module that was pickled: its SHA-256 differs")
    return rust


class RustModule:
    """The module, loaded and ready; made by :func:`py_host.load`.

    Safe to share between threads: each call runs on an instance of its own
    from a pool (see :func:`py_host.load`'s ``max_instances``), and
    WebAssembly runs without the GIL, so calls from several threads run in
    parallel. After a trap the instance is discarded and the next call runs
    on a fresh one. Use it as a context manager, or call :meth:`close`, to
    free it at once.
    """

    def __init__(
        self,
        module: wasmtime.Module,
        executor: Executor | None,
        limits: Limits,
        max_instances: int,
        *,
        loaded: _Loaded,
    ) -> None:
        self._loaded = loaded
        self._executor = executor
        granted = executor is not None
        linked = linked_once(module, limits)
        self._pool = InstancePool(lambda: Instance(linked, granted, limits), max_instances)
        self.crate_version: str = self._call(Exports.crate_version)
        """The module's own version (its Rust crate's). It speaks ABI version
        :data:`ABI_VERSION`, or it would not have loaded."""

    def print_string(self, text: str | Buffer) -> None:
        """Print ``text`` and a newline from Rust, to ``sys.stdout``.

        ``bytes``, ``bytearray`` or ``memoryview`` must hold UTF-8; invalid
        UTF-8, or a ``str`` with lone surrogates, raises :class:`InvalidInput`.
        """
        self._call(print_string_step(text), prints=True)

    def print_int(self, value: int) -> None:
        """Print ``Python gave us number <value>`` from Rust, to ``sys.stdout``.

        ``value`` must be an int in the i32 range.
        """
        self._call(print_int_step(value), prints=True)

    def start_procedure(
        self,
        procedure: ProcedureInput | Mapping[str, Any],
        *,
        progress: ProgressCallback | None = None,
    ) -> ProcedureOutput:
        """Run a procedure and return what it did.

        A mapping is validated as a :class:`ProcedureInput` first; invalid
        input raises :class:`InvalidInput` naming the field. The module
        checks the input again, so even a model made with ``model_construct``
        cannot get bad values past it.

        ``progress``, if given, is called after each round the executor
        runs with a :class:`~py_host.Progress`: how many hosts are done, for
        a progress bar. What it raises ends the procedure and reaches the
        caller.
        """
        model, data = procedure_input(procedure)
        policy = policy_for_input(model, data, self._executor is not None)
        return self._lend(None, procedure_run, data, policy, self._executor, progress)

    def start_procedure_json(
        self, data: str | Buffer, *, progress: ProgressCallback | None = None
    ) -> bytes:
        """Run a procedure from ProcedureInput JSON and return ProcedureOutput
        JSON, with no models on the input side: the module validates it.
        ``progress`` as for :meth:`start_procedure`."""
        raw = as_input(data)
        policy = policy_for_json(raw, self._executor is not None)
        output = self._lend(None, procedure_run, raw, policy, self._executor, progress)
        return output.model_dump_json().encode()

    def start_procedure_buffer(
        self, data: str | Buffer, *, progress: ProgressCallback | None = None
    ) -> ReplyBuffer:
        """The tutorial's way: run a procedure from JSON and get a handle on
        the reply buffer still in the module's memory, to read and then free.
        Unlike the tutorial's pointer, the handle refuses use after free.
        ``progress`` as for :meth:`start_procedure`."""
        raw = as_input(data)
        policy = policy_for_json(raw, self._executor is not None)
        executor = self._executor

        def run(instance: Instance) -> ReplyBuffer:
            reply = procedure_unread(instance, raw, policy, executor, progress)
            return ReplyBuffer(self, instance, *reply)

        return self._lend(None, run)

    @property
    def memory_size(self) -> int:
        """The size of the linear memory of the module's instances, in bytes."""
        return sum(self._each_instance(Exports.memory_size))

    @property
    def memory_pages(self) -> int:
        """The size of the linear memory of the module's instances, in 64 KiB pages."""
        return self.memory_size // WASM_PAGE

    def live_allocations(self) -> int:
        """How many buffers the module's instances hold for the host: 0
        between calls, unless a :class:`ReplyBuffer` is still unfreed."""
        return sum(self._each_instance(Exports.live_allocations))

    def close(self) -> None:
        """Free the module's instances now. Further calls raise :class:`ClosedError`."""
        self._pool.close()

    def __repr__(self) -> str:
        # Read from how it was loaded and its own attributes only: an
        # unpickled module not yet used must not load to say what it is.
        loaded = self._loaded
        state = vars(self)
        pool: InstancePool | None = state.get("_pool")
        if pool is None:
            status = "closed" if state.get("_closed_unused") else "not loaded yet"
        else:
            status = "closed" if pool.closed else "open"
        file = "the packaged module" if loaded.path is None else os.path.basename(loaded.path)
        version = f", module {state['crate_version']}" if "crate_version" in state else ""
        executor = "no executor" if loaded.executor is None else f"executor {loaded.executor!r}"
        return (
            f"<RustModule {file} sha256:{loaded.sha256[:12]}{version}, {executor}, "
            f"{_changed(loaded.limits)}, up to {loaded.max_instances} instances, {status}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as how it was loaded, so it can be sent to another process
        # (a process pool, Dask, Ray), which loads the very same module again
        # with the same executor and limits: instances and memory stay here.
        return (_load_again, (self._loaded,))

    def __enter__(self) -> RustModule:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _each_instance(self, run: Callable[[Exports, Context], T]) -> list[T]:
        """``run`` on every live instance; one discarded meanwhile (another
        thread's call trapped) is skipped."""
        results = []
        for instance in self._pool.live():
            try:
                results.append(self._lend(instance, Instance.call, run))
            except BufferFreed:
                continue
        return results

    def _call(
        self,
        run: Callable[[Exports, Context], T],
        *,
        prints: bool = False,
        on: Instance | None = None,
    ) -> T:
        """``run`` in one step on an instance from the pool (``on`` that one)."""
        return self._lend(on, Instance.call, run, prints)

    def _lend(
        self,
        on: Instance | None,
        work: Callable[Concatenate[Instance, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``work(instance, *args, **kwargs)`` on an instance lent from the
        pool (``on``, if not None) for one run. The instance is discarded after anything but a
        :class:`ModuleError`, the module's own well-formed refusal, or a
        :class:`BufferFreed`: after an exception from anywhere else, even a
        signal handler's between two steps, its state is unknown."""
        lease = Lease()
        discard = True
        try:
            instance = self._pool.acquire(lease, on)
            instance.begin()
            result = work(instance, *args, **kwargs)
            discard = False
        except (ModuleError, BufferFreed):
            discard = False
            raise
        finally:
            self._pool.end_lease(lease.ref)
            self._pool.release(lease, discard=discard)
        return result


class _UnpickledModule(RustModule):
    """A RustModule unpickled in this process, loaded at its first use.

    A process pool's worker unpickles a task before running it, and an
    exception there (the module's file missing or changed on this side)
    kills the worker and breaks the whole pool; raised by the module's
    first call instead, it reaches the caller as the task's own. A module
    only passed along, pickled again, is never loaded. A load that fails is
    tried again at the next use."""

    def __init__(self, loaded: _Loaded) -> None:
        self._loaded = loaded
        self._first_use = threading.Lock()
        self._closed_unused = False

    def __getattr__(self, name: str) -> Any:
        # Called only for what is not set: before the first use, the loaded
        # module's state (its pool, executor and version).
        if name.startswith("__"):
            raise AttributeError(name)
        with self._first_use:
            if "_pool" not in vars(self):
                if self._closed_unused:
                    raise ClosedError("the module was closed")
                # One dict update, under the GIL: no thread sees part of the state.
                vars(self).update(vars(_load_checked(self._loaded)))
        return object.__getattribute__(self, name)

    def close(self) -> None:
        with self._first_use:
            if "_pool" not in vars(self):
                # Closing a module never used must not load it.
                self._closed_unused = True
                return
        super().close()


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
        # Made while the instance is lent: a buffer dropped unfreed, even
        # before its caller got it, is freed at the instance's next run.
        instance.unread[ptr] = weakref.ref(self)

    @property
    def freed(self) -> bool:
        return self._freed

    def __repr__(self) -> str:
        return f"<ReplyBuffer of {self._length} bytes, {'freed' if self._freed else 'live'}>"

    def read(self) -> bytes:
        """A copy of the reply."""

        def read(exports: Exports, ctx: Context) -> bytes:
            self._check_live()
            return exports.read(ctx, self._ptr, self._length)

        return self._module._call(read, on=self._instance)

    def free(self) -> None:
        """Give the buffer back to the module, as the tutorial's ``free_mem``."""

        def free(exports: Exports, ctx: Context) -> None:
            self._check_live()
            self._freed = True
            self._instance.unread.pop(self._ptr, None)
            if not exports.free_mem(ctx, self._ptr):
                raise AbiViolation("free_mem did not recognise a reply the module returned")

        self._module._call(free, on=self._instance)

    def __enter__(self) -> ReplyBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._freed:
            self.free()

    def _check_live(self) -> None:
        # Runs on the instance, under the pool's lending: no other thread can
        # free the buffer between this check and the use that follows.
        if self._freed:
            raise BufferFreed("this reply buffer was already freed")


def _changed(limits: Limits) -> str:
    """``limits`` written with only the fields that differ from the defaults."""
    default = Limits()
    changed = [
        f"{field.name}={getattr(limits, field.name)!r}"
        for field in dataclasses.fields(limits)
        if getattr(limits, field.name) != getattr(default, field.name)
    ]
    return f"Limits({', '.join(changed)})"


def print_string_step(text: str | Buffer) -> Callable[[Exports, Context], None]:
    """The step that prints ``text``, checked as :meth:`RustModule.print_string` says."""
    data = as_input(text)
    # Checked while the instance is lent: one that broke the ABI is discarded.
    return partial(Exports.print_string, text=data)


def print_int_step(value: int) -> Callable[[Exports, Context], None]:
    """The step that prints ``value``, checked as :meth:`RustModule.print_int` says."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("invalid_type", f"expected an int, got {type(value).__name__}")
    if not I32_MIN <= value <= I32_MAX:
        raise InvalidInput("out_of_range", f"{value} is outside the i32 range")
    return partial(Exports.print_int, value=value)


def procedure_input(
    procedure: ProcedureInput | Mapping[str, Any],
) -> tuple[ProcedureInput, bytes]:
    """``procedure`` as a model, and the input the module gets for it."""
    if not isinstance(procedure, ProcedureInput):
        procedure = ProcedureInput.model_validate(procedure)
    data = encode_input(procedure)
    if len(data) > MAX_INPUT:
        raise _too_long(data)
    return procedure, data


def as_input(data: str | Buffer) -> bytes:
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
        raise _too_long(data)
    return data


def _too_long(data: bytes) -> InvalidInput:
    return InvalidInput(
        "invalid_value", f"{len(data)} bytes is more than an input can hold ({MAX_INPUT})"
    )
