"""`just bench`: the same Rust logic three ways, measured side by side.

Each workload is first run once in every host, which must come to the same
result, output and rounds. Then it runs for each host in interleaved rounds
(host order rotating each round), so a drift in the machine's speed touches
all of them alike; each figure is the median over the rounds, with the
fastest and slowest round as its spread, and a ratio is the median of the
per-round ratios.
Cold starts and memory are measured in fresh processes. Prints a table,
writes docs/BENCHMARKS.md and docs/benchmarks.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import concurrency
from dask_bench import dask_table, measure_dask
from hosts import Host, NaiveHost, NativeHost, PyHost

import py_host

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "py_host/rust_lib.wasm"
NATIVE = ROOT / "bench/native/target/release/librust_lib_native.so"
TUTORIAL = {"timeout": 10, "retries": 3, "action": "reboot", "job_id": 1}
TWO_HOSTS = py_host.ProcedureInput(host_list=["server1", "server2"], **TUTORIAL)  # type: ignore[arg-type]
MANY_HOSTS = py_host.ProcedureInput(host_list=[f"host{i}" for i in range(10_000)], **TUTORIAL)  # type: ignore[arg-type]


class NullWriter:
    """A sys.stdout that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def output_discarded() -> contextlib.AbstractContextManager[object]:
    """sys.stdout goes nowhere: every host writes what the Rust side printed
    there, after reading it from the outbox."""
    return contextlib.redirect_stdout(NullWriter())  # type: ignore[type-var]


@dataclass
class Workload:
    name: str
    calls: int
    executor: Callable[[], py_host.Executor | None]
    run: Callable[[Host], Callable[[], object]]
    discard_output: bool = False


class AllOk:
    """An executor that answers every host ok at once: what is left is the
    hosts' own cost of a round in each host."""

    def run_round(self, round: py_host.Round) -> Sequence[py_host.Outcome]:
        return [py_host.Outcome.ok()] * len(round.hosts)


WORKLOADS = [
    Workload("empty export (the call floor)", 20_000, lambda: None, lambda h: h.empty),
    Workload(
        "print_int, output discarded",
        5_000,
        lambda: None,
        lambda h: lambda: h.print_int(2),
        discard_output=True,
    ),
    Workload(
        "start_procedure, 2 hosts, dry run",
        5_000,
        lambda: None,
        lambda h: lambda: h.start_procedure(TWO_HOSTS),
    ),
    Workload(
        "start_procedure, 2 hosts, simulated network (1 down, 3 retries)",
        2_000,
        lambda: py_host.SimulatedNetwork(down={"server1"}),
        lambda h: lambda: h.start_procedure(TWO_HOSTS),
    ),
    Workload(
        "start_procedure, 10,000 hosts, dry run",
        20,
        lambda: None,
        lambda h: lambda: h.start_procedure(MANY_HOSTS),
    ),
    Workload(
        "start_procedure, 10,000 hosts, an executor that answers ok at once",
        20,
        AllOk,
        lambda h: lambda: h.start_procedure(MANY_HOSTS),
    ),
]
HOSTS: list[Callable[[py_host.Executor | None], Host]] = [
    lambda executor: NativeHost(NATIVE, executor),
    lambda executor: NaiveHost(WASM, executor),
    lambda executor: PyHost(WASM, executor),
]


@dataclass
class Figure:
    """Microseconds per call (or another unit) over the rounds."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def as_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": min(self.samples),
            "max": max(self.samples),
            "samples": self.samples,
        }


def per_call(call: Callable[[], object], calls: int) -> float:
    """Microseconds per call, over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


class RecordingExecutor:
    """Another executor, noting every round it runs."""

    def __init__(self, executor: py_host.Executor) -> None:
        self.executor = executor
        self.rounds: list[py_host.Round] = []

    def run_round(self, round: py_host.Round) -> Sequence[py_host.Outcome]:
        self.rounds.append(round)
        return self.executor.run_round(round)


def check_same_work(workload: Workload) -> None:
    """Every host does the same work for ``workload``: the same result, the
    same output, the same rounds. Otherwise its figures would compare
    unlike things."""
    done = {}
    for make in HOSTS:
        executor = workload.executor()
        recorder = RecordingExecutor(executor) if executor is not None else None
        host = make(recorder)
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            result = workload.run(host)()
        host.close()
        done[host.name] = (result, printed.getvalue(), recorder.rounds if recorder else [])
    if any(work != done["py_host"] for work in done.values()):
        raise SystemExit(f"the hosts did different work for {workload.name!r}: {done}")


def measure_calls(rounds: int, scale: float) -> dict[str, dict[str, Figure]]:
    results: dict[str, dict[str, Figure]] = {}
    for workload in WORKLOADS:
        check_same_work(workload)
        hosts = [make(workload.executor()) for make in HOSTS]
        calls = max(1, int(workload.calls * scale))
        figures = {host.name: Figure() for host in hosts}
        discard = output_discarded if workload.discard_output else contextlib.nullcontext
        with discard():
            for host in hosts:
                per_call(workload.run(host), max(1, calls // 5))
            for round in range(rounds):
                for host in hosts[round % len(hosts) :] + hosts[: round % len(hosts)]:
                    figures[host.name].samples.append(per_call(workload.run(host), calls))
        for host in hosts:
            host.close()
        results[workload.name] = figures
        print(f"  measured: {workload.name}", file=sys.stderr)
    return results


CONFIGURATIONS: dict[str, Callable[[], Host]] = {
    "ctypes (native)": lambda: NativeHost(NATIVE, None),
    "wasmtime's defaults: traps by signal, no deadline (the naive host)": lambda: NaiveHost(
        WASM, None
    ),
    "py_host without a deadline: Limits(deadline_seconds=None)": lambda: PyHost(
        WASM, None, py_host.Limits(deadline_seconds=None)
    ),
    "py_host, default limits": lambda: PyHost(WASM, None),
}
"""Ways to run the 10,000-host procedure from raw JSON, to show what the
module's own time costs in each configuration."""


def measure_configurations(rounds: int, scale: float) -> dict[str, Figure]:
    """Microseconds per 10,000-host dry run from raw JSON, in each of
    :data:`CONFIGURATIONS`, in interleaved rounds."""
    data = MANY_HOSTS.model_dump_json().encode()
    hosts = {name: make() for name, make in CONFIGURATIONS.items()}
    calls = max(1, int(20 * scale))
    figures = {name: Figure() for name in hosts}
    for host in hosts.values():
        per_call(lambda host=host: host.start_procedure_json(data), max(1, calls // 5))
    for _ in range(rounds):
        for name, host in hosts.items():
            figures[name].samples.append(
                per_call(lambda host=host: host.start_procedure_json(data), calls)
            )
    for host in hosts.values():
        host.close()
    print("  measured: configurations", file=sys.stderr)
    return figures


def ratio_of(over: dict[str, Figure], under: dict[str, Figure], host: str) -> float:
    """The median of the per-round ratios of two workloads in one host."""
    return statistics.median(
        a / b for a, b in zip(over[host].samples, under[host].samples, strict=True)
    )


def ratio(results: dict[str, Figure], over: str, under: str) -> Figure:
    """The per-round ratio ``over / under``."""
    pairs = zip(results[over].samples, results[under].samples, strict=True)
    return Figure([a / b for a, b in pairs])


def in_fresh_process(source: str, env: dict[str, str] | None = None) -> float:
    """Run ``source`` in a new interpreter; it prints one number."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return float(done.stdout.strip().splitlines()[-1])


COLD_STARTS = {
    "ctypes (native)": f"""
        import ctypes, time
        started = time.perf_counter()
        library = ctypes.CDLL({str(NATIVE)!r})
        library.empty()
        print((time.perf_counter() - started) * 1e3)
    """,
    "naive wasmtime-py": f"""
        import time, wasmtime
        started = time.perf_counter()
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        module = wasmtime.Module.from_file(engine, {str(WASM)!r})
        linker = wasmtime.Linker(engine)
        linker.define_unknown_imports_as_traps(module)
        linker.instantiate(store, module).exports(store)["live_allocations"](store)
        print((time.perf_counter() - started) * 1e3)
    """,
    "py_host, no cache": f"""
        import time, py_host
        started = time.perf_counter()
        py_host.load({str(WASM)!r}, cache=False).live_allocations()
        print((time.perf_counter() - started) * 1e3)
    """,
    "py_host, cached": f"""
        import os, time, py_host
        started = time.perf_counter()
        py_host.load({str(WASM)!r}, cache=os.environ["BENCH_CACHE"]).live_allocations()
        print((time.perf_counter() - started) * 1e3)
    """,
}

MEMORY = {
    "ctypes (native)": f"""
        import ctypes, os
        def rss(): return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        before = rss()
        library = ctypes.CDLL({str(NATIVE)!r})
        library.empty()
        print((rss() - before) / 2**20)
    """,
    "py_host, cached": f"""
        import os, py_host
        def rss(): return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        py_host.load({str(WASM)!r}, cache=os.environ["BENCH_CACHE"], max_instances=1).live_allocations()
        before = rss()
        modules = [py_host.load({str(WASM)!r}, cache=os.environ["BENCH_CACHE"], max_instances=1) for _ in range(10)]
        for module in modules:
            module.start_procedure(dict(timeout=1, retries=0, action="a", host_list=["h"], job_id=1))
        print((rss() - before) / 2**20 / len(modules))
    """,
}


def measure_processes(rounds: int) -> tuple[dict[str, Figure], dict[str, Figure]]:
    with tempfile.TemporaryDirectory() as cache:
        env = {"BENCH_CACHE": cache}
        in_fresh_process(COLD_STARTS["py_host, cached"], env)
        cold = {name: Figure() for name in COLD_STARTS}
        memory = {name: Figure() for name in MEMORY}
        for _ in range(rounds):
            for name, source in COLD_STARTS.items():
                cold[name].samples.append(in_fresh_process(source, env))
            for name, source in MEMORY.items():
                memory[name].samples.append(in_fresh_process(source, env))
    print("  measured: cold starts and memory", file=sys.stderr)
    return cold, memory


def throughput(call: Callable[[], object], threads: int, calls: int) -> float:
    """Calls per second with ``threads`` threads making ``calls`` calls each."""
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(calls):
            call()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * calls / (time.perf_counter() - started)


def measure_threads(rounds: int, scale: float) -> dict[str, Figure]:
    module = py_host.load(WASM, max_instances=2)
    raw = MANY_HOSTS.model_dump_json().encode()
    paths: dict[str, Callable[[], object]] = {
        "raw JSON (bytes in, bytes out)": lambda: module.start_procedure_json(raw),
        "pydantic models": lambda: module.start_procedure(MANY_HOSTS),
    }
    calls = max(2, int(40 * scale))
    results = {name: Figure() for name in paths}
    for call in paths.values():
        throughput(call, 2, max(1, calls // 4))
    for _ in range(rounds):
        for name, call in paths.items():
            one = throughput(call, 1, calls)
            two = throughput(call, 2, calls)
            results[name].samples.append(two / one)
    module.close()
    print("  measured: threads", file=sys.stderr)
    return results


def measure_concurrency(rounds: int, scale: float) -> dict[str, Figure]:
    """Procedures a second with a 20 ms executor, by callers, from asyncio
    and from threads; and the event loop's longest stall in a 10,000-host
    procedure, with its steps on the loop and in a thread."""
    seconds = max(0.2, 0.8 * scale)
    results: dict[str, Figure] = {}
    for _ in range(max(1, rounds // 2)):
        for callers in concurrency.CALLERS:
            for kind, measure in (
                ("asyncio tasks", concurrency.async_throughput),
                ("threads", concurrency.thread_throughput),
            ):
                name = f"{kind}, {callers} concurrent"
                results.setdefault(name, Figure()).samples.append(measure(WASM, callers, seconds))
        for where, offload in (("on the loop", 1 << 40), ("in a thread", 0)):
            name = f"loop stall, steps {where}"
            results.setdefault(name, Figure()).samples.append(
                concurrency.loop_stall_ms(WASM, offload)
            )
    print("  measured: concurrency", file=sys.stderr)
    return results


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "wasmtime": importlib.metadata.version("wasmtime"),
        "pydantic": importlib.metadata.version("pydantic"),
        "transport": "fast" if py_host._transport.FAST else "public API",
        "date": datetime.date.today().isoformat(),
    }


def report(
    calls: dict[str, dict[str, Figure]],
    cold: dict[str, Figure],
    memory: dict[str, Figure],
    threads: dict[str, Figure],
    configurations: dict[str, Figure],
    *,
    concurrent: dict[str, Figure],
    rounds: int,
) -> tuple[str, dict[str, Any], list[str]]:
    def spread(figure: Figure, digits: int = 1) -> str:
        return (
            f"{figure.median:.{digits}f} ({min(figure.samples):.{digits}f}–"
            f"{max(figure.samples):.{digits}f})"
        )

    native, naive, ours = (
        make_name for make_name in ("ctypes (native)", "naive wasmtime-py", "py_host")
    )
    lines = [
        "| workload, µs per call: median (fastest–slowest round) | ctypes (native) | naive wasmtime-py | py_host | py_host ÷ ctypes | naive ÷ py_host |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in calls.items():
        lines.append(
            f"| {name} | {spread(figures[native])} | {spread(figures[naive])} | "
            f"{spread(figures[ours])} | {ratio(figures, ours, native).median:.2f}× | "
            f"{ratio(figures, naive, ours).median:.1f}× |"
        )
    lines += [
        "",
        "| cold start: load and first call, ms, fresh process (imports excluded) | median (fastest–slowest) |",
        "|---|---|",
        *(f"| {name} | {spread(figure, 2)} |" for name, figure in cold.items()),
        "",
        "| memory, MiB of RSS | median (fastest–slowest) |",
        "|---|---|",
        "| ctypes: loading the native library | " + spread(memory["ctypes (native)"], 2) + " |",
        "| py_host: each loaded module (one instance, after a call) | "
        + spread(memory["py_host, cached"], 2)
        + " |",
        "",
        "| py_host, 2 threads ÷ 1 thread, 10,000-host procedure (throughput) | median (lowest–highest) |",
        "|---|---|",
        *(f"| {name} | {spread(figure, 2)}× |" for name, figure in threads.items()),
        "",
        "| 10,000-host dry run from raw JSON (no pydantic): the module's own time, µs | median (fastest–slowest) | ÷ ctypes |",
        "|---|---|---|",
        *(
            f"| {name} | {spread(figure)} | {ratio(configurations, name, native).median:.2f}× |"
            for name, figure in configurations.items()
        ),
        "",
        f"| 2-host procedures with a {concurrency.ATTEMPT_SECONDS * 1e3:.0f} ms executor, per second | median (lowest–highest) | ÷ the ideal (callers ÷ 20 ms) |",
        "|---|---|---|",
        *(
            f"| {name} | {spread(figure, 0)} | "
            f"{figure.median * concurrency.ATTEMPT_SECONDS / int(name.split(', ')[1].split()[0]):.2f} |"
            for name, figure in concurrent.items()
            if "stall" not in name
        ),
        "",
        "| a 10,000-host procedure from asyncio: the event loop's longest stall, ms | median (lowest–highest) |",
        "|---|---|",
        *(
            f"| {name.removeprefix('loop stall, ')} | {spread(figure, 2)} |"
            for name, figure in concurrent.items()
            if "stall" in name
        ),
    ]
    two = calls["start_procedure, 2 hosts, dry run"]
    many = calls["start_procedure, 10,000 hosts, dry run"]
    executed = calls["start_procedure, 10,000 hosts, an executor that answers ok at once"]
    lines += [
        "",
        "| 10,000 hosts, an executor that answers ok at once, beside the dry run | ctypes (native) | naive wasmtime-py | py_host |",
        "|---|---|---|---|",
        "| ÷ the dry run | "
        + " | ".join(f"{ratio_of(executed, many, host):.2f}×" for host in (native, naive, ours))
        + " |",
        "| µs per host for the round | "
        + " | ".join(
            f"{(executed[host].median - many[host].median) / 10_000:.3f}"
            for host in (native, naive, ours)
        )
        + " |",
    ]
    targets = [
        (
            "2-host dry-run round trip, py_host ÷ ctypes ≤ 2 (stretch)",
            ratio(two, ours, native).median,
            "≤",
            2.0,
        ),
        (
            "2-host dry-run round trip, naive ÷ py_host ≥ 10",
            ratio(two, naive, ours).median,
            "≥",
            10.0,
        ),
        (
            "10,000-host round trip, py_host ÷ ctypes ≤ 1.25",
            ratio(many, ours, native).median,
            "≤",
            1.25,
        ),
        ("cold start with the cache, ms < 2", cold["py_host, cached"].median, "<", 2.0),
        (
            "10,000 hosts, an executor answering ok at once ÷ the dry run, py_host ≤ 1.5 (issue 14)",
            ratio_of(executed, many, ours),
            "≤",
            1.5,
        ),
        (
            "2 threads ÷ 1, raw JSON, 10,000 hosts ≥ 1.7",
            threads["raw JSON (bytes in, bytes out)"].median,
            "≥",
            1.7,
        ),
    ]
    checks = []
    for text, value, op, bound in targets:
        met = {"≤": value <= bound, "≥": value >= bound, "<": value < bound}[op]
        checks.append(f"- {'met' if met else 'NOT met'}: {text}: {value:.2f}")
    figures = {
        "machine": machine(),
        "rounds": rounds,
        "calls_us": {w: {h: f.as_json() for h, f in fs.items()} for w, fs in calls.items()},
        "cold_start_ms": {h: f.as_json() for h, f in cold.items()},
        "memory_mib": {h: f.as_json() for h, f in memory.items()},
        "threads_speedup": {h: f.as_json() for h, f in threads.items()},
        "configurations_us": {h: f.as_json() for h, f in configurations.items()},
        "concurrency": {h: f.as_json() for h, f in concurrent.items()},
        "targets": [
            {"target": text, "value": value, "bound": bound, "comparison": op}
            for text, value, op, bound in targets
        ],
    }
    return "\n".join(lines), figures, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the calls per round")
    parser.add_argument("--output", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    calls = measure_calls(args.rounds, args.scale)
    cold, memory = measure_processes(args.rounds)
    threads = measure_threads(args.rounds, args.scale)
    configurations = measure_configurations(args.rounds, args.scale)
    concurrent = measure_concurrency(args.rounds, args.scale)
    dask = measure_dask(args.rounds, args.scale)
    table, figures, checks = report(
        calls, cold, memory, threads, configurations, concurrent=concurrent, rounds=args.rounds
    )
    table += "\n\n" + dask_table(dask, args.scale)
    figures["dask_procedures_per_s"] = {
        way: Figure(samples).as_json() for way, samples in dask.items()
    }
    described = ", ".join(f"{key} {value}" for key, value in figures["machine"].items())
    markdown = "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `just bench` (bench/run.py); do not edit by hand. The same Rust",
            "logic three ways: the tutorial's native library through ctypes, a naive",
            "wasmtime-py host, and py_host. All three drive a procedure's rounds from",
            "Python, as docs/ABI.md (version 3) has a host do, and each workload does",
            "the same work in all three (result, output, rounds: checked before it is",
            f"measured). Each workload runs for each host in {args.rounds} interleaved",
            "rounds; figures are medians with the fastest and slowest round, ratios the",
            "median of the per-round ratios.",
            "",
            f"Machine: {described}.",
            "",
            table,
            "",
            "Targets:",
            "",
            *checks,
            "",
        ]
    )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "BENCHMARKS.md").write_text(markdown)
    (args.output / "benchmarks.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(table)
    print()
    print("\n".join(checks))


if __name__ == "__main__":
    main()
