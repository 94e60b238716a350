"""What one loaded module may use: the sandbox's knobs."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


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
    max_fuel: int | None = None
    """The most fuel, roughly WebAssembly instructions, one call may use.
    ``None`` for no count; counting costs some speed."""
    max_reply_bytes: int = 32 * MiB
    """The largest reply the host copies out of the module."""
    max_output_bytes: int = 16 * MiB
    """The most bytes the module may write to stdout and stderr in one call."""

    def __post_init__(self) -> None:
        for name in ("max_memory_bytes", "max_reply_bytes", "max_output_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.deadline_seconds is not None and not self.deadline_seconds > 0:
            raise ValueError("deadline_seconds must be positive, or None")
        if self.max_fuel is not None and self.max_fuel < 1:
            raise ValueError("max_fuel must be at least 1, or None")
