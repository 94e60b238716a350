"""`just wheel`'s wheel: pure Python with the module inside, installed into a
fresh virtualenv and run from there with no Rust toolchain on the PATH."""

from __future__ import annotations

import json
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, run_installed

WHEEL_COMMAND = ["just", "wheel"]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=cwd, env=env, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel() -> Path:
    run(WHEEL_COMMAND, ROOT)
    (built,) = (ROOT / "dist").glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the wheel installed: its python."""
    home = tmp_path_factory.mktemp("wheel-venv")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv/bin/python"
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], home)
    return python


def test_the_wheel_is_pure_python_and_carries_the_module(wheel: Path) -> None:
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "py_host/rust_lib.wasm" in names
    assert "py_host/py.typed" in names
    assert (
        zipfile.ZipFile(wheel).read("py_host/rust_lib.wasm")
        == (ROOT / "py_host/rust_lib.wasm").read_bytes()
    )


def test_the_installed_command_line_runs_a_procedure(installed: Path) -> None:
    help = run_installed(installed, "-m", "py_host", "--help")
    assert help.returncode == 0, help.stderr
    assert "exit status:" in help.stdout
    done = run_installed(
        installed, "-m", "py_host", "--host", "server1", "--host", "server2", "--down", "server1"
    )
    assert done.returncode == 1, done.stderr
    output = json.loads(done.stdout)
    assert output["result"] == "partial"
    assert output["failed_hosts"] == ["server1"]


def test_load_finds_the_module_inside_the_installed_package(installed: Path) -> None:
    done = run_installed(
        installed,
        "-c",
        "import py_host; from py_host.module import DEFAULT_WASM;"
        "rust = py_host.load(); rust.print_string('from the wheel');"
        "print(py_host.__file__); print(DEFAULT_WASM); print(rust.crate_version)",
    )
    assert done.returncode == 0, done.stderr
    printed, package, module, version = done.stdout.splitlines()
    assert printed == "from the wheel"
    site_packages = installed.parents[1] / "lib"
    assert Path(package).is_relative_to(site_packages)
    assert Path(module).is_relative_to(site_packages)
    assert f'\nversion = "{version}"\n' in (ROOT / "Cargo.toml").read_text()


def test_the_wheel_carries_the_metadata_a_user_or_packager_looks_for(wheel: Path) -> None:
    assert wheel.name.startswith("rust_tutorial_wasm_host-0.1.0-")
    archive = zipfile.ZipFile(wheel)
    info = "rust_tutorial_wasm_host-0.1.0.dist-info"
    metadata = archive.read(f"{info}/METADATA").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "Name: rust-tutorial-wasm-host" in headers
    assert "License-Expression: MIT" in headers
    assert "Author: The py_host authors" in headers
    assert "Classifier: Typing :: Typed" in headers
    assert "Requires-Python: >=3.10" in headers
    # The test tools are a dependency group, never an extra users can pick.
    assert "Provides-Extra: dev" not in headers
    assert not [line for line in headers if "pytest" in line or "playwright" in line]
    assert "MIT License" in archive.read(f"{info}/licenses/LICENSE").decode()
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "[console_scripts]\npy-host = " in entry_points


def test_the_installed_py_host_command_runs(installed: Path) -> None:
    done = run_installed(installed, "-c", "import py_host; print(py_host.__version__)")
    assert done.stdout == "0.1.0\n", done.stderr
    command = subprocess.run(
        [str(installed.parent / "py-host"), "--host", "server1", "--down", "server1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=installed.parents[2],
        check=False,
    )
    assert command.returncode == 1, command.stderr
    assert json.loads(command.stdout)["failed_hosts"] == ["server1"]
    usage = subprocess.run(
        [str(installed.parent / "py-host"), "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: py-host ")
