"""Procedures on a Dask cluster (``pip install py_host[dask]``)::

    from distributed import Client
    import py_host, py_host.dask

    client = Client("tcp://scheduler:8786")
    rust = py_host.load(executor=py_host.CommandExecutor({"ping": ["ping", "-c", "1", "{host}"]}))
    for result in py_host.dask.run_procedures(client, rust, procedures, batch_size=1000):
        print(result.index, result.output or result.error, result.maybe_ran_twice)

Each worker loads the module once, through a worker plugin that carries the
.wasm's bytes (so workers need no shared file system) with its SHA-256, the
executor and the limits; procedures travel in batches, one task each; every
procedure comes back as its output or its :class:`~py_host.Error`.

Dask runs the task of a worker that died again on another worker (up to the
scheduler's ``allowed-failures``). A procedure acts on real hosts, so a batch
run again is said: its results have ``maybe_ran_twice`` set.

Only this module imports ``distributed``: ``import py_host`` never needs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import distributed

from .errors import ConfigError, Error, LoadError
from .models import ProcedureInput, ProcedureOutput
from .module import DEFAULT_WASM, MAX_MODULE_BYTES, RustModule, _load_again

DEFAULT_BATCH_SIZE = 1000
"""Procedures per task: enough that Dask's cost per task (a few milliseconds)
is small beside the batch's, few enough that a batch run again is short."""

Procedure = ProcedureInput | Mapping[str, Any]
"""What :meth:`~py_host.RustModule.start_procedure` takes."""


@dataclass(frozen=True)
class ProcedureResult:
    """What became of one procedure: its output, or the error it raised."""

    index: int
    """The procedure's position among those given to :func:`run_procedures`."""
    output: ProcedureOutput | None
    """What the procedure did; ``None`` when it raised :attr:`error`."""
    error: Error | None
    """The :class:`~py_host.Error` the procedure raised (an invalid input, a
    trap, a limit), as itself; ``None`` when it ran."""
    maybe_ran_twice: bool
    """True when the procedure's batch was started more than once (its
    worker died, and Dask ran it again elsewhere): the procedure's actions
    may have run on its hosts twice, or more."""


def run_procedures(
    client: distributed.Client,
    rust: RustModule,
    procedures: Iterable[Procedure],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[ProcedureResult]:
    """Run each of ``procedures`` with ``rust`` on ``client``'s cluster, and
    yield one :class:`ProcedureResult` per procedure as its batch completes
    (sort by :attr:`~ProcedureResult.index` for the input order).

    Each worker loads the very module ``rust`` is (the same .wasm, executor,
    limits, cache setting and ``max_instances``) once for this run, and closes
    it when the run ends. The executor is pickled to the workers, so it must
    pickle (the built-in ones do) and act the same there. An invalid
    procedure gives its own :class:`~py_host.InvalidInput` and never fails its
    neighbours. A batch whose task fails as a whole (Dask gave up after its
    workers died ``allowed-failures`` times: ``distributed.KilledWorker``)
    raises here, and the batches not yet yielded are cancelled.

    A batch Dask runs again has its results marked
    :attr:`~ProcedureResult.maybe_ran_twice`, whichever run's results
    arrive; once a batch's results are here, a later run of it does nothing.
    The one case not told apart: two runs of a batch starting at the very
    same moment, on a worker the scheduler wrongly took for dead and on
    another.

    The arguments are checked and the module's file read at once (a wrong
    one raises :class:`~py_host.ConfigError` naming it); nothing is sent to
    the cluster until the first result is asked for.
    """
    if not isinstance(client, distributed.Client):
        raise ConfigError(f"client must be a distributed.Client, not {type(client).__name__}")
    if not isinstance(rust, RustModule):
        raise ConfigError(
            f"rust must be a RustModule from py_host.load(), not {type(rust).__name__}"
        )
    if isinstance(procedures, (str, bytes, Mapping, ProcedureInput)) or not isinstance(
        procedures, Iterable
    ):
        raise ConfigError(
            "procedures must be an iterable of ProcedureInput or mappings, "
            f"not {type(procedures).__name__}"
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int of at least 1, not {batch_size!r}")
    return _run(client, _ModulePlugin(rust), procedures, batch_size)


Outcomes = list[ProcedureOutput | Error]
"""What a batch's task returns: each procedure's output or error, in order."""


class _BatchEvents:
    """The Events that tell whether a batch ran more than once. Each run of
    the batch marks that it started before it runs a procedure, then does
    nothing if the client already has the batch's results; the client marks
    that it has them, then looks whether a run other than the first started.
    Whatever the order of these calls at the scheduler, a run that goes on
    to run procedures is seen by the client, or sees that it started
    again."""

    def __init__(self, key: str, client: distributed.Client | None = None) -> None:
        self.started = distributed.Event(f"{key}-started", client)
        """Set by the batch's first run to start."""
        self.restarted = distributed.Event(f"{key}-restarted", client)
        """Set by every later run: it found ``started`` set."""
        self.delivered = distributed.Event(f"{key}-delivered", client)
        """Set by the client when it has the batch's results."""

    def clear(self) -> None:
        # A cleared Event is removed from the scheduler.
        for event in (self.started, self.restarted, self.delivered):
            event.clear()


def _run(
    client: distributed.Client,
    plugin: _ModulePlugin,
    procedures: Iterable[Procedure],
    batch_size: int,
) -> Iterator[ProcedureResult]:
    run = f"py_host-{uuid.uuid4().hex}"
    # Each batch's key, and the index of its first procedure.
    firsts: dict[str, int] = {}
    undelivered: dict[str, distributed.Future[Outcomes | None]] = {}
    client.register_plugin(plugin, name=run)
    try:
        items = iter(procedures)
        first = 0
        while batch := list(islice(items, batch_size)):
            key = f"{run}-{len(firsts)}"
            firsts[key] = first
            undelivered[key] = client.submit(_run_batch, run, key, batch, key=key, pure=False)
            first += len(batch)
        # as_completed would run on the default client's loop, maybe another client's.
        for future, outcomes in distributed.as_completed(
            list(undelivered.values()), loop=client.loop, with_results=True
        ):
            events = _BatchEvents(future.key, client)
            events.delivered.set()
            maybe_ran_twice = bool(events.restarted.is_set())
            # Released at once: Dask runs a finished batch again if its
            # worker dies while the client still wants the result.
            del undelivered[future.key]
            future.release()
            # Only a run started after the client had the results returns None.
            assert outcomes is not None
            for index, outcome in enumerate(outcomes, start=firsts[future.key]):
                if isinstance(outcome, Error):
                    yield ProcedureResult(index, None, outcome, maybe_ran_twice)
                else:
                    yield ProcedureResult(index, outcome, None, maybe_ran_twice)
    finally:
        client.cancel(list(undelivered.values()))
        for key in firsts:
            _BatchEvents(key, client).clear()
        client.unregister_worker_plugin(run)


def _run_batch(plugin_name: str, key: str, procedures: list[Procedure]) -> Outcomes | None:
    """The task of one batch, on a worker: each procedure's output or error,
    or None when the client already has them from another run."""
    worker = distributed.get_worker()
    plugin = worker.plugins.get(plugin_name)
    if not isinstance(plugin, _ModulePlugin) or plugin.module is None:
        raise LoadError(f"py_host's module is not loaded on the worker {worker.address}")
    events = _BatchEvents(key)
    if events.started.is_set():
        events.restarted.set()
    else:
        events.started.set()
    if events.delivered.is_set():
        return None
    outcomes: Outcomes = []
    for procedure in procedures:
        try:
            outcomes.append(plugin.module.start_procedure(procedure))
        except Error as error:
            outcomes.append(error)
    return outcomes


class _ModulePlugin(distributed.WorkerPlugin):
    """Loads a RustModule once on each worker, from the .wasm's bytes it
    carries: the workers need not have the client's file, only the same
    py_host to unpickle it with."""

    def __init__(self, rust: RustModule) -> None:
        self._loaded = rust._loaded
        path = Path(self._loaded.path) if self._loaded.path is not None else DEFAULT_WASM
        try:
            with path.open("rb") as file:
                self._wasm = file.read(MAX_MODULE_BYTES + 1)
        except OSError as error:
            raise LoadError(f"cannot read the module {str(path)!r}: {error}") from None
        if hashlib.sha256(self._wasm).hexdigest() != self._loaded.sha256:
            raise LoadError(f"{str(path)!r} has changed since it was loaded: its SHA-256 differs")
        self.module: RustModule | None = None

    def setup(self, worker: distributed.Worker) -> None:
        # A file of the worker's own (py_host loads modules from files); its
        # SHA-256 is checked again as it is loaded.
        path = Path(worker.local_directory) / f"py_host-{self._loaded.sha256}.wasm"
        path.write_bytes(self._wasm)
        self.module = _load_again(dataclasses.replace(self._loaded, path=str(path)))

    def teardown(self, worker: distributed.Worker) -> None:
        if self.module is not None:
            self.module.close()
