"""The soak at CI size: mixed calls, valid and invalid, leave memory flat."""

from __future__ import annotations

from soak import soak


def test_mixed_calls_leave_memory_flat() -> None:
    lines: list[str] = []
    start, end = soak(20_000, report=lines.append)
    assert end.pages == start.pages, lines
    assert end.live_allocations == 0, lines
    # Python's own allocator may settle a little; a leak per call would not.
    assert end.rss_bytes - start.rss_bytes < 32 * 2**20, lines
