"""`just bench`'s Dask part: procedures per second through py_host.dask on a
LocalCluster of one and of two worker processes, against one process
running the same procedures itself.

The three run in interleaved rounds, as bench/run.py's workloads do; each
figure is the median over the rounds. Before the rounds, each way runs the
procedures once and must get the very outputs one process gets.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator

from distributed import Client, LocalCluster

import py_host
import py_host.dask

PROCEDURES = 50_000
"""Procedures per round (times the benchmark's scale)."""
BATCH_SIZE = 5_000
NETWORK = py_host.SimulatedNetwork(down={"server1"})
PROCEDURE = {"timeout": 10, "retries": 3, "action": "reboot", "host_list": ["server1", "server2"]}
"""The tutorial's two hosts with server1 down: four rounds of the executor each."""
ONE_PROCESS = "one process (py_host.load, no Dask)"
WORKERS = {1: "Dask, 1 worker process", 2: "Dask, 2 worker processes"}


@contextlib.contextmanager
def cluster(workers: int) -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # Its HTTP server (health, metrics) on a free port of its own, not 8787.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as local,
        Client(local) as client,
    ):
        client.wait_for_workers(workers)
        yield client


def procedures_per_second(run: Callable[[], list[py_host.ProcedureOutput]], count: int) -> float:
    started = time.perf_counter()
    outputs = run()
    elapsed = time.perf_counter() - started
    assert len(outputs) == count
    return count / elapsed


def measure_dask(rounds: int, scale: float) -> dict[str, list[float]]:
    """Procedures per second in each of the three ways, one sample a round."""
    count = max(1, round(PROCEDURES * scale))
    procedures = [
        py_host.ProcedureInput(job_id=job, **PROCEDURE)  # type: ignore[arg-type]
        for job in range(count)
    ]
    samples: dict[str, list[float]] = {ONE_PROCESS: [], **{name: [] for name in WORKERS.values()}}
    with (
        py_host.load(executor=NETWORK) as rust,
        cluster(1) as one_worker,
        cluster(2) as two_workers,
    ):

        def alone() -> list[py_host.ProcedureOutput]:
            return [rust.start_procedure(procedure) for procedure in procedures]

        def on(client: Client) -> Callable[[], list[py_host.ProcedureOutput]]:
            def run() -> list[py_host.ProcedureOutput]:
                results = py_host.dask.run_procedures(
                    client, rust, procedures, batch_size=BATCH_SIZE
                )
                ordered = sorted(results, key=lambda result: result.index)
                return [result.output for result in ordered if result.output is not None]

            return run

        ways = {ONE_PROCESS: alone, WORKERS[1]: on(one_worker), WORKERS[2]: on(two_workers)}
        expected = alone()
        for name, run in ways.items():
            assert run() == expected, f"{name} does not get one process's outputs"
        for number in range(rounds):
            # The order rotates, so a drift in the machine's speed touches all alike.
            names = list(ways)[number % 3 :] + list(ways)[: number % 3]
            for name in names:
                samples[name].append(procedures_per_second(ways[name], count))
    print("  measured: Dask", file=sys.stderr)
    return samples


def dask_table(samples: dict[str, list[float]], scale: float) -> str:
    """The Markdown table of ``samples``, with each way's speed-up over one process."""
    count = max(1, round(PROCEDURES * scale))
    alone = statistics.median(samples[ONE_PROCESS])
    lines = [
        f"| {count:,} two-host procedures (simulated network, server1 down, 3 retries), "
        f"batches of {BATCH_SIZE:,}: procedures/s | median (slowest–fastest round) | ÷ one process |",
        "|---|---|---|",
    ]
    for name, figures in samples.items():
        median = statistics.median(figures)
        lines.append(
            f"| {name} | {median:,.0f} ({min(figures):,.0f}–{max(figures):,.0f}) | "
            f"{median / alone:.2f}× |"
        )
    return "\n".join(lines)
