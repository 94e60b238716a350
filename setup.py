"""Builds the WebAssembly module that goes inside the package, when the source
tree does not have it: everything else is in pyproject.toml.

A clone, a ``pip install git+...`` and an sdist without the module all reach
``build_py`` here. If ``py_host/rust_lib.wasm`` is there (``just build`` put
it there, or the sdist ships it), it is used as it is. Otherwise cargo builds
it for wasm32-wasip1, and with no Rust toolchain, or one without that
target, the build stops here with what to install, rather than making a
package whose ``load()`` fails later.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import ExecError, PlatformError

ROOT = Path(__file__).resolve().parent
MODULE = Path("py_host", "rust_lib.wasm")
TARGET = "wasm32-wasip1"
CRATE = "rust_lib"

MISSING = f"""{MODULE} is not in this source tree, and it cannot be built here: {{why}}.
To build it, install Rust with rustup (https://rustup.rs), add the WebAssembly target with

    rustup target add {TARGET}

and install again. (Just installed rustup? Its cargo is in ~/.cargo/bin: open a new shell,
or run `. "$HOME/.cargo/env"`.) A wheel of this package has the module inside and needs no Rust."""


def check_toolchain() -> str:
    """The cargo to build with; raises PlatformError saying what to install."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise PlatformError(MISSING.format(why="there is no `cargo` on the PATH"))
    # The rustc that cargo runs here (the toolchain a rustup proxy picks for this
    # directory) has the target's standard library in this directory when installed.
    rustc = shutil.which("rustc") or "rustc"
    try:
        done = subprocess.run(
            [rustc, "--print", "target-libdir", "--target", TARGET],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    except OSError as error:
        raise PlatformError(MISSING.format(why=f"`rustc` cannot run ({error})")) from None
    libdir = Path(done.stdout.strip())
    if done.returncode != 0 or not done.stdout.strip() or not libdir.is_dir():
        raise PlatformError(
            MISSING.format(why=f"the Rust toolchain has no {TARGET} target installed")
        )
    return cargo


def build_module() -> Path:
    """Build the module with cargo and return where cargo put it."""
    cargo = check_toolchain()
    command = [cargo, "build", "--release", "--locked", "--lib", "--target", TARGET]
    # Diagnostics go to stderr as usual; stdout carries the artifacts' paths,
    # so CARGO_TARGET_DIR and a configured target directory are honoured.
    done = subprocess.run(
        [*command, "--message-format=json-render-diagnostics"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise ExecError(f"`{' '.join(command)}` failed with exit status {done.returncode}")
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == CRATE:
            for filename in message["filenames"]:
                if filename.endswith(".wasm"):
                    return Path(filename)
    raise ExecError(f"`{' '.join(command)}` succeeded but named no .wasm file for {CRATE}")


class BuildPyWithModule(build_py):
    def run(self) -> None:
        built = None if (ROOT / MODULE).is_file() else build_module()
        if built is not None and self.editable_mode:
            # An editable install serves the package from this tree, as
            # `just build` does: the module must be here.
            shutil.copyfile(built, ROOT / MODULE)
        super().run()
        if built is not None and not self.editable_mode:
            # Beside the package in the wheel only: a module left in the
            # source tree would be taken as is by later builds, stale once
            # src/ changes.
            destination = Path(self.build_lib, MODULE)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built, destination)


setup(cmdclass={"build_py": BuildPyWithModule})
