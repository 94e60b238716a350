"""Installing from source (README, "Install it"): `pip install .` on a clone,
as `pip install git+...` does, builds the WebAssembly module with cargo when
Rust has the wasm32-wasip1 target, and otherwise stops at build time saying
what to install; an sdist carries what that build needs, and the module."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest
from conftest import NO_RUST_PATH, ROOT, isolated_environment, run_installed

# Each test makes a virtualenv and installs into it; the first build of the
# module in target/install/ compiles the crate and its dependencies. The
# installed package never sees PY_HOST_PUBLIC_API (isolated_environment() drops it), so
# `just test`'s second pass, which sets it, leaves this file out.
pytestmark = pytest.mark.timeout(900)

PYPROJECT = (ROOT / "pyproject.toml").read_text()
# [project]'s, the first of each in the file (tomllib is not in Python 3.10).
PROJECT = {
    key: re.findall(rf'^{key} = "(.+)"$', PYPROJECT, re.MULTILINE)[0] for key in ("name", "version")
}
TUTORIAL_LINE = "Python says hi inside Rust!"
"""System directories only: where a machine without Rust has no cargo."""
# Shared by the runs of this file, apart from the tree `just build` uses.
CARGO_TARGET_DIR = ROOT / "target/install"


def a_clone(into: Path) -> Path:
    """The files a clone of the repository has, as they are in the working
    tree: no build outputs, so no module."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        cwd=ROOT,
        check=True,
    ).stdout
    clone = into / "clone"
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (clone / "py_host/rust_lib.wasm").exists()
    return clone


def a_virtualenv(into: Path) -> Path:
    """A new virtualenv: its python."""
    venv.create(into / "venv", with_pip=True)
    return into / "venv/bin/python"


def pip_install(python: Path, what: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", str(what)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=what.parent,
        env=isolated_environment(f"{python.parent}:{path}", CARGO_TARGET_DIR=str(CARGO_TARGET_DIR)),
        check=False,
    )


def tutorial_runs(python: Path) -> None:
    done = run_installed(
        python,
        "-c",
        "import py_host; rust = py_host.load(); "
        f"rust.print_string({TUTORIAL_LINE!r}); print(py_host.__version__)",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{TUTORIAL_LINE}\n{PROJECT['version']}\n"


def rust_path() -> str:
    cargo = shutil.which("cargo")
    assert cargo is not None, "the tests run where `just build` built the module with cargo"
    return f"{Path(cargo).parent}:{NO_RUST_PATH}"


def test_pip_install_from_a_clone_builds_the_module(tmp_path: Path) -> None:
    clone = a_clone(tmp_path)
    python = a_virtualenv(tmp_path)
    done = pip_install(python, clone, rust_path())
    assert done.returncode == 0, done.stdout + done.stderr
    tutorial_runs(python)
    # The module went into the package, not the source tree, where a later
    # build would take it as it is.
    assert not (clone / "py_host/rust_lib.wasm").exists()
    command = run_installed(python, "-m", "pip", "show", PROJECT["name"])
    assert f"\nVersion: {PROJECT['version']}\n" in command.stdout
    version = subprocess.run(
        [str(python.parent / "py-host"), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env=isolated_environment(f"{python.parent}:{NO_RUST_PATH}"),
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"py_host {PROJECT['version']}, wasmtime ")


def assert_stops_naming_what_to_install(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    output = done.stdout + done.stderr
    assert "py_host/rust_lib.wasm is not in this source tree" in output, output
    assert "https://rustup.rs" in output, output
    assert "rustup target add wasm32-wasip1" in output, output
    # At build time: nothing was installed.
    assert "Successfully installed" not in output
    return output


def test_without_cargo_the_build_stops_saying_what_to_install(tmp_path: Path) -> None:
    assert shutil.which("cargo", path=NO_RUST_PATH) is None, f"cargo is in {NO_RUST_PATH}"
    python = a_virtualenv(tmp_path)
    done = pip_install(python, a_clone(tmp_path), NO_RUST_PATH)
    output = assert_stops_naming_what_to_install(done)
    assert "no `cargo` on the PATH" in output
    assert run_installed(python, "-c", "import py_host").returncode != 0


def test_without_the_wasm_target_the_build_stops_saying_what_to_install(tmp_path: Path) -> None:
    # A toolchain whose standard libraries are only the host's: the real
    # cargo, and a rustc whose sysroot has no wasm32-wasip1.
    rustc = shutil.which("rustc")
    assert rustc is not None
    bin = tmp_path / "toolchain/bin"
    bin.mkdir(parents=True)
    sysroot = tmp_path / "toolchain/sysroot"
    (sysroot / "lib/rustlib").mkdir(parents=True)
    (bin / "rustc").write_text(f'#!/bin/sh\nexec {rustc} --sysroot {sysroot} "$@"\n')
    (bin / "rustc").chmod(0o755)
    python = a_virtualenv(tmp_path)
    done = pip_install(python, a_clone(tmp_path), f"{bin}:{rust_path()}")
    output = assert_stops_naming_what_to_install(done)
    assert "the Rust toolchain has no wasm32-wasip1 target installed" in output


def test_an_sdist_carries_the_sources_and_the_module_and_installs_without_rust(
    tmp_path: Path,
) -> None:
    clone = a_clone(tmp_path)
    # As `just sdist` makes it: after `just build` put the module in the tree.
    shutil.copy2(ROOT / "py_host/rust_lib.wasm", clone / "py_host/rust_lib.wasm")
    made = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path / "dist"), "."],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=clone,
        env=isolated_environment(f"{Path(sys.executable).parent}:{NO_RUST_PATH}"),
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    assert sdist.name == f"{PROJECT['name'].replace('-', '_')}-{PROJECT['version']}.tar.gz"
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
        shipped = archive.extractfile(f"{top}/py_host/rust_lib.wasm")
        assert shipped is not None
        assert shipped.read() == (ROOT / "py_host/rust_lib.wasm").read_bytes()
    needed = {"Cargo.toml", "Cargo.lock", "setup.py", "pyproject.toml", "LICENSE"}
    needed |= {f"src/{path.name}" for path in (ROOT / "src").glob("*.rs")}
    needed |= {"src/bin/schemas.rs", "py_host/rust_lib.wasm", "py_host/py.typed"}
    assert needed <= names, sorted(needed - names)

    python = a_virtualenv(tmp_path)
    done = pip_install(python, sdist, NO_RUST_PATH)
    assert done.returncode == 0, done.stdout + done.stderr
    tutorial_runs(python)
