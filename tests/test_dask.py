"""py_host.dask on a LocalCluster of two worker processes (issue 13): the
same results as one process, errors per procedure, the module loaded once
per worker, and a worker that dies mid-batch losing nothing, its batch run
again and said so."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import tutorial_input
from distributed import Client, LocalCluster

import py_host
import py_host.dask

pytestmark = pytest.mark.timeout(240)

NETWORK = py_host.SimulatedNetwork(down={"server1"}, flaky={"server3": 2})
"""server1 fails every attempt; server3 fails its first two."""


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # Its HTTP server (health, metrics) on a free port of its own, not 8787.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_all(
    client: Client, rust: py_host.RustModule, procedures: list[Any], batch_size: int
) -> list[py_host.dask.ProcedureResult]:
    """Every result, in the procedures' order; each index exactly once."""
    results = sorted(
        py_host.dask.run_procedures(client, rust, procedures, batch_size=batch_size),
        key=lambda result: result.index,
    )
    assert [result.index for result in results] == list(range(len(procedures)))
    return results


def test_the_results_are_those_of_one_process(client: Client) -> None:
    procedures = [
        tutorial_input(job_id=job, retries=job % 4, host_list=["server1", "server2", "server3"])
        for job in range(40)
    ]
    with py_host.load(executor=NETWORK) as rust:
        results = run_all(client, rust, procedures, batch_size=7)
        assert [result.output for result in results] == [
            rust.start_procedure(procedure) for procedure in procedures
        ]
    for procedure, result in zip(procedures, results, strict=True):
        assert result.output is not None
        assert result.error is None
        assert not result.maybe_ran_twice
        retries = procedure["retries"]
        # The rules: a host down fails 1 + retries attempts; server3 comes up
        # at its third attempt, if it has one.
        failed = ["server1"] if retries >= 2 else ["server1", "server3"]
        assert result.output.job_id == procedure["job_id"]
        assert result.output.failed_hosts == failed
        assert [failure.attempts for failure in result.output.failures] == [1 + retries] * len(
            failed
        )
        assert result.output.failures[0].reason == "host is down"


def test_an_invalid_procedure_gets_its_error_and_its_neighbours_run(client: Client) -> None:
    procedures: list[Any] = [
        tutorial_input(job_id=0),
        tutorial_input(job_id=1, timeout=0),
        tutorial_input(job_id=2, host_list=["a", "A"]),
        # Past pydantic: the module itself refuses it.
        py_host.ProcedureInput.model_construct(**tutorial_input(job_id=3, retries=1000)),
        tutorial_input(job_id=4),
    ]
    with py_host.load(executor=NETWORK) as rust:
        results = run_all(client, rust, procedures, batch_size=5)
        for procedure, result in zip(procedures, results, strict=True):
            try:
                expected: py_host.ProcedureOutput | py_host.Error = rust.start_procedure(procedure)
            except py_host.Error as error:
                expected = error
            if isinstance(expected, py_host.Error):
                assert result.output is None
                assert type(result.error) is type(expected)
                assert vars(result.error) == vars(expected)
                assert str(result.error) == str(expected)
            else:
                assert (result.output, result.error) == (expected, None)
    errors = [result.error for result in results]
    assert errors[0] is None
    assert errors[4] is None
    assert isinstance(errors[1], py_host.InvalidInput)
    assert (errors[1].kind, errors[1].path) == ("out_of_range", ("timeout",))
    assert isinstance(errors[3], py_host.InvalidInput)
    assert (errors[3].kind, errors[3].path) == ("out_of_range", ("retries",))


LOADS: Counter[str] = Counter()
"""In a worker process: RustModules made there while the counter is on."""


def count_loads() -> None:
    original = py_host.RustModule.__init__

    def counted(self: py_host.RustModule, *args: Any, **kwargs: Any) -> None:
        LOADS["RustModule"] += 1
        original(self, *args, **kwargs)

    counted.original = original  # type: ignore[attr-defined]
    py_host.RustModule.__init__ = counted  # type: ignore[method-assign]


def stop_counting_loads() -> int:
    py_host.RustModule.__init__ = py_host.RustModule.__init__.original  # type: ignore[attr-defined,method-assign]
    return LOADS["RustModule"]


def py_host_plugins(dask_worker: Any) -> list[str]:
    return [name for name in dask_worker.plugins if name.startswith("py_host-")]


def test_each_worker_loads_the_module_once_per_run(client: Client) -> None:
    client.run(count_loads)
    try:
        with py_host.load(executor=NETWORK) as rust:
            results = run_all(client, rust, [tutorial_input(job_id=job) for job in range(30)], 2)
    finally:
        loads = client.run(stop_counting_loads)
    assert all(result.output is not None for result in results)
    assert list(loads.values()) == [1, 1]
    # The run's plugin is gone, its module closed, once the run ends.
    assert list(client.run(py_host_plugins).values()) == [[], []]


@dataclass(frozen=True)
class DiesOnce:
    """Every host is up, but the first attempt on host ``victim`` ends its
    worker's process; ``marker`` remembers it did, so the next one succeeds."""

    marker: Path

    def run_round(self, round: py_host.Round) -> list[py_host.Outcome]:
        if "victim" in round.hosts:
            try:
                self.marker.open("x").close()
            except FileExistsError:
                pass
            else:
                # The client takes the batches this worker finished before
                # meanwhile: only the batch in progress is lost with it.
                time.sleep(1)
                os._exit(1)
        return [py_host.Outcome.ok()] * len(round.hosts)


def test_a_batch_whose_worker_dies_runs_again_marked_and_nothing_is_lost(
    client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    procedures = [tutorial_input(job_id=job, host_list=["server1"]) for job in range(60)]
    # In the middle of the third batch of ten: procedures 20 to 24 ran before it died.
    procedures[25] = tutorial_input(job_id=25, host_list=["server1", "victim"])
    with py_host.load(executor=DiesOnce(marker)) as rust:
        results = run_all(client, rust, procedures, batch_size=10)
    assert marker.exists()
    assert all(
        result.output is not None and result.output.result == "success" for result in results
    )
    assert [result.output.job_id for result in results if result.output] == list(range(60))
    assert {result.index for result in results if result.maybe_ran_twice} == set(range(20, 30))
    client.wait_for_workers(2, timeout=120)


def test_bad_arguments_are_refused_at_once_naming_them(client: Client) -> None:
    procedures = [tutorial_input()]
    with py_host.load() as rust:
        for batch_size in (0, -1, True, 2.0, "10"):
            with pytest.raises(py_host.ConfigError, match="batch_size"):
                py_host.dask.run_procedures(client, rust, procedures, batch_size=batch_size)  # type: ignore[arg-type]
        with pytest.raises(py_host.ConfigError, match="client"):
            py_host.dask.run_procedures("tcp://127.0.0.1:8786", rust, procedures)  # type: ignore[arg-type]
        with pytest.raises(py_host.ConfigError, match="rust"):
            py_host.dask.run_procedures(client, py_host.module.DEFAULT_WASM, procedures)  # type: ignore[arg-type]
        for not_procedures in (tutorial_input(), 5, "procedures"):
            with pytest.raises(py_host.ConfigError, match="procedures"):
                py_host.dask.run_procedures(client, rust, not_procedures)  # type: ignore[arg-type]


def test_a_module_file_changed_since_it_was_loaded_is_refused(
    client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "module.wasm"
    path.write_bytes(py_host.module.DEFAULT_WASM.read_bytes())
    with py_host.load(path) as rust:
        # A custom section appended: a valid module, but another one.
        path.write_bytes(path.read_bytes() + b"\x00\x02\x01x")
        with pytest.raises(py_host.LoadError, match="changed since it was loaded"):
            py_host.dask.run_procedures(client, rust, [tutorial_input()])


def test_no_procedures_no_results(client: Client) -> None:
    with py_host.load() as rust:
        assert list(py_host.dask.run_procedures(client, rust, [])) == []
