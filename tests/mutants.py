"""Hand mutations of py_host's checks, for `just mutants` (not part of `just test`).

Each mutation breaks one check in one file of py_host the way a real bug
would (a bound forgotten, a comparison off by one, a condition dropped, a
kind swapped), runs the tests meant to notice on a copy of py_host and tests/
(the work tree is never touched), and records the mutation as killed (the
tests failed, crashed or hung past the timeout) or survived (they passed).
A mutation whose text is no longer in its file, because the code changed, is
stale: update it or drop it. Before any mutation, each test subset must pass
unmutated, or no result would mean anything.

    python tests/mutants.py [--only TEXT] [--jobs N] [--markdown FILE]

docs/MUTANTS.md keeps the last score and what each survivor means.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAULTS_WASM = ROOT / "target/faults/wasm32-wasip1/release/rust_lib.wasm"
RUN_SECONDS = 240
"""A subset that has not finished by then hangs on the mutation: killed."""
TEST_SECONDS = 60
"""pytest-timeout per test inside a run, so a mutant that deadlocks one test fails it."""

# The tests meant to notice a broken check, per file: fast files first, as a
# run stops at its first failure.
ROUNDS = (
    "test_policy.py",
    "test_replies.py",
    "test_procedure.py",
    "test_vectors.py",
    "test_executors.py",
    "test_faults.py",
)
ABI = (
    "test_packing.py",
    "test_memory.py",
    "test_print.py",
    "test_procedure.py",
    "test_load.py",
    "test_faults.py",
)
TRANSPORT = (
    "test_packing.py",
    "test_memory.py",
    "test_print.py",
    "test_sandbox.py",
    "test_faults.py",
)
EXECUTORS = ("test_vectors.py", "test_executors.py")
POOL = ("test_memory.py", "test_print.py", "test_load.py", "test_threads.py")
MODULE = ("test_print.py", "test_procedure.py", "test_vectors.py", "test_load.py")
ASYNC = ("test_async.py",)
PUBLIC_API = {"PY_HOST_PUBLIC_API": "1"}
"""wasmtime-py's public API: the transport's fallback, where its own checks run."""


@dataclass(frozen=True)
class Mutation:
    file: str
    """Under py_host/."""
    what: str
    old: str
    """Text that occurs exactly once in the file."""
    new: str
    tests: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


MUTATIONS = [
    # _rounds.py: the policy that admits a module's rounds, and the executor's answers.
    Mutation("_rounds.py", "one attempt too many per host", "self._max_attempts = 1 + retries", "self._max_attempts = 2 + retries", ROUNDS),
    Mutation("_rounds.py", "a round with another timeout admitted", "if (action, timeout) != (self._action, self._timeout):", "if action != self._action:", ROUNDS),
    Mutation("_rounds.py", "a round with another action admitted", "if (action, timeout) != (self._action, self._timeout):", "if timeout != self._timeout:", ROUNDS),
    Mutation("_rounds.py", "a host twice in one round admitted", "if len(names) != len(hosts):", "if False:", ROUNDS),
    Mutation("_rounds.py", "a host with no attempts left admitted", "if not self._to_try.keys() >= names:", "if not set(self._hosts) >= names:", ROUNDS),
    Mutation("_rounds.py", "a host the input never named: no AbiViolation", "if not self._to_try.keys() >= names:", "if False:", ROUNDS),
    Mutation("_rounds.py", "a round's attempt number may skip ahead", "attempt != self._rounds + 1:", "attempt <= self._rounds:", ROUNDS),
    Mutation("_rounds.py", "an empty round admitted", "        if not hosts:\n", "        if hosts is None:\n", ROUNDS),
    Mutation("_rounds.py", "a request for every host left admitted when none is left", "if self._to_try and request == self._request_for_every_host_left():", "if request == self._request_for_every_host_left():", ROUNDS),
    Mutation("_rounds.py", "a round of every host left, all ok, forgets them", "                to_try.clear()\n", "                pass\n", ROUNDS),
    Mutation("_rounds.py", "a round of some hosts, all ok, forgets them", "deque(map(to_try.__delitem__, round.hosts), maxlen=0)", "pass", ROUNDS),
    Mutation("_rounds.py", "a label of 64 bytes taken", "_LONG_LABEL = b\"a\" * (_MAX_LABEL + 1)", "_LONG_LABEL = b\"a\" * (_MAX_LABEL + 2)", ROUNDS),
    Mutation("_rounds.py", "a name of 254 bytes taken", "_LONG_NAME = b\"a\" * (_MAX_NAME + 1)", "_LONG_NAME = b\"a\" * (_MAX_NAME + 2)", ROUNDS),
    Mutation("_rounds.py", "a hyphen ends a label", "_LABEL_SHAPES = _shapes(b\"a\")", "_LABEL_SHAPES = _shapes(b\".\")", ROUNDS),
    Mutation("_rounds.py", "a round of any size read", "if len(request) > self._max_request_bytes:", "if False:", ROUNDS),
    Mutation("_rounds.py", "a round for an input with no policy", 'raise AbiViolation(f"the module asked for a round, but {self._why}")', "return b'[]'", ROUNDS),
    Mutation("_rounds.py", "an executor's unknown status passed on", "_STATUSES = frozenset(get_args(Status))", '_STATUSES = frozenset(get_args(Status)) | {"weird"}', ROUNDS),
    Mutation("_rounds.py", "an executor's non-Outcome passed on", "if not isinstance(outcome, Outcome):", "if outcome is None:", ROUNDS),
    Mutation("_rounds.py", "an executor's exception escapes", "        answered = list(executor.run_round(round))\n    except Exception as error:", "        answered = list(executor.run_round(round))\n    except ArithmeticError as error:", ROUNDS),
    Mutation("_rounds.py", "an async executor's exception escapes", "        answered = list(await executor.run_round(round))\n    except Exception as error:", "        answered = list(await executor.run_round(round))\n    except ArithmeticError as error:", ASYNC),
    Mutation("_rounds.py", "one bad outcome fails the whole round", "else _usable(o)\n        for o in answered\n    ]", "else _usable(o)\n        for o in answered\n    ] if all(getattr(o, 'status', None) in _STATUSES for o in answered) else [Outcome.failed('bad')] * hosts", ROUNDS),
    Mutation("_rounds.py", "another count of outcomes than hosts passed on", "if len(answered) != hosts:", "if len(answered) > hosts:", ROUNDS),
    Mutation("_rounds.py", "an output with another job_id taken", "if output.job_id != self._job_id:\n            raise _contradiction(f\"job_id {output.job_id}, the input's is {self._job_id}\")\n        if not self._rounds:", "if not self._rounds:", ROUNDS),
    Mutation("_rounds.py", "a dry run taken though rounds ran", "if output.dry_run:", "if False:", ROUNDS),
    Mutation("_rounds.py", "failures that are not what the rounds came to taken", "if made != (failure.attempts, failure.reason):", "if made is None:", ROUNDS),
    Mutation("_rounds.py", "a refused step leaves its procedure in progress", "prints=True)\n    except ModuleError:\n        cancel(instance)\n", "prints=True)\n    except ModuleError:\n", ROUNDS),
    # _abi.py: what the module returns, checked before use.
    Mutation("_abi.py", "an i32 read as signed", "return value & 0xFFFF_FFFF", "return value", ABI),
    Mutation("_abi.py", "a packed i64 read as signed", "packed &= (1 << 64) - 1", "packed = packed", ABI),
    Mutation("_abi.py", "an import the host does not grant accepted", "if signature is None:", "if False:", ABI),
    Mutation("_abi.py", "an import of another type accepted", "if not _has_signature(wanted.type, signature):", "if False:", ABI),
    Mutation("_abi.py", "a function's result types unchecked (exports and imports)", "and [str(r) for r in ty.results] == [str(r) for r in results]", "", ABI),
    Mutation("_abi.py", "another ABI version accepted", '"abi_version")\n        if version != ABI_VERSION:', '"abi_version")\n        if False:', ABI),
    Mutation("_abi.py", "output one byte over its limit accepted", "if length > self._max_output_bytes:", "if length > self._max_output_bytes + 1:", ABI),
    Mutation("_abi.py", "a trap report read unbounded", "min(length, _MAX_TRAP_REPORT)", "length", ABI),
    Mutation("_abi.py", "crate_version read unbounded", "if length > _MAX_VERSION_BYTES:", "if False:", ABI),
    Mutation("_abi.py", "a reply that is not a live buffer accepted", "if not self.dealloc(ctx, ptr, length):", "if not (self.dealloc(ctx, ptr, length) or True):", ABI),
    Mutation("_abi.py", "a reply inside the input buffer, not at its start, accepted", "ptr < held[0] + held[1] and held[0] < ptr + length", "ptr == held[0]", ABI),
    Mutation("_abi.py", "a reply on the input buffer's last byte accepted", "ptr < held[0] + held[1] and held[0] < ptr + length", "ptr < held[0] + held[1] - 1 and held[0] < ptr + length", ABI),
    Mutation("_abi.py", "a reply one byte over max_reply_bytes accepted", "if length > self._max_reply_bytes:", "if length > self._max_reply_bytes + 1:", ABI),
    Mutation("_abi.py", "a reply over the limit leaked", "            if ptr:\n                self.dealloc(ctx, ptr, length)", "            if False:\n                self.dealloc(ctx, ptr, length)", ABI),
    Mutation("_abi.py", "an in-place reply one byte past out_cap accepted", "elif length > capacity:", "elif length > capacity + 1:", ABI),
    Mutation("_abi.py", "a step that returns 0 accepted", "        if packed == 0:\n", "        if False:\n", ABI),
    Mutation("_abi.py", "an in-place reply over max_reply_bytes accepted", "            self._check_reply_size(ctx, function, 0, length)\n", "", ABI),
    Mutation("_abi.py", "an unread reply at pointer 0 accepted", "if packed == 0 or not packed >> 32:", "if packed == 0:", ABI),
    Mutation("_abi.py", "an unread reply's bounds unchecked", "        check_bounds(self.memory_size(ctx), ptr, length)\n        return ptr, length", "        return ptr, length", ABI),
    Mutation("_abi.py", "alloc's 0 taken for a buffer", 'if ptr == 0:\n            raise LimitExceeded("memory"', 'if False:\n            raise LimitExceeded("memory"', ABI),
    Mutation("_abi.py", "live_allocations counts the host's kept buffer", "return live - (self._input is not None)", "return live", ABI),
    Mutation("_abi.py", "the kept input buffer lost unnoticed", "if not self.dealloc(ctx, ptr, capacity):", "if not (self.dealloc(ctx, ptr, capacity) or True):", ABI),
    # _transport.py: the only code that touches linear memory.
    Mutation("_transport.py", "check_bounds forgets the length", "if ptr < 0 or length < 0 or ptr + length > size:", "if ptr < 0 or length < 0 or ptr > size:", TRANSPORT),
    Mutation("_transport.py", "check_bounds forgets the length (public API)", "if ptr < 0 or length < 0 or ptr + length > size:", "if ptr < 0 or length < 0 or ptr > size:", TRANSPORT, PUBLIC_API),
    Mutation("_transport.py", "check_bounds one byte past the end", "if ptr < 0 or length < 0 or ptr + length > size:", "if ptr < 0 or length < 0 or ptr + length > size + 1:", TRANSPORT),
    Mutation("_transport.py", "the fast path's reads forget the length", "if ptr < 0 or length < 0 or ptr + length > self._size:", "if ptr < 0 or length < 0 or ptr > self._size:", TRANSPORT),
    Mutation("_transport.py", "the fast path's writes forget the length", "if ptr < 0 or ptr + len(data) > self._size:", "if ptr < 0 or ptr > self._size:", TRANSPORT),
    Mutation("_transport.py", "the fast path's view of memory never grows", "        if size != self._size:", "        if not self._size:", TRANSPORT),
    Mutation("_transport.py", "the public path reads unchecked", "        check_bounds(self._memory.data_len(ctx), ptr, length)\n        return bytes(", "        return bytes(", TRANSPORT, PUBLIC_API),
    Mutation("_transport.py", "the outbox view unchecked", "        check_bounds(self.memory_size(ctx), ptr, 4 * count)\n        # A view", "        # A view", TRANSPORT),
    # executors.py: what runs on the host's side.
    Mutation("executors.py", "max_workers 0 accepted", "    if value < 1:\n        raise ConfigError", "    if value < 0:\n        raise ConfigError", EXECUTORS),
    Mutation("executors.py", "one abandoned attempt more than max_workers", "if stuck >= self._max_workers:", "if stuck > self._max_workers:", EXECUTORS),
    Mutation("executors.py", "a callable's False taken for success", 'return Outcome.ok() if result else Outcome.failed("the executor reported failure")', "return Outcome.ok()", EXECUTORS),
    Mutation("executors.py", "a callable's exception escapes", 'except Exception as error:\n            return raised(error)', 'except ArithmeticError as error:\n            return raised(error)', EXECUTORS),
    Mutation("executors.py", "a callable's garbage taken for success", "    return Outcome.failed(\n        f\"the executor returned {type(result).__name__}", "    return Outcome.ok()\n    return Outcome.failed(\n        f\"the executor returned {type(result).__name__}", EXECUTORS),
    Mutation("executors.py", "a timed-out attempt reported ok", "outcomes[index] = Outcome.timed_out(round.timeout)", "outcomes[index] = Outcome.ok()", EXECUTORS),
    Mutation("executors.py", "a flaky host's last dropped attempt succeeds", "if round.attempt <= self.flaky.get(host, 0):", "if round.attempt < self.flaky.get(host, 0):", EXECUTORS),
    Mutation("executors.py", "a host exactly as slow as the timeout times out", "if self.slow.get(host, 0.0) > round.timeout:", "if self.slow.get(host, 0.0) >= round.timeout:", EXECUTORS),
    Mutation("executors.py", "an action not permitted is run", "if round.action not in self.commands:", "if False:", EXECUTORS),
    Mutation("executors.py", "a command's exit status ignored", "if status == 0:", "if status is not None:", EXECUTORS),
    Mutation("executors.py", "a command not killed at its timeout", "                _kill_group(process)\n                return Outcome.timed_out(timeout)", "                return Outcome.timed_out(timeout)", EXECUTORS),
    Mutation("executors.py", "anything accepted as an executor", "    if not callable(granted):", "    if False:", EXECUTORS),
    # _pool.py: instances lent to threads.
    Mutation("_pool.py", "max_instances 0 accepted", "or size < 1:", "or size < 0:", POOL),
    Mutation("_pool.py", "one instance more than max_instances", "elif len(self._alive()) < self._size:", "elif len(self._alive()) <= self._size:", POOL),
    Mutation("_pool.py", "more instances kept than the pool's size", "if keep and self._leases and len(self._idle) + len(self._alive()) >= self._size:", "if False:", POOL),
    Mutation("_pool.py", "a call from inside a call not refused", "if any(lease.thread == thread for lease in self._alive()):", "if False:", POOL),
    Mutation("_pool.py", "a buffer of a discarded instance waits for it", "if wanted not in self._lent():", "if False:", POOL),
    Mutation("_pool.py", "a closed pool lends", "if self._closed:\n                    raise ClosedError", "if False:\n                    raise ClosedError", POOL),
    Mutation("_pool.py", "a trapped instance kept", "keep = instance is not None and not discard and not self._closed", "keep = instance is not None and not self._closed", POOL),
    # module.py: the public calls.
    Mutation("module.py", "print_int refuses -2^31", "if not I32_MIN <= value <= I32_MAX:", "if not I32_MIN < value <= I32_MAX:", MODULE),
    Mutation("module.py", "print_int takes a bool", "if not isinstance(value, int) or isinstance(value, bool):", "if not isinstance(value, int):", MODULE),
    Mutation("module.py", "free_mem's refusal ignored", "if not exports.free_mem(ctx, self._ptr):", "if not (exports.free_mem(ctx, self._ptr) or True):", MODULE),
    Mutation("module.py", "a freed reply buffer used again", "if self._freed:\n            raise BufferFreed", "if False:\n            raise BufferFreed", MODULE),
    Mutation("module.py", "raw input gets no round policy", "policy = policy_for_json(raw, self._executor is not None)\n        output = ", "policy = policy_for_json(raw, False)\n        output = ", MODULE),
    # aio.py: asyncio's driver, cancellation and reentrancy.
    Mutation("aio.py", "a cancelled procedure's instance discarded, not reset", "discard = not _abandoned(lease.instance)", "discard = True", ASYNC),
    Mutation("aio.py", "a cancelled procedure left in progress", "discard = not _abandoned(lease.instance)", "discard = False", ASYNC),
    Mutation("aio.py", "an executor calling its own module not refused", "if id(self) in _IN_EXECUTOR.get():", "if False:", ASYNC),
    Mutation("aio.py", "a large procedure's steps on the loop", "offload = len(data) >= OFFLOAD_BYTES", "offload = False", ASYNC),
    Mutation("aio.py", "an async round not bounded by the procedure's time", "            if left is None:\n                return await outcomes", "            if True:\n                return await outcomes", ASYNC),
    Mutation("async_executors.py", "an attempt past its timeout runs on", "async with asyncio.timeout(seconds) as scope:", "async with asyncio.timeout(None) as scope:", ASYNC),
    Mutation("module.py", "an instance kept after a trap", "        discard = True\n        try:\n            instance = self._pool.acquire", "        discard = False\n        try:\n            instance = self._pool.acquire", MODULE),
]  # fmt: skip


def make_tree(parent: Path) -> Path:
    """A copy of what the tests import, where one mutation at a time is applied."""
    tree = Path(tempfile.mkdtemp(prefix="tree-", dir=parent))
    shutil.copytree(
        ROOT / "py_host", tree / "py_host", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def run_tests(tree: Path, tests: tuple[str, ...], env: dict[str, str]) -> str:
    """``passed``, ``failed``, or ``timeout`` for the subset on ``tree``."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        f"timeout={TEST_SECONDS}",
        *(f"tests/{name}" for name in tests),
    ]
    environment = {
        **os.environ,
        # A compiled copy of a mutated file must never stand in for the restored one.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PY_HOST_FAULTS_WASM": str(ROOT / os.environ.get("PY_HOST_FAULTS_WASM", FAULTS_WASM)),
        **env,
    }
    try:
        done = subprocess.run(
            command,
            cwd=tree,
            env=environment,
            capture_output=True,
            timeout=RUN_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return "passed" if done.returncode == 0 else "failed"


def mutate(tree: Path, mutation: Mutation) -> str:
    """The mutation's result on ``tree``; the file is restored after."""
    path = tree / "py_host" / mutation.file
    original = path.read_text()
    if original.count(mutation.old) != 1:
        return "stale"
    path.write_text(original.replace(mutation.old, mutation.new))
    try:
        outcome = run_tests(tree, mutation.tests, mutation.env)
    finally:
        path.write_text(original)
    return {"passed": "survived", "failed": "killed", "timeout": "killed (timeout)"}[outcome]


def markdown(results: list[tuple[Mutation, str]], seconds: float) -> str:
    lines = [
        f"{len(results)} hand mutations in {seconds / 60:.1f} minutes.",
        "",
        "| file | killed | survived | stale | score |",
        "|---|---|---|---|---|",
    ]
    for file in dict.fromkeys(mutation.file for mutation, _ in results):
        counts = Counter(
            outcome.split()[0] for mutation, outcome in results if mutation.file == file
        )
        tried = counts["killed"] + counts["survived"]
        score = f"{100 * counts['killed'] / tried:.0f}%" if tried else "-"
        lines.append(
            f"| `{file}` | {counts['killed']} | {counts['survived']} | {counts['stale']} | {score} |"
        )
    total = Counter(outcome.split()[0] for _, outcome in results)
    tried = total["killed"] + total["survived"]
    lines.append(
        f"| all | {total['killed']} | {total['survived']} | {total['stale']} | "
        f"{100 * total['killed'] / max(tried, 1):.0f}% |"
    )
    lines += ["", "| file | mutation | result |", "|---|---|---|"]
    lines += [f"| `{m.file}` | {m.what} | {outcome} |" for m, outcome in results]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="only mutations whose file or text has this")
    parser.add_argument("--jobs", type=int, default=1, help="mutations run at once")
    parser.add_argument("--markdown", type=Path, help="also write the results here")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in f"{m.file} {m.what}"]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="py_host-mutants-") as scratch:
        trees = [make_tree(Path(scratch)) for _ in range(max(1, args.jobs))]
        cache = Path(scratch) / "cache"
        cache.mkdir(mode=0o700)
        os.environ["PY_HOST_CACHE_DIR"] = str(cache)
        baselines: dict[tuple[tuple[str, str], ...], set[str]] = {}
        for m in chosen:
            baselines.setdefault(tuple(sorted(m.env.items())), set()).update(m.tests)
        for env, tests in baselines.items():
            if run_tests(trees[0], tuple(sorted(tests)), dict(env)) != "passed":
                print(f"the unmutated tests fail: {sorted(tests)} {dict(env)}", file=sys.stderr)
                return 2
        print(f"baseline passed in {time.monotonic() - started:.0f} s", flush=True)

        free = list(trees)

        def one(mutation: Mutation) -> tuple[Mutation, str]:
            tree = free.pop()
            try:
                outcome = mutate(tree, mutation)
            finally:
                free.append(tree)
            print(f"{outcome:17} {mutation.file}: {mutation.what}", flush=True)
            return mutation, outcome

        with ThreadPoolExecutor(len(trees)) as pool:
            results = list(pool.map(one, chosen))
    report = markdown(results, time.monotonic() - started)
    print(report)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
