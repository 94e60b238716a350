"""What one loaded module may use: the sandbox's knobs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

MiB = 1 << 20
MAX_MEMORY_BYTES = 4 << 30
"""A 32-bit module can address no more than 4 GiB."""
MAX_DEADLINE_SECONDS = 7 * 24 * 3600.0
MAX_FUEL = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """Limits for a module loaded with ``py_host.load(limits=...)``.

    A module that reaches one is stopped with :class:`~py_host.LimitExceeded`
    (:class:`~py_host.DeadlineExceeded` for the deadline), its instance is
    discarded, and the next call runs on a fresh one. The defaults suit
    procedures of up to the module's 100,000 hosts.
    """

    max_memory_bytes: int = 64 * MiB
    """The most linear memory the module may grow to."""
    deadline_seconds: float | None = 10.0
    """The most wall-clock time the module may run in one call, not counting
    the time its executor takes (each attempt has its own timeout). ``None``
    for no deadline."""
    procedure_seconds: float | None = None
    """The most wall-clock time one call may take in all, its executor's
    rounds included: a bound on a whole procedure. It is looked at before
    each round and each step, so a round that runs past it ends first; the
    procedure is then stopped with :class:`~py_host.DeadlineExceeded`
    (``limit`` ``"procedure"``) and its instance discarded. ``None`` (the
    default) for no bound."""
    max_fuel: int | None = None
    """The most fuel, roughly WebAssembly instructions, one call may use.
    ``None`` for no count; counting costs some speed."""
    max_reply_bytes: int = 32 * MiB
    """The largest reply the host copies out of the module."""
    max_output_bytes: int = 16 * MiB
    """The most bytes the module may write to stdout and stderr in one call."""

    def __post_init__(self) -> None:
        _check_int("max_memory_bytes", self.max_memory_bytes, 0, MAX_MEMORY_BYTES)
        _check_int("max_reply_bytes", self.max_reply_bytes, 0, MAX_MEMORY_BYTES)
        _check_int("max_output_bytes", self.max_output_bytes, 0, 2**63 - 1)
        if self.max_fuel is not None:
            _check_int("max_fuel", self.max_fuel, 1, MAX_FUEL)
        _check_seconds("deadline_seconds", self.deadline_seconds)
        _check_seconds("procedure_seconds", self.procedure_seconds)


def _check_seconds(name: str, seconds: object) -> None:
    if seconds is not None and (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not 0 < seconds <= MAX_DEADLINE_SECONDS
    ):
        raise ConfigError(
            f"{name} must be a number of seconds above 0 and at most "
            f"{MAX_DEADLINE_SECONDS:g}, or None; got {seconds!r}"
        )


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an int from {low} to {high}; got {value!r}")


DEFAULT_LIMITS = Limits()
"""What a module gets when it is loaded without limits: one object for all,
as limits cannot change, made once rather than validated again at every
load."""
