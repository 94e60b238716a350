"""py_host's reading of the ABI's packed and signed values."""

from __future__ import annotations

import pytest

from py_host._abi import pack, u32, unpack


@pytest.mark.parametrize(
    ("ptr", "length"), [(0, 0), (8, 16), (2**31 + 8, 5), (2**32 - 1, 2**32 - 1)]
)
def test_pack_round_trips_through_a_signed_i64(ptr: int, length: int) -> None:
    packed = pack(ptr, length)
    assert -(2**63) <= packed < 2**63
    assert unpack(packed) == (ptr, length)


@pytest.mark.parametrize(
    ("signed", "unsigned"), [(0, 0), (5, 5), (-1, 2**32 - 1), (-(2**31), 2**31)]
)
def test_an_i32_that_arrives_signed_is_read_as_unsigned(signed: int, unsigned: int) -> None:
    assert u32(signed) == unsigned
