"""python -m py_host: input from flags, a file or stdin; output and exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, tutorial_input


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "py_host", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_help_documents_the_exit_statuses() -> None:
    done = cli("--help")
    assert done.returncode == 0
    assert "exit status:" in done.stdout
    for status in "0123":
        assert f"  {status}  " in done.stdout


def test_version_names_py_host_the_module_and_the_abi() -> None:
    done = cli("--version")
    assert done.returncode == 0, done.stderr
    crate = re.search(r'^version = "(.+)"$', (ROOT / "Cargo.toml").read_text(), re.MULTILINE)
    assert crate is not None
    assert done.stdout.startswith("py_host 0.1.0, wasmtime 50.")
    assert done.stdout.endswith(f"module {crate[1]}, ABI version 3\n")


def test_flags_on_a_simulated_network_with_server1_down() -> None:
    done = cli("--host", "server1", "--host", "server2", "--down", "server1")
    assert done.returncode == 1, done.stderr
    output = json.loads(done.stdout)
    assert (output["result"], output["failed_hosts"]) == ("partial", ["server1"])


def test_a_file_without_an_executor_is_a_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(tutorial_input()))
    done = cli(str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dry_run"] is True


def test_stdin_with_a_command_executor() -> None:
    done = cli(
        "-",
        "--command",
        f"ping={sys.executable} -c pass",
        stdin=json.dumps(tutorial_input(action="ping")),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "success"


def test_flaky_hosts_recover() -> None:
    done = cli("--host", "a", "--flaky", "a:2", "--retries", "2")
    assert done.returncode == 0, done.stderr


def test_invalid_input_exits_2_naming_the_field() -> None:
    done = cli("-", stdin=json.dumps(tutorial_input(timeout=0)))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("invalid input: timeout: ")


def test_bad_arguments_exit_2() -> None:
    for args in [
        (),
        ("--host", "a", "--down", "a", "--command", "x=true"),
        ("--host", "a", "--flaky", "a:x"),
        ("--command", "x"),
    ]:
        assert cli(*args).returncode == 2, args


def test_a_module_that_cannot_load_exits_3(tmp_path: Path) -> None:
    done = cli("--host", "a", "--wasm", str(tmp_path / "missing.wasm"))
    assert done.returncode == 3
    assert "missing.wasm" in done.stderr
