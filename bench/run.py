"""`just bench`: the same Rust logic three ways, measured side by side.

Each workload is first run once in every host, which must come to the same
result, output and rounds. Then it runs for each host in interleaved rounds
(host order rotating each round), so a drift in the machine's speed touches
all of them alike; each figure is the median over the rounds, with the
fastest and slowest round as its spread, and a ratio is the median of the
per-round ratios. Cold starts, imports and memory are measured in fresh
processes, each host alike. Prints a table, writes docs/BENCHMARKS.md and
docs/benchmarks.json.
"""

from __future__ import annotations

import argparse
import compileall
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
ONE_HOST = py_host.ProcedureInput(host_list=["server1"], **TUTORIAL).model_dump_json().encode()  # type: ignore[arg-type]


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
HOST_NAMES = ("ctypes (native)", "naive wasmtime-py", "py_host")
"""The hosts, as each names itself (bench/hosts.py)."""
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


@dataclass(frozen=True)
class Target:
    """A target of docs/BENCHMARKS.md: ``value`` against ``bound``."""

    text: str
    value: float
    comparison: str
    bound: float
    unit: str

    @property
    def met(self) -> bool:
        return self.value <= self.bound if self.comparison == "≤" else self.value >= self.bound

    def check(self) -> str:
        return f"- {'met' if self.met else 'NOT met'}: {self.text}: {self.value:.2f}{self.unit}"

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.text,
            "value": self.value,
            "bound": self.bound,
            "comparison": self.comparison,
            "met": self.met,
        }


def ratio_of(over: dict[str, Figure], under: dict[str, Figure], host: str) -> float:
    """The median of the per-round ratios of two workloads in one host."""
    return statistics.median(
        a / b for a, b in zip(over[host].samples, under[host].samples, strict=True)
    )


def ratio(results: dict[str, Figure], over: str, under: str) -> Figure:
    """The per-round ratio ``over / under``."""
    pairs = zip(results[over].samples, results[under].samples, strict=True)
    return Figure([a / b for a, b in pairs])


def in_fresh_process(source: str, env: dict[str, str] | None = None) -> Any:
    """Run ``source`` in a new interpreter; it prints one JSON value last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class ColdStart:
    """What a host imports, and what loads it and makes its first call."""

    imports: str
    load: str


PY_HOST_IMPORTS = "import py_host\npy_host.load"
"""py_host imports each part at first use: ``py_host.load`` is what makes it
import what load() needs."""
COLD_STARTS = {
    "ctypes (native)": ColdStart(
        "import ctypes", f"library = ctypes.CDLL({str(NATIVE)!r})\nlibrary.empty()"
    ),
    "naive wasmtime-py": ColdStart(
        "import wasmtime",
        f"""engine = wasmtime.Engine()
store = wasmtime.Store(engine)
module = wasmtime.Module.from_file(engine, {str(WASM)!r})
linker = wasmtime.Linker(engine)
linker.define_unknown_imports_as_traps(module)
linker.instantiate(store, module).exports(store)["live_allocations"](store)""",
    ),
    "py_host, no cache": ColdStart(
        PY_HOST_IMPORTS, f"py_host.load({str(WASM)!r}, cache=False).live_allocations()"
    ),
    "py_host, warm cache": ColdStart(
        PY_HOST_IMPORTS, f"py_host.load({str(WASM)!r}).live_allocations()"
    ),
}
"""Cold starts, each timed in a fresh process from before its imports and
from after them. py_host's cache is a private directory that an earlier
process wrote and a later one checked and indexed (see py_host/_cache.py),
as a user's is from their second start on."""


def cold_start_source(start: ColdStart, *, with_imports: bool) -> str:
    """A program that prints, in ms, how long ``start`` takes, from before
    or from after its imports."""
    clock = "import time\nstarted = time.perf_counter()\n"
    timed = [start.imports, clock] if not with_imports else [clock, start.imports]
    return "\n".join([*timed, start.load, "print((time.perf_counter() - started) * 1e3)"])


IMPORTS = {
    "`import ctypes`": "import ctypes",
    "`import wasmtime`": "import wasmtime",
    "`import py_host`": "import py_host",
    "`import py_host`, then `py_host.load` (what load() needs)": PY_HOST_IMPORTS,
}
"""Imports timed in fresh processes. ``import py_host`` imports its parts
at first use, so the last row is what a program that loads a module pays."""


def import_source(statements: str) -> str:
    return "\n".join(
        [
            "import time",
            "started = time.perf_counter()",
            statements,
            "print((time.perf_counter() - started) * 1e3)",
        ]
    )


def memory_source(host: str) -> str:
    """A program that prints, in MiB, the RSS ``host``'s first load and call
    add, and then each further one's."""
    return f"""
import json, os, sys
sys.path.insert(0, {str(ROOT / "bench")!r})
from hosts import NaiveHost, NativeHost, PyHost
import py_host
py_host.load  # what load() needs, imported before the first figure
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
make = {{
    "ctypes (native)": lambda: NativeHost({str(NATIVE)!r}, None),
    "naive wasmtime-py": lambda: NaiveHost({str(WASM)!r}, None),
    "py_host": lambda: PyHost({str(WASM)!r}, None),
}}[{host!r}]
data = {ONE_HOST!r}
before = rss()
first = make()
first.start_procedure_json(data)
after_first = rss()
further = [make() for _ in range(10)]
for host in further:
    host.start_procedure_json(data)
after = rss()
print(json.dumps([(after_first - before) / 2**20, (after - after_first) / 2**20 / len(further)]))
"""


MEMORY_WAYS = ("first load and call", "each further load and call")


def measure_processes(
    rounds: int,
) -> tuple[dict[str, dict[str, Figure]], dict[str, Figure], dict[str, dict[str, Figure]]]:
    """Cold starts (by host, with and without imports), imports, and memory
    (by host, first and further), each round in fresh processes."""
    # An installed package has its bytecode, which pip compiles as it
    # installs; this tree may have none (PYTHONDONTWRITEBYTECODE, a fresh
    # clone), and then every fresh process would compile py_host again.
    compileall.compile_dir(ROOT / "py_host", quiet=1)
    with tempfile.TemporaryDirectory() as cache:
        env = {"PY_HOST_CACHE_DIR": cache}
        warm = cold_start_source(COLD_STARTS["py_host, warm cache"], with_imports=False)
        in_fresh_process(warm, env)
        # Files that have settled are checked once and then indexed.
        time.sleep(py_host._cache.SETTLED_SECONDS + 0.5)
        in_fresh_process(warm, env)
        cold = {
            name: {"imports excluded": Figure(), "imports included": Figure()}
            for name in COLD_STARTS
        }
        imports = {name: Figure() for name in IMPORTS}
        memory = {name: {way: Figure() for way in MEMORY_WAYS} for name in HOST_NAMES}
        for _ in range(rounds):
            for name, start in COLD_STARTS.items():
                for way, included in (("imports excluded", False), ("imports included", True)):
                    source = cold_start_source(start, with_imports=included)
                    cold[name][way].samples.append(in_fresh_process(source, env))
            for name, statements in IMPORTS.items():
                imports[name].samples.append(in_fresh_process(import_source(statements), env))
            for name in HOST_NAMES:
                figures = in_fresh_process(memory_source(name), env)
                for way, figure in zip(MEMORY_WAYS, figures, strict=True):
                    memory[name][way].samples.append(figure)
    print("  measured: cold starts, imports and memory", file=sys.stderr)
    return cold, imports, memory


def throughput(call: Callable[[], object], threads: int, seconds: float) -> float:
    """Calls per second with ``threads`` threads calling for ``seconds``."""
    barrier = threading.Barrier(threads + 1)
    done = [0] * threads
    until = [0.0]

    def work(index: int) -> None:
        barrier.wait()
        calls = 0
        while time.perf_counter() < until[0]:
            call()
            calls += 1
        done[index] = calls

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    until[0] = started + seconds
    barrier.wait()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


THREAD_SECONDS = 1.0
"""Each thread measurement's window (times the scale): about 900 calls of
the 10,000-host procedure, so that a thread held up by the machine for a
few ms moves the figure by well under 1%."""


def thread_window(scale: float) -> float:
    return max(0.05, THREAD_SECONDS * scale)


def measure_threads(rounds: int, scale: float) -> tuple[dict[str, Figure], float]:
    """The 2-thread ÷ 1-thread throughput of each path, and the machine's
    load average (1 min) as the rounds began: with it near the number of
    cores, other processes hold the core a second thread would use."""
    load_average = os.getloadavg()[0]
    module = py_host.load(WASM, max_instances=2)
    raw = MANY_HOSTS.model_dump_json().encode()
    paths: dict[str, Callable[[], object]] = {
        "raw JSON (bytes in, bytes out)": lambda: module.start_procedure_json(raw),
        "pydantic models": lambda: module.start_procedure(MANY_HOSTS),
    }
    seconds = thread_window(scale)
    results = {name: Figure() for name in paths}
    for call in paths.values():
        throughput(call, 2, seconds / 4)
    for _ in range(rounds):
        for name, call in paths.items():
            one = throughput(call, 1, seconds)
            two = throughput(call, 2, seconds)
            results[name].samples.append(two / one)
    module.close()
    print("  measured: threads", file=sys.stderr)
    return results, load_average


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
    cold: dict[str, dict[str, Figure]],
    imports: dict[str, Figure],
    memory: dict[str, dict[str, Figure]],
    threads: dict[str, Figure],
    *,
    configurations: dict[str, Figure],
    concurrent: dict[str, Figure],
    rounds: int,
    thread_seconds: float,
    load_average: float,
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
        "| cold start: load and first call, ms, in a fresh process | imports excluded: median (fastest–slowest) | imports included |",
        "|---|---|---|",
        *(
            f"| {name} | {spread(ways['imports excluded'], 2)} | {spread(ways['imports included'], 2)} |"
            for name, ways in cold.items()
        ),
        "",
        "| imports, ms, in a fresh process | median (fastest–slowest) |",
        "|---|---|",
        *(f"| {name} | {spread(figure, 1)} |" for name, figure in imports.items()),
        "",
        "| memory, MiB of RSS, each host alike: a fresh process with its imports done, one instance per load | first load and call | each further load and call (10) |",
        "|---|---|---|",
        *(
            f"| {name} | {spread(ways[MEMORY_WAYS[0]], 2)} | {spread(ways[MEMORY_WAYS[1]], 2)} |"
            for name, ways in memory.items()
        ),
        "",
        f"| py_host, 2 threads ÷ 1 thread, 10,000-host procedure (throughput over {thread_seconds:g} s windows; load average {load_average:.2f} on {os.cpu_count()} cores as they began) | median (lowest–highest) |",
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
    floor = calls["empty export (the call floor)"]
    printing = calls["print_int, output discarded"]
    per_host = (executed[ours].median - many[ours].median) / 10_000
    targets = [
        Target(
            "2-host dry run with pydantic, py_host ÷ ctypes ≤ 1.5",
            ratio(two, ours, native).median,
            "≤",
            1.5,
            "×",
        ),
        Target("call floor (an empty export), µs ≤ 1", floor[ours].median, "≤", 1.0, " µs"),
        Target(
            "print_int, py_host ÷ ctypes ≤ 3", ratio(printing, ours, native).median, "≤", 3.0, "×"
        ),
        Target(
            "10,000 hosts with an executor that answers ok at once ÷ the dry run of the same "
            f"input, py_host ≤ 1.5 (the round costs {per_host:.3f} µs per host)",
            ratio_of(executed, many, ours),
            "≤",
            1.5,
            "×",
        ),
        Target(
            "the module's own time, 10,000-host dry run from raw JSON with default limits, "
            "py_host ÷ ctypes ≤ 2.0",
            ratio(configurations, "py_host, default limits", native).median,
            "≤",
            2.0,
            "×",
        ),
        Target(
            "load() with a warm cache (and its first call; imports excluded), ms ≤ 1",
            cold["py_host, warm cache"]["imports excluded"].median,
            "≤",
            1.0,
            " ms",
        ),
        Target("`import py_host`, ms ≤ 60", imports["`import py_host`"].median, "≤", 60.0, " ms"),
        Target(
            "the same with what load() needs (`import py_host`, then `py_host.load`), ms ≤ 60",
            imports["`import py_host`, then `py_host.load` (what load() needs)"].median,
            "≤",
            60.0,
            " ms",
        ),
        *(
            Target(
                f"2 threads ÷ 1, 10,000-host procedure, {path} ≥ 1.9",
                threads[path].median,
                "≥",
                1.9,
                "×",
            )
            for path in threads
        ),
    ]
    earlier = [
        Target(
            "2-host dry run, naive wasmtime-py ÷ py_host ≥ 10",
            ratio(two, naive, ours).median,
            "≥",
            10.0,
            "×",
        ),
    ]
    checks = [
        "Issue 14's targets (medians, side by side in this run):",
        "",
        *(target.check() for target in targets),
        "",
        "Earlier targets still held:",
        "",
        *(target.check() for target in earlier),
    ]
    figures = {
        "machine": machine(),
        "rounds": rounds,
        "calls_us": {w: {h: f.as_json() for h, f in fs.items()} for w, fs in calls.items()},
        "cold_start_ms": {
            h: {way: f.as_json() for way, f in ways.items()} for h, ways in cold.items()
        },
        "imports_ms": {name: f.as_json() for name, f in imports.items()},
        "memory_mib": {
            h: {way: f.as_json() for way, f in ways.items()} for h, ways in memory.items()
        },
        "threads_speedup": {h: f.as_json() for h, f in threads.items()},
        "threads_load_average": load_average,
        "configurations_us": {h: f.as_json() for h, f in configurations.items()},
        "concurrency": {h: f.as_json() for h, f in concurrent.items()},
        "targets": [target.as_json() for target in targets + earlier],
    }
    return "\n".join(lines), figures, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the calls per round")
    parser.add_argument("--output", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    calls = measure_calls(args.rounds, args.scale)
    cold, imports, memory = measure_processes(args.rounds)
    threads, load_average = measure_threads(args.rounds, args.scale)
    configurations = measure_configurations(args.rounds, args.scale)
    concurrent = measure_concurrency(args.rounds, args.scale)
    dask = measure_dask(args.rounds, args.scale)
    table, figures, checks = report(
        calls,
        cold,
        imports,
        memory,
        threads,
        configurations=configurations,
        concurrent=concurrent,
        rounds=args.rounds,
        thread_seconds=thread_window(args.scale),
        load_average=load_average,
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
