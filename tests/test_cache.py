"""The compiled-module cache: used across processes, and a damaged or stale
entry is rebuilt, never loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, fstat_says_another_user_owns

import py_host
from py_host._cache import ModuleCache, default_directory
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


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache filled by a process of its own, once for the tests that copy it."""
    cache = tmp_path_factory.mktemp("compiled")
    load_in_a_new_process(cache)
    return cache


@pytest.fixture
def seeded(tmp_path: Path, compiled: Path) -> Path:
    """A private cache holding the entries a process wrote."""
    cache = tmp_path / "cache"
    shutil.copytree(compiled, cache)
    return cache


def the_entry(cache: Path) -> Path:
    """The entry of the module with the default limits: the largest."""
    return max(entries(cache), key=lambda path: path.stat().st_size)


def load_in_process(cache: Path, entry: Path) -> object:
    """What the cache hands back for ``entry``, which the default limits'
    engine accepts."""
    key = entry.name.rsplit("-crc", 1)[0]
    return ModuleCache(cache).load(key, engine(Flavor(fuel=False, epochs=True)))


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602], ids=oct)
def test_an_entry_others_can_write_is_rebuilt_not_loaded(seeded: Path, mode: int) -> None:
    # Its CRC-32 proves nothing: whoever can write the entry can forge it.
    entry = the_entry(seeded)
    good = entry.read_bytes()
    entry.chmod(mode)
    assert load_in_process(seeded, entry) is None
    assert not entry.exists()
    load_in_a_new_process(seeded)
    assert entry.read_bytes() == good
    assert entry.stat().st_mode & 0o777 == 0o600


def test_an_entry_another_user_owns_is_rebuilt_not_loaded(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = the_entry(seeded)
    if os.geteuid() == 0:
        os.chown(entry, 65534, 65534)  # nobody's, for real
    else:
        fstat_says_another_user_owns(monkeypatch)
    assert load_in_process(seeded, entry) is None
    assert not entry.exists()


def test_a_symbolic_link_is_not_followed(tmp_path: Path, seeded: Path) -> None:
    entry = the_entry(seeded)
    elsewhere = tmp_path / "elsewhere.cwasm"
    entry.rename(elsewhere)
    entry.symlink_to(elsewhere)
    assert load_in_process(seeded, entry) is None
    assert not entry.is_symlink()
    assert elsewhere.exists()


def test_a_directory_named_like_an_entry_means_compiling(seeded: Path) -> None:
    entry = the_entry(seeded)
    entry.unlink()
    entry.mkdir()
    assert load_in_process(seeded, entry) is None
    load_in_a_new_process(seeded)
    assert entry.is_dir()


def test_a_damaged_entry_that_cannot_be_removed_means_compiling(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = the_entry(seeded)
    entry.write_bytes(entry.read_bytes()[:100])

    # As in a read-only cache directory; root ignores the directory's mode,
    # so the refusal is simulated.
    def refused(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refused)
    assert load_in_process(seeded, entry) is None
    assert entry.exists()


def fresh_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PY_HOST_CACHE_DIR", "XDG_CACHE_HOME"}
    }
    return {**environment, "HOME": str(tmp_path / "home"), **variables}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"PY_HOST_CACHE_DIR": "/abs/cache"}, "/abs/cache"),
        ({"PY_HOST_CACHE_DIR": "", "XDG_CACHE_HOME": "/xdg"}, "/xdg/py_host"),
        ({"PY_HOST_CACHE_DIR": "relative", "XDG_CACHE_HOME": "/xdg"}, "/xdg/py_host"),
        ({"PY_HOST_CACHE_DIR": ""}, "HOME/.cache/py_host"),
        ({"XDG_CACHE_HOME": ""}, "HOME/.cache/py_host"),
        ({"XDG_CACHE_HOME": "relative"}, "HOME/.cache/py_host"),
        ({"PY_HOST_CACHE_DIR": ".", "XDG_CACHE_HOME": "."}, "HOME/.cache/py_host"),
    ],
)
def test_an_empty_or_relative_cache_variable_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("PY_HOST_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert default_directory() == Path(expected.replace("HOME", str(tmp_path)))


def test_a_relative_cache_variable_writes_nothing_in_the_working_directory(
    tmp_path: Path,
) -> None:
    working = tmp_path / "working"
    working.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD).replace("sys.argv[1]", "True")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=working,
        env=fresh_environment(tmp_path, PY_HOST_CACHE_DIR="", XDG_CACHE_HOME="."),
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "7\n", "")
    assert list(working.iterdir()) == []
    assert entries(tmp_path / "home/.cache/py_host") != []
