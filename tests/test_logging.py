"""What py_host logs, as the README's "Logging" says: one DEBUG line per
load() on ``py_host.load``, the cache's hits, misses and why on
``py_host.cache`` (a directory or entry refused for its owner or mode at
WARNING), and nothing printed at all unless logging is configured."""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fstat_says_another_user_owns, run_python

import py_host

WASM = py_host.module.DEFAULT_WASM
LOADED = re.compile(
    rf"loaded {re.escape(str(WASM))} \(sha256 [0-9a-f]{{12}}\), (?P<source>[^,]+), in [0-9.]+ ms"
)


@pytest.fixture
def caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog seeing py_host's DEBUG records."""
    caplog.set_level(logging.DEBUG, logger="py_host")
    return caplog


@pytest.fixture(autouse=True)
def nothing_compiled() -> Iterator[None]:
    """This process's memory of compiled modules starts empty, and the
    tests' own is put back after (the tests before filled it)."""
    # Not monkeypatch.setattr of a new dict: compile_module's lock guards this one.
    kept = OrderedDict(py_host._engine._compiled)
    py_host._engine._compiled.clear()
    yield
    py_host._engine._compiled.clear()
    py_host._engine._compiled.update(kept)


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    """py_host's records so far, as (logger, level, message)."""
    return [
        (record.name, record.levelno, record.getMessage())
        for record in caplog.records
        if record.name.startswith("py_host")
    ]


def load_once(cache: Path) -> None:
    with py_host.load(cache=cache) as rust:
        rust.print_int(1)


def the_entry(cache: Path) -> Path:
    """The entry of the module with the default limits (the only one)."""
    (entry,) = cache.glob("*.cwasm")
    return entry


def test_a_first_load_logs_the_miss_the_compile_and_the_entry_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_once(tmp_path)
    (miss, stored, load) = logged(caplog)
    assert miss[:2] == stored[:2] == ("py_host.cache", logging.DEBUG)
    assert re.fullmatch(
        rf"miss: no entry [0-9a-f]{{64}}-\S+ in {re.escape(str(tmp_path))}", miss[2]
    )
    assert stored[2] == f"stored {the_entry(tmp_path)}"
    assert load[:2] == ("py_host.load", logging.DEBUG)
    matched = LOADED.fullmatch(load[2])
    assert matched
    assert matched["source"] == "compiled"


def test_a_load_again_logs_where_the_module_came_from(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_once(tmp_path)
    caplog.clear()
    load_once(tmp_path)
    ((name, level, message),) = logged(caplog)
    assert (name, level) == ("py_host.load", logging.DEBUG)
    assert LOADED.fullmatch(message)["source"] == "from this process's memory"  # type: ignore[index]
    py_host._engine._compiled.clear()  # as in a new process
    caplog.clear()
    load_once(tmp_path)
    (hit, load) = logged(caplog)
    assert hit == ("py_host.cache", logging.DEBUG, f"hit: {the_entry(tmp_path)}")
    assert LOADED.fullmatch(load[2])["source"] == "from the disk cache"  # type: ignore[index]


def reload_logs(cache: Path, caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    """What a load logs about ``cache`` when this process has not kept the module."""
    py_host._engine._compiled.clear()
    caplog.clear()
    load_once(cache)
    return [record for record in logged(caplog) if record[0] == "py_host.cache"]


def test_an_entry_others_can_write_is_refused_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_once(tmp_path)
    entry = the_entry(tmp_path)
    entry.chmod(0o666)
    refused, _stored = reload_logs(tmp_path, caplog)
    assert refused == (
        "py_host.cache",
        logging.WARNING,
        f"refused {entry}: others can write it (mode 666); compiling instead",
    )


def test_an_entry_another_user_owns_is_refused_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_once(tmp_path)
    entry = the_entry(tmp_path)
    fstat_says_another_user_owns(monkeypatch)
    refused, _stored = reload_logs(tmp_path, caplog)
    assert refused == (
        "py_host.cache",
        logging.WARNING,
        f"refused {entry}: it belongs to user {os.getuid() + 1}, not to user {os.getuid()}; "
        "compiling instead",
    )


def test_a_cache_directory_others_can_write_is_refused_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    refused, not_stored = reload_logs(shared, caplog)
    assert refused == (
        "py_host.cache",
        logging.WARNING,
        f"refused the cache directory {shared}: others can write it (mode 777); compiling instead",
    )
    assert not_stored[:2] == ("py_host.cache", logging.DEBUG)
    assert not_stored[2].startswith(f"not stored in {shared}: ")


def test_a_damaged_entry_is_a_miss_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_once(tmp_path)
    entry = the_entry(tmp_path)
    entry.write_bytes(entry.read_bytes()[:-100] + bytes(100))
    damaged, stored = reload_logs(tmp_path, caplog)
    assert damaged == (
        "py_host.cache",
        logging.DEBUG,
        f"miss: {entry} is damaged (its CRC-32 differs from its name's)",
    )
    assert stored == ("py_host.cache", logging.DEBUG, f"stored {entry}")


def test_a_missing_cache_directory_is_a_miss_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "not-yet"
    absent, stored = reload_logs(missing, caplog)
    assert absent == (
        "py_host.cache",
        logging.DEBUG,
        f"miss: no usable cache directory {missing}: No such file or directory",
    )
    assert stored == ("py_host.cache", logging.DEBUG, f"stored {the_entry(missing)}")


QUIET = """
import py_host
# A cache directory refused with a warning, and a procedure with rounds.
with py_host.load(cache=CACHE, executor=py_host.SimulatedNetwork(down={"a"})) as rust:
    rust.start_procedure(dict(timeout=1, retries=1, action="x", host_list=["a", "b"], job_id=1))
"""


def test_nothing_is_printed_unless_logging_is_configured(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    source = QUIET.replace("CACHE", repr(str(shared)))
    done = run_python(source)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    # The same with logging configured does print: the warning was there.
    configured = run_python("import logging; logging.basicConfig()\n" + source)
    assert "WARNING:py_host.cache:refused the cache directory" in configured.stderr
