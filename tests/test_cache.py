"""The compiled-module cache: used across processes, and a damaged or stale
entry is rebuilt, never loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

import py_host
from py_host._cache import ModuleCache
from py_host._engine import Flavor, engine

LOAD = """
import sys, py_host
with py_host.load(cache=sys.argv[1]) as rust:
    print(rust.start_procedure(dict(timeout=1, retries=0, action="a", host_list=["h"], job_id=7)).job_id)
"""


def load_in_a_new_process(cache: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD), str(cache)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "7\n", "")


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.cwasm"))


def test_a_new_process_loads_the_compiled_module(tmp_path: Path) -> None:
    load_in_a_new_process(tmp_path)
    entry = max(entries(tmp_path), key=lambda path: path.stat().st_size)
    written = entry.stat().st_mtime_ns
    load_in_a_new_process(tmp_path)
    assert entry in entries(tmp_path)
    assert entry.stat().st_mtime_ns == written, "used, not rewritten"


def test_the_key_names_the_module_wasmtime_and_configuration(tmp_path: Path) -> None:
    load_in_a_new_process(tmp_path)
    for entry in entries(tmp_path):
        assert "-wasmtime50." in entry.name
        assert "-nofuel-epochs-crc" in entry.name


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-100] + bytes(100), id="corrupted"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[:40] + b"\x00" * (len(data) - 40), id="zeroed"),
    ],
)
def test_a_damaged_entry_is_rebuilt_not_loaded(tmp_path: Path, damage: object) -> None:
    load_in_a_new_process(tmp_path)
    entry = max(entries(tmp_path), key=lambda path: path.stat().st_size)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))  # type: ignore[operator]
    load_in_a_new_process(tmp_path)
    assert entry.read_bytes() == good, "rebuilt under the same name"


def test_an_entry_wasmtime_refuses_is_rebuilt(tmp_path: Path) -> None:
    # A well-formed entry whose contents wasmtime does not accept, as from
    # another engine configuration.
    cache = ModuleCache(tmp_path)
    wasm = (ROOT / "py_host/rust_lib.wasm").read_bytes()
    other = py_host._engine._compile(wasm, tmp_path, Flavor(fuel=True, epochs=True))
    cache.store("stale", other)
    assert len(entries(tmp_path)) == 1
    assert cache.load("stale", engine(Flavor(fuel=False, epochs=True))) is None
    assert entries(tmp_path) == []


def test_an_unwritable_cache_only_slows_the_start(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file-not-a-directory"
    blocked.write_text("")
    load_in_a_new_process(blocked / "cache")


def test_no_cache_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PY_HOST_CACHE_DIR", str(tmp_path))
    py_host._engine._compiled.clear()
    with py_host.load(cache=False) as rust:
        rust.print_int(1)
    assert entries(tmp_path) == []


def test_a_cache_others_can_write_is_not_used(tmp_path: Path) -> None:
    # An entry is native code wasmtime runs unchecked: a directory anyone can
    # write could hold someone else's.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    load_in_a_new_process(shared)
    assert entries(shared) == []
