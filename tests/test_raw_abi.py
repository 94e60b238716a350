"""The module's side of docs/ABI.md, called through bare wasmtime (with its
own WASI) and no py_host in between: every export refuses what is not a live
buffer, and free_mem and dealloc are harmless on anything else."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
import wasmtime
from conftest import ABI_VERSION, ROOT, tutorial_input

WASM = ROOT / "py_host/rust_lib.wasm"
I32, I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
RoundHandler = Callable[["RawModule", wasmtime.Caller, bytes], int]


class RawModule:
    """A bare host: wasmtime's WASI and the ABI's two `host` imports."""

    def __init__(self, execute_round: RoundHandler | None = None) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.store.set_wasi(wasmtime.WasiConfig())
        self.panics: list[bytes] = []

        def on_round(caller: wasmtime.Caller, ptr: int, length: int) -> int:
            if execute_round is None:
                return 0
            return execute_round(self, caller, self.memory.read(caller, ptr, ptr + length))

        def on_panic(caller: wasmtime.Caller, ptr: int, length: int) -> None:
            self.panics.append(bytes(self.memory.read(caller, ptr, ptr + length)))

        linker.define_func(
            "host",
            "execute_round",
            wasmtime.FuncType([I32, I32], [I64]),
            on_round,
            access_caller=True,
        )
        linker.define_func(
            "host", "report_panic", wasmtime.FuncType([I32, I32], []), on_panic, access_caller=True
        )
        instance = linker.instantiate(self.store, wasmtime.Module.from_file(engine, str(WASM)))
        self.exports = instance.exports(self.store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory

    def call(self, name: str, *args: int, ctx: Any = None) -> int:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        result: int = func(ctx or self.store, *args)
        return result

    def lend(self, data: bytes, ctx: Any = None) -> int:
        ptr = self.call("alloc", len(data), ctx=ctx)
        assert ptr != 0
        self.memory.write(ctx or self.store, data, ptr)
        return ptr

    def reply(self, packed: int) -> tuple[int, int, Any]:
        packed &= (1 << 64) - 1
        ptr, length = packed >> 32, packed & 0xFFFF_FFFF
        return ptr, length, json.loads(self.memory.read(self.store, ptr, ptr + length))

    def live(self) -> int:
        return self.call("live_allocations")


@pytest.fixture
def raw() -> RawModule:
    return RawModule()


def test_abi_version_is_the_one_py_host_speaks(raw: RawModule) -> None:
    assert raw.call("abi_version") == ABI_VERSION


def test_crate_version_is_static_text_that_is_not_a_buffer(raw: RawModule) -> None:
    packed = raw.call("crate_version") & (2**64 - 1)
    ptr, length = packed >> 32, packed & 0xFFFF_FFFF
    version = bytes(raw.memory.read(raw.store, ptr, ptr + length)).decode()
    cargo = (ROOT / "Cargo.toml").read_text()
    assert f'\nversion = "{version}"\n' in cargo
    assert raw.call("dealloc", ptr, length) == 1, "static text is not a live buffer"
    assert raw.call("free_mem", ptr) == 1


def test_a_traced_start_procedure_call(raw: RawModule) -> None:
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    assert raw.live() == 1
    packed = raw.call("start_procedure", ptr, len(data))
    assert raw.call("dealloc", ptr, len(data)) == 0
    reply_ptr, length, document = raw.reply(packed)
    assert document["ok"]["dry_run"] is True
    assert raw.live() == 1
    assert raw.call("dealloc", reply_ptr, length) == 0
    assert raw.live() == 0


def test_start_procedure_into_writes_the_reply_over_its_input(raw: RawModule) -> None:
    data = json.dumps(tutorial_input()).encode()
    capacity = 4096
    ptr = raw.lend(data + bytes(capacity - len(data)))
    packed = raw.call("start_procedure_into", ptr, len(data), ptr, capacity)
    assert packed >> 32 == 0, "the pointer half is 0: the reply is in the host's buffer"
    reply = raw.memory.read(raw.store, ptr, ptr + packed)
    assert json.loads(reply)["ok"]["dry_run"] is True
    assert raw.live() == 1, "no reply buffer was made"
    assert raw.call("dealloc", ptr, capacity) == 0


def test_start_procedure_into_a_buffer_too_small_returns_a_new_one(raw: RawModule) -> None:
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    out = raw.lend(b"untouched")
    reply_ptr, length, document = raw.reply(
        raw.call("start_procedure_into", ptr, len(data), out, 9)
    )
    assert reply_ptr not in (0, ptr, out)
    assert document["ok"]["dry_run"] is True
    assert raw.memory.read(raw.store, out, out + 9) == b"untouched"
    for buffer, size in ((ptr, len(data)), (out, 9), (reply_ptr, length)):
        assert raw.call("dealloc", buffer, size) == 0
    assert raw.live() == 0


def test_start_procedure_into_refuses_a_reply_buffer_not_from_alloc() -> None:
    rounds: list[bytes] = []
    raw = RawModule(lambda raw, caller, request: rounds.append(request) or 0)
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    reply_ptr, length, document = raw.reply(
        raw.call("start_procedure_into", ptr, len(data), ptr, len(data) + 1)
    )
    assert document["error"]["kind"] == "invalid_argument"
    assert "the reply buffer" in document["error"]["message"]
    assert rounds == [], "nothing ran"
    raw.call("dealloc", reply_ptr, length)
    raw.call("dealloc", ptr, len(data))
    assert raw.live() == 0


def test_start_procedure_into_a_buffer_freed_during_the_call_returns_a_new_one() -> None:
    out: list[int] = []

    def free_the_reply_buffer(raw: RawModule, caller: wasmtime.Caller, request: bytes) -> int:
        assert raw.call("dealloc", out[0], 4096, ctx=caller) == 0
        return 0

    raw = RawModule(free_the_reply_buffer)
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    out.append(raw.lend(bytes(4096)))
    reply_ptr, length, document = raw.reply(
        raw.call("start_procedure_into", ptr, len(data), out[0], 4096)
    )
    assert reply_ptr != 0
    assert document["ok"]["dry_run"] is True
    raw.call("dealloc", reply_ptr, length)
    raw.call("dealloc", ptr, len(data))
    assert raw.live() == 0


def test_start_procedure_into_a_buffer_freed_and_made_again_returns_a_new_one() -> None:
    out: list[int] = []
    remade: list[int] = []
    next_input = b"the host's next input".ljust(4096, b".")

    def free_and_make_again(raw: RawModule, caller: wasmtime.Caller, request: bytes) -> int:
        assert raw.call("dealloc", out[0], 4096, ctx=caller) == 0
        remade.append(raw.lend(next_input, ctx=caller))
        return 0

    raw = RawModule(free_and_make_again)
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    out.append(raw.lend(bytes(4096)))
    reply_ptr, length, document = raw.reply(
        raw.call("start_procedure_into", ptr, len(data), out[0], 4096)
    )
    assert remade == out, "the allocator made the new buffer where the old one was"
    assert reply_ptr != 0, "the reply came in a buffer of its own"
    assert document["ok"]["dry_run"] is True
    assert raw.memory.read(raw.store, remade[0], remade[0] + 4096) == next_input
    for buffer, size in ((reply_ptr, length), (ptr, len(data)), (remade[0], 4096)):
        assert raw.call("dealloc", buffer, size) == 0
    assert raw.live() == 0


def test_free_mem_frees_a_reply_once_and_then_refuses(raw: RawModule) -> None:
    data = b"{}"
    ptr = raw.lend(data)
    reply_ptr, _, document = raw.reply(raw.call("start_procedure", ptr, len(data)))
    assert document["error"]["kind"] == "missing_field"
    assert raw.call("free_mem", ptr) == 1, "an input buffer is not a reply"
    assert raw.call("free_mem", reply_ptr) == 0
    assert raw.call("free_mem", reply_ptr) == 1, "the tutorial's double free, refused"
    assert raw.call("dealloc", ptr, len(data)) == 0
    assert raw.live() == 0


@pytest.mark.parametrize("ptr", [0, 1, 8, 65536, 2**31, 2**32 - 1])
def test_free_mem_ignores_pointers_that_are_not_replies(raw: RawModule, ptr: int) -> None:
    wasmtime_ptr = ptr - 2**32 if ptr >= 2**31 else ptr
    assert raw.call("free_mem", wasmtime_ptr) == 1
    assert raw.call("abi_version") == ABI_VERSION


def test_dealloc_needs_the_exact_start_and_length(raw: RawModule) -> None:
    ptr = raw.lend(b"12345678")
    assert raw.call("dealloc", ptr, 7) == 1
    assert raw.call("dealloc", ptr + 1, 8) == 1
    assert raw.call("dealloc", ptr, 8) == 0
    assert raw.call("dealloc", ptr, 8) == 1
    assert raw.live() == 0


def test_alloc_refuses_absurd_sizes_and_serves_empty_ones(raw: RawModule) -> None:
    assert raw.call("alloc", -1) == 0
    assert raw.call("alloc", -(2**31)) == 0, "2^31 bytes"
    empty = raw.call("alloc", 0)
    assert empty != 0
    assert raw.call("dealloc", empty, 0) == 0


@pytest.mark.parametrize(
    ("export", "args"),
    [
        ("print_string", (16, 4)),
        ("print_string", (2**31 - 8, 100)),
        ("print_int", (0,)),
        ("print_int", (4,)),
        ("start_procedure", (1024, 10)),
        ("start_procedure", (-1, 1)),
        ("start_procedure_into", (1024, 10, 1024, 10)),
    ],
)
def test_buffers_not_from_alloc_are_refused(
    raw: RawModule, export: str, args: tuple[int, ...]
) -> None:
    _, _, document = raw.reply(raw.call(export, *args))
    assert document["error"]["kind"] == "invalid_argument"


def test_a_range_running_past_its_buffer_is_refused(raw: RawModule) -> None:
    ptr = raw.lend(b"abc")
    _, _, document = raw.reply(raw.call("print_string", ptr, 4))
    assert document["error"]["kind"] == "invalid_argument"
    _, _, document = raw.reply(raw.call("print_int", ptr))
    assert document["error"]["kind"] == "invalid_argument", "4 bytes from a 3-byte buffer"


def test_print_int_reads_four_little_endian_bytes(raw: RawModule) -> None:
    ptr = raw.lend(struct.pack("<i", -7))
    assert raw.call("print_int", ptr) == 0
    assert raw.call("dealloc", ptr, 4) == 0


def test_a_round_answer_in_a_buffer_from_alloc_is_taken_and_freed() -> None:
    requests: list[Any] = []

    def answer(raw: RawModule, caller: wasmtime.Caller, request: bytes) -> int:
        requests.append(json.loads(request))
        outcomes = json.dumps(
            [{"status": "failed", "reason": "down"}, {"status": "ok"}][: len(requests[-1]["hosts"])]
        ).encode()
        return (raw.lend(outcomes, caller) << 32) | len(outcomes)

    raw = RawModule(answer)
    data = json.dumps(tutorial_input(retries=1)).encode()
    ptr = raw.lend(data)
    reply_ptr, length, document = raw.reply(raw.call("start_procedure", ptr, len(data)))
    assert requests == [
        {"action": "reboot", "timeout": 10, "attempt": 1, "hosts": ["server1", "server2"]},
        {"action": "reboot", "timeout": 10, "attempt": 2, "hosts": ["server1"]},
    ]
    assert document["ok"]["failed_hosts"] == ["server1"]
    raw.call("dealloc", ptr, len(data))
    raw.call("dealloc", reply_ptr, length)
    assert raw.live() == 0


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda raw, caller: (1024 << 32) | 8, "not inside a live buffer"),
        (lambda raw, caller: -2, "not inside a live buffer"),
        (lambda raw, caller: (raw.lend(b"[{]", caller) << 32) | 3, "unusable"),
        (
            lambda raw, caller: (raw.lend(b'[{"status":"maybe"}]', caller) << 32) | 20,
            "unknown variant",
        ),
    ],
)
def test_an_unusable_round_answer_fails_the_round(
    answer: Callable[[RawModule, Any], int], reason: str
) -> None:
    raw = RawModule(lambda raw, caller, request: answer(raw, caller))
    data = json.dumps(tutorial_input(retries=0, host_list=["a"])).encode()
    ptr = raw.lend(data)
    reply_ptr, length, document = raw.reply(raw.call("start_procedure", ptr, len(data)))
    assert document["ok"]["failed_hosts"] == ["a"]
    assert reason in document["ok"]["failures"][0]["reason"]
    raw.call("dealloc", ptr, len(data))
    raw.call("dealloc", reply_ptr, length)
    assert raw.live() == 0
