"""Shared fixtures: the built module, the test-only faults module and the
tutorial's input (the input vectors every host runs are in vectors.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

import py_host

ROOT = Path(__file__).resolve().parents[1]
# Compiled modules go to a cache of the test session's own, not the user's.
os.environ.setdefault("PY_HOST_CACHE_DIR", tempfile.mkdtemp(prefix="py_host-cache-"))
FAULTS_WASM = Path(
    os.environ.get(
        "PY_HOST_FAULTS_WASM", ROOT / "target/faults/wasm32-wasip1/release/rust_lib.wasm"
    )
)


ABI_FUNCTIONS = """
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 8)
  (func (export "dealloc") (param i32 i32) (result i32) i32.const 0)
  (func (export "free_mem") (param i32) (result i32) i32.const 0)
  (func (export "live_allocations") (result i32) i32.const 0)
  (func (export "print_string") (param i32 i32) (result i64) i64.const 0)
  (func (export "print_int") (param i32) (result i64) i64.const 0)
  (func (export "start_procedure") (param i32 i32) (result i64) i64.const 0)
  (func (export "start_procedure_into") (param i32 i32 i32 i32) (result i64) i64.const 0)
  (func (export "resume_procedure") (param i32 i32 i32 i32) (result i64) i64.const 0)
  (func (export "cancel_procedure") (result i32) i32.const 1)
  (func (export "grant_executor"))
  (func (export "outbox") (result i32) i32.const 64)
  (data (i32.const 16) "0.0.0")
  (func (export "crate_version") (result i64) i64.const 0x0000001000000005)
"""
"""The ABI's exports, doing nothing, for modules written in WAT by tests:
replace one to make it misbehave."""
ABI_VERSION = 3
ABI_VERSION_FUNCTION = f'(func (export "abi_version") (result i32) i32.const {ABI_VERSION})'
"""The ABI version export, saying the version py_host speaks."""


def module_file(tmp_path: Path, wat: str) -> Path:
    """A .wasm file made from the WAT module body ``wat``."""
    path = tmp_path / "module.wasm"
    path.write_bytes(wasmtime.wat2wasm(f"(module {wat})"))
    return path


def fstat_says_another_user_owns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``os.fstat`` say every file belongs to another user: only root
    can really give a file away."""
    real_fstat = os.fstat

    def foreign(descriptor: int) -> os.stat_result:
        real = real_fstat(descriptor)
        status = list(real)
        status[stat.ST_UID] = os.getuid() + 1
        # The fields beyond the tuple's (times in ns, blocks) as they were.
        extra = {name: getattr(real, name) for name in dir(real) if name.startswith("st_")}
        return os.stat_result(status, extra)

    monkeypatch.setattr(os, "fstat", foreign)


def run_python(source: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a new interpreter, from the project's root, with
    ``env`` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        env={**os.environ, **env},
    )


NO_RUST_PATH = "/usr/bin:/bin"
"""A PATH of system directories only: no cargo, no rustc."""


def isolated_environment(path: str, **extra: str) -> dict[str, str]:
    """This process's environment, with ``path`` as the PATH and nothing that
    would point Python at this tree or py_host at other modules."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PY_HOST_", "CARGO_TARGET_DIR"))
        and key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    return {**env, "PATH": path, **extra}


def run_installed(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a virtualenv's python outside any source tree, with only the
    virtualenv and system directories on the PATH: no Rust."""
    return subprocess.run(
        [str(python), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=python.parents[2],
        env=isolated_environment(f"{python.parent}:{NO_RUST_PATH}"),
        check=False,
    )


def tutorial_input(**changes: Any) -> dict[str, Any]:
    """The tutorial's ProcedureInput as a dict, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "timeout": 10,
        "retries": 3,
        "action": "reboot",
        "host_list": ["server1", "server2"],
        "job_id": 1,
    }
    fields.update(changes)
    return fields


@pytest.fixture
def rust() -> Iterator[py_host.RustModule]:
    """The built module with no executor: every procedure is a dry run."""
    with py_host.load() as module:
        yield module


@pytest.fixture
def faulty() -> Iterator[py_host.RustModule]:
    """The module built with the `faults` feature (`just build-faults`)."""
    if not FAULTS_WASM.exists():
        pytest.fail(f"{FAULTS_WASM} is missing: run `just build-faults`")
    with py_host.load(FAULTS_WASM) as module:
        yield module
