"""The procedure's input and output: pydantic mirrors of the Rust structs
(``src/model.rs``), with the same types, ranges and rules, so most bad
input is refused here with the field's name before anything crosses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
MAX_HOSTS = 100_000

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HostName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=rf"^{_LABEL}(?:\.{_LABEL})*$")
]
"""An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens."""

ActionName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
"""A name the executor looks up, never a command line."""


class ProcedureInput(BaseModel):
    """Run ``action`` on every host of ``host_list``.

    Strict like the module: an integer field takes an ``int`` of any size
    (out of range: ``out_of_range``) and nothing else, not ``True``,
    ``10.0`` or ``"10"`` (``invalid_type``), as docs/ABI.md's rule for JSON
    integers says; and no unknown fields.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    timeout: Annotated[int, Field(ge=1, le=255)]
    """Seconds each attempt may take."""
    retries: Annotated[int, Field(ge=0, le=255)]
    """Attempts after the first for a host that failed."""
    host_list: Annotated[list[HostName], Field(min_length=1, max_length=MAX_HOSTS)]
    """Unique host names, ignoring case, in the order results are reported."""
    action: ActionName
    job_id: Annotated[int, Field(ge=I32_MIN, le=I32_MAX)]

    @field_validator("host_list")
    @classmethod
    def _hosts_are_unique(cls, hosts: list[str]) -> list[str]:
        seen: set[str] = set()
        for index, host in enumerate(hosts):
            if host.lower() in seen:
                raise ValueError(
                    f"{host!r} at index {index} appears more than once (host names ignore case)"
                )
            seen.add(host.lower())
        return hosts


class HostFailure(BaseModel):
    """Why one host failed, after how many attempts."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    host: str
    attempts: Annotated[int, Field(ge=1, le=256)]
    reason: str
    """What the executor said about the last failed attempt."""


class ProcedureOutput(BaseModel):
    """What the procedure did."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    job_id: Annotated[int, Field(ge=I32_MIN, le=I32_MAX)]
    result: Literal["success", "partial", "failure"]
    """``success``: every host succeeded; ``partial``: some failed; ``failure``: all failed."""
    message: str
    """For people: how many hosts failed, or that nothing ran."""
    failed_hosts: list[str]
    """The hosts that failed, in input order."""
    failures: list[HostFailure]
    """One entry per failed host, in the order of ``failed_hosts``."""
    dry_run: bool
    """True when no executor was granted, so nothing ran."""
