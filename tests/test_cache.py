"""The compiled-module cache: used across processes, and a damaged or stale
entry is rebuilt, never loaded."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import wasmtime
from conftest import FAULTS_WASM, ROOT, fstat_says_another_user_owns

import py_host
from py_host._cache import KEPT_ENTRIES, ModuleCache, default_directory, identity, settled
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


# The index: a load that checked the .wasm and the entry notes their
# statuses, and a later load whose files still have them skips reading,
# hashing and the CRC-32. Files count as settled sooner here than the real
# two seconds, and the tests wait that long, so a change always lands on a
# later clock tick than the status the index noted.
SETTLE = 0.05

LOAD_SETTLED = f"""
import hashlib, sys, time, py_host
py_host._cache.SETTLED_SECONDS = {SETTLE}
with py_host.load(sys.argv[2], cache=sys.argv[1]) as rust:
    assert rust._loaded.sha256 == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
    print(rust.start_procedure(dict(timeout=1, retries=0, action="a", host_list=["h"], job_id=7)).job_id)
"""


def load_settled(cache: Path, wasm: Path) -> str:
    """A new process loads ``wasm`` through ``cache`` and checks that what it
    loaded is the module the file holds now; what py_host.cache logged."""
    time.sleep(2 * SETTLE)
    done = subprocess.run(
        [sys.executable, "-c", LOG_CACHE + textwrap.dedent(LOAD_SETTLED), str(cache), str(wasm)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "7\n"), done.stderr
    return done.stderr


LOG_CACHE = """
import logging, sys
logging.basicConfig(stream=sys.stderr, format="%(message)s")
logging.getLogger("py_host.cache").setLevel(logging.DEBUG)
"""


@pytest.fixture
def wasm(tmp_path: Path) -> Path:
    """A copy of the module, in a file of its own."""
    copy = tmp_path / "module.wasm"
    shutil.copyfile(ROOT / "py_host/rust_lib.wasm", copy)
    return copy


def indexes(cache: Path) -> list[Path]:
    return sorted(cache.glob("index-*"))


def test_a_checked_entry_is_loaded_through_the_index(tmp_path: Path, wasm: Path) -> None:
    cache = tmp_path / "cache"
    load_settled(cache, wasm)  # compiles and stores: the entry has not settled
    assert indexes(cache) == []
    load_settled(cache, wasm)  # checks the entry's CRC-32 and notes it
    (index,) = indexes(cache)
    assert index.stat().st_mode & 0o777 == 0o600
    logged = load_settled(cache, wasm)
    assert f"hit: {the_entry(cache)} (unchanged since a load checked it)" in logged


def test_files_that_have_not_settled_are_not_noted(tmp_path: Path, wasm: Path) -> None:
    cache = tmp_path / "cache"
    load_in_a_new_process(cache)
    load_in_a_new_process(cache)  # at once: the entry is younger than two seconds
    assert indexes(cache) == []


def the_index_is_noted(cache: Path, wasm: Path) -> None:
    load_settled(cache, wasm)
    load_settled(cache, wasm)
    assert len(indexes(cache)) == 1


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        # Damage wasmtime itself accepts: only the check keeps it from running.
        pytest.param(
            lambda data: (
                data[: len(data) // 2]
                + bytes([data[len(data) // 2] ^ 0xFF])
                + data[len(data) // 2 + 1 :]
            ),
            id="a byte flipped",
        ),
        pytest.param(
            lambda data: data[: len(data) // 4] + bytes(4096) + data[len(data) // 4 + 4096 :],
            id="a page zeroed",
        ),
    ],
)
def test_an_entry_damaged_after_it_was_noted_is_rebuilt_not_loaded(
    tmp_path: Path, wasm: Path, damage: object
) -> None:
    cache = tmp_path / "cache"
    the_index_is_noted(cache, wasm)
    entry = the_entry(cache)
    good = entry.read_bytes()
    with entry.open("r+b") as file:  # in place: the same file, its status changed
        file.write(damage(good))  # type: ignore[operator]
        file.truncate()
    logged = load_settled(cache, wasm)
    assert "unchanged since a load checked it" not in logged
    assert entry.read_bytes() == good, "rebuilt under the same name"


def test_a_changed_module_file_is_read_again_not_taken_from_the_index(
    tmp_path: Path, wasm: Path
) -> None:
    cache = tmp_path / "cache"
    the_index_is_noted(cache, wasm)
    # In place and of the same size: only its times tell the change.
    data = bytearray(wasm.read_bytes())
    custom = data.rindex(b"producers")
    data[custom : custom + 9] = b"PRODUCERS"
    with wasm.open("r+b") as file:
        file.write(data)
    load_settled(cache, wasm)  # asserts it loaded the module the file holds now


def test_another_module_at_the_same_path_is_loaded(tmp_path: Path, wasm: Path) -> None:
    cache = tmp_path / "cache"
    the_index_is_noted(cache, wasm)
    shutil.copyfile(FAULTS_WASM, wasm)
    load_settled(cache, wasm)


@pytest.mark.parametrize("mode", [0o666, 0o620], ids=oct)
def test_an_index_others_can_write_is_not_used(tmp_path: Path, wasm: Path, mode: int) -> None:
    cache = tmp_path / "cache"
    the_index_is_noted(cache, wasm)
    (index,) = indexes(cache)
    index.chmod(mode)
    logged = load_settled(cache, wasm)
    assert "unchanged since a load checked it" not in logged
    assert f"hit: {the_entry(cache)}" in logged


def test_an_index_naming_an_entry_of_another_module_is_not_used(tmp_path: Path, wasm: Path) -> None:
    cache = tmp_path / "cache"
    the_index_is_noted(cache, wasm)
    (index,) = indexes(cache)
    fields = index.read_text().split()
    elsewhere = tmp_path / the_entry(cache).name.replace(fields[5], "0" * 64)
    shutil.copy2(the_entry(cache), elsewhere)
    fields[6] = f"../{elsewhere.name}"
    fields[7:] = map(str, identity(elsewhere.stat()))
    index.write_text(" ".join(fields))
    logged = load_settled(cache, wasm)
    assert "unchanged since a load checked it" not in logged


def test_a_module_file_changed_in_this_process_is_read_again(
    wasm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(py_host._cache, "SETTLED_SECONDS", SETTLE)
    time.sleep(2 * SETTLE)
    with py_host.load(wasm, cache=False) as rust:
        first = rust._loaded.sha256
    time.sleep(2 * SETTLE)
    data = bytearray(wasm.read_bytes())
    custom = data.rindex(b"producers")
    data[custom : custom + 9] = b"PRODUCERS"
    with wasm.open("r+b") as file:
        file.write(data)
    with py_host.load(wasm, cache=False) as rust:
        assert rust._loaded.sha256 == hashlib.sha256(data).hexdigest() != first


@pytest.mark.parametrize(
    ("mode", "changed_seconds_ago", "expected"),
    [
        (stat.S_IFREG | 0o644, 1.0, False),
        (stat.S_IFREG | 0o644, 3.0, True),
        (stat.S_IFCHR | 0o666, 3.0, False),  # /dev/zero and the like
        (stat.S_IFIFO | 0o644, 3.0, False),
    ],
)
def test_a_file_has_settled_two_seconds_after_its_last_change(
    mode: int, changed_seconds_ago: float, expected: bool
) -> None:
    changed = time.time_ns() - int(changed_seconds_ago * 1e9)
    old = changed - 3600 * 10**9
    for mtime, ctime in ((changed, changed), (old, changed), (changed, old)):
        status = os.stat_result(
            (mode, 1, 1, 1, 0, 0, 100, 0, 0, 0),
            {"st_mtime_ns": mtime, "st_ctime_ns": ctime, "st_atime_ns": old},
        )
        assert settled(status) == expected


# Pruning: a store keeps the KEPT_ENTRIES latest stored entries and removes
# what would otherwise pile up with every rebuilt module.
def fake_entries(cache: Path, count: int, *, first_age: float) -> list[Path]:
    """``count`` entry files, the first ``first_age`` seconds old and each
    next one a minute younger: oldest first."""
    made = []
    for n in range(count):
        entry = cache / f"{n:064x}-wasmtime50.0.1-nofuel-epochs-crc{n:08x}.cwasm"
        entry.write_bytes(b"an old module")
        age = first_age - 60 * n
        os.utime(entry, (time.time() - age, time.time() - age))
        made.append(entry)
    return made


def index_naming(cache: Path, entry: str, inode: int) -> Path:
    index = cache / f"index-wasmtime50.0.1-nofuel-epochs-1-{inode}"
    index.write_text(" ".join(["1"] * 5 + ["0" * 64, entry] + ["1"] * 5) + "\n")
    return index


def aged(path: Path, seconds: float) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_a_store_keeps_the_latest_entries_and_removes_what_piles_up(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    old = fake_entries(cache, KEPT_ENTRIES + 4, first_age=86_400)
    kept_index = index_naming(cache, old[-1].name, 1)
    index_naming(cache, old[0].name, 2)  # names an entry the store removes
    (cache / "index-wasmtime50.0.1-nofuel-epochs-1-3").write_text("not an index")
    crashed = cache / ".py_host-crashed.tmp"
    crashed.write_bytes(b"half")
    aged(crashed, 7200)
    storing = cache / ".py_host-storing.tmp"
    storing.write_bytes(b"being written")
    others = [cache / "notes.txt", cache / "tmpother.tmp"]
    for other in others:
        other.write_text("not py_host's")
        aged(other, 7200)

    ModuleCache(cache).store(
        "a-new-key", wasmtime.Module(engine(Flavor(fuel=False, epochs=True)), "(module)")
    )

    new = [entry for entry in entries(cache) if entry.name.startswith("a-new-key-crc")]
    assert len(new) == 1
    # The latest stored: the new entry and the KEPT_ENTRIES - 1 youngest old ones.
    assert entries(cache) == sorted(new + old[-(KEPT_ENTRIES - 1) :])
    assert indexes(cache) == [kept_index], "those naming a removed entry, or none, are gone"
    assert not crashed.exists()
    assert storing.exists()
    assert all(other.exists() for other in others)


def test_a_cache_only_loaded_from_is_not_pruned(seeded: Path) -> None:
    fake_entries(seeded, KEPT_ENTRIES + 4, first_age=86_400)
    before = sorted(seeded.iterdir())
    assert load_in_process(seeded, the_entry(seeded)) is not None
    assert sorted(seeded.iterdir()) == before


def test_a_compile_in_a_full_cache_prunes_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    old = fake_entries(cache, KEPT_ENTRIES + 4, first_age=86_400)
    load_in_a_new_process(cache)
    new = [entry for entry in entries(cache) if entry not in old]
    assert new, "the load stored its module"
    assert len(entries(cache)) == KEPT_ENTRIES
    assert set(old[-(KEPT_ENTRIES - len(new)) :]) <= set(entries(cache))
