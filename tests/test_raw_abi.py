"""The module's side of docs/ABI.md, called through bare wasmtime with no
py_host in between: every export refuses what is not a live buffer, free_mem
and dealloc are harmless on anything else, and a procedure goes exactly as
the document traces it."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
import wasmtime
from conftest import ABI_VERSION, FAULTS_WASM, ROOT, tutorial_input

WASM = ROOT / "py_host/rust_lib.wasm"


class RawModule:
    """A bare host: every import traps, as docs/ABI.md says a host defines them."""

    def __init__(self, path: Any = WASM, *, executor: bool = False) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        module = wasmtime.Module.from_file(engine, str(path))
        linker.define_unknown_imports_as_traps(module)
        instance = linker.instantiate(self.store, module)
        self.exports = instance.exports(self.store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        if executor:
            self.call("grant_executor")

    def call(self, name: str, *args: int) -> Any:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        return func(self.store, *args)

    def lend(self, data: bytes) -> int:
        ptr: int = self.call("alloc", len(data))
        assert ptr != 0
        self.memory.write(self.store, data, ptr)
        return ptr

    def read(self, ptr: int, length: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + length))

    def outbox(self) -> tuple[int, int, int, int]:
        address = self.call("outbox") & 0xFFFF_FFFF
        fields: tuple[int, int, int, int] = struct.unpack("<4I", self.read(address, 16))
        return fields

    def output(self) -> bytes:
        ptr, length, _, _ = self.outbox()
        return self.read(ptr, length)

    def reply(self, packed: int) -> tuple[int, int, Any]:
        packed &= (1 << 64) - 1
        ptr, length = packed >> 32, packed & 0xFFFF_FFFF
        return ptr, length, json.loads(self.memory.read(self.store, ptr, ptr + length))

    def live(self) -> int:
        live: int = self.call("live_allocations")
        return live


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
    raw = RawModule(executor=True)
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    reply_ptr, length, document = raw.reply(
        raw.call("start_procedure_into", ptr, len(data), ptr, len(data) + 1)
    )
    assert document["error"]["kind"] == "invalid_argument"
    assert "the reply buffer" in document["error"]["message"]
    assert raw.call("cancel_procedure") == 1, "no procedure started"
    raw.call("dealloc", reply_ptr, length)
    raw.call("dealloc", ptr, len(data))
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


def test_what_print_string_and_print_int_print_waits_in_the_outbox(raw: RawModule) -> None:
    text = "héllo\0 🦀".encode()
    ptr = raw.lend(text)
    assert raw.call("print_string", ptr, len(text)) == 0
    assert raw.output() == text + b"\n"
    assert raw.call("dealloc", ptr, len(text)) == 0
    assert raw.output() == text + b"\n", "it stays until the next call that prints"
    ptr = raw.lend(struct.pack("<i", -7))
    assert raw.call("print_int", ptr) == 0
    assert raw.output() == b"Python gave us number -7\n"
    assert raw.call("dealloc", ptr, 4) == 0
    assert raw.outbox()[3] == 0, "no trap report"
    assert raw.live() == 0


def test_a_call_that_prints_nothing_empties_the_output(raw: RawModule) -> None:
    text = b"x"
    ptr = raw.lend(text)
    raw.call("print_string", ptr, 1)
    data = json.dumps(tutorial_input()).encode()
    raw.call("dealloc", ptr, 1)
    ptr = raw.lend(data)
    reply_ptr, length, _ = raw.reply(raw.call("start_procedure", ptr, len(data)))
    assert raw.outbox()[1] == 0
    raw.call("dealloc", ptr, len(data))
    raw.call("dealloc", reply_ptr, length)


def test_a_panic_leaves_its_message_in_the_outbox() -> None:
    raw = RawModule(FAULTS_WASM)
    command = b"fault:panic"
    ptr = raw.lend(command)
    with pytest.raises(wasmtime.Trap):
        raw.call("print_string", ptr, len(command))
    _, _, trap_ptr, trap_len = raw.outbox()
    report = raw.read(trap_ptr, trap_len).decode()
    assert report.startswith("panicked at src/faults.rs:")
    assert report.endswith("injected panic: the host asked for it")


def test_a_failed_allocation_leaves_its_size_in_the_outbox() -> None:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=8 << 20)
    linker = wasmtime.Linker(engine)
    module = wasmtime.Module.from_file(engine, str(FAULTS_WASM))
    linker.define_unknown_imports_as_traps(module)
    exports = linker.instantiate(store, module).exports(store)
    memory = exports["memory"]
    alloc, print_string, outbox = exports["alloc"], exports["print_string"], exports["outbox"]
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(alloc, wasmtime.Func)
    assert isinstance(print_string, wasmtime.Func)
    assert isinstance(outbox, wasmtime.Func)
    command = b"fault:grow"
    ptr = alloc(store, len(command))
    memory.write(store, command, ptr)
    # The trap comes from std's handler calling fd_write, which traps.
    with pytest.raises(wasmtime.WasmtimeError, match="fd_write"):
        print_string(store, ptr, len(command))
    address = outbox(store)
    _, _, trap_ptr, trap_len = struct.unpack(
        "<4I", bytes(memory.read(store, address, address + 16))
    )
    report = bytes(memory.read(store, trap_ptr, trap_ptr + trap_len)).decode()
    assert report.startswith("memory allocation of ")
    assert report.endswith(" bytes failed")


def at(raw: RawModule, ptr: int, packed: int) -> bytes:
    """The step reply a call wrote into the host's buffer at ``ptr``."""
    assert packed >> 32 == 0, "the reply is in the host's buffer"
    return raw.read(ptr, packed)


def test_the_traced_procedure_step_by_step() -> None:
    # docs/ABI.md, "A procedure traced step by step", byte for byte.
    raw = RawModule(executor=True)
    data = (
        b'{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}'
    )
    assert len(data) == 89
    ptr = raw.lend(data.ljust(4096, b"\0"))
    assert raw.live() == 1
    packed = raw.call("start_procedure_into", ptr, 89, ptr, 4096)
    assert packed == 84
    assert at(raw, ptr, packed) == (
        b'{"round":{"action":"reboot","timeout":10,"attempt":1,"hosts":["server1","server2"]}}'
    )
    answer = b'[{"status":"failed","reason":"host is down"},{"status":"ok"}]'
    assert len(answer) == 61
    raw.memory.write(raw.store, answer, ptr)
    packed = raw.call("resume_procedure", ptr, 61, ptr, 4096)
    assert packed == 74
    assert at(raw, ptr, packed) == (
        b'{"round":{"action":"reboot","timeout":10,"attempt":2,"hosts":["server1"]}}'
    )
    down = b'[{"status":"failed","reason":"host is down"}]'
    assert len(down) == 45
    for attempt in (3, 4):
        raw.memory.write(raw.store, down, ptr)
        packed = raw.call("resume_procedure", ptr, 45, ptr, 4096)
        assert json.loads(at(raw, ptr, packed)) == {
            "round": {"action": "reboot", "timeout": 10, "attempt": attempt, "hosts": ["server1"]}
        }
        assert raw.outbox()[1] == 0
    raw.memory.write(raw.store, down, ptr)
    packed = raw.call("resume_procedure", ptr, 45, ptr, 4096)
    assert packed == 176
    assert at(raw, ptr, packed) == (
        b'{"ok":{"job_id":1,"result":"partial","message":"1 host failed","failed_hosts":["server1"],'
        b'"failures":[{"host":"server1","attempts":4,"reason":"host is down"}],"dry_run":false}}'
    )
    assert raw.outbox()[1] == 0, "a procedure prints nothing"
    assert raw.call("dealloc", ptr, 4096) == 0
    assert raw.live() == 0


def test_without_grant_executor_a_procedure_is_a_dry_run_in_one_step(raw: RawModule) -> None:
    data = json.dumps(tutorial_input()).encode()
    ptr = raw.lend(data)
    reply_ptr, length, document = raw.reply(raw.call("start_procedure", ptr, len(data)))
    assert document["ok"]["dry_run"] is True
    assert raw.call("cancel_procedure") == 1, "nothing is in progress"
    raw.call("dealloc", ptr, len(data))
    raw.call("dealloc", reply_ptr, length)
    assert raw.live() == 0


def start(raw: RawModule, **changes: Any) -> Any:
    """Start the tutorial's procedure with ``changes``; the first step's document."""
    data = json.dumps(tutorial_input(**changes)).encode()
    ptr = raw.lend(data)
    reply_ptr, length, document = raw.reply(raw.call("start_procedure", ptr, len(data)))
    assert raw.call("dealloc", ptr, len(data)) == 0
    assert raw.call("dealloc", reply_ptr, length) == 0
    return document


def resume(raw: RawModule, answer: bytes) -> Any:
    """Resume with ``answer`` (replies in buffers of their own); the next step's document."""
    ptr = raw.lend(answer)
    reply_ptr, length, document = raw.reply(raw.call("resume_procedure", ptr, len(answer), ptr, 0))
    assert raw.call("dealloc", ptr, len(answer)) == 0
    assert raw.call("dealloc", reply_ptr, length) == 0
    return document


def test_null_on_the_first_round_is_a_dry_run_and_on_a_later_one_a_refusal() -> None:
    raw = RawModule(executor=True)
    assert "round" in start(raw)
    assert resume(raw, b"null")["ok"]["dry_run"] is True
    assert "round" in start(raw, host_list=["a"])
    assert resume(raw, b'[{"status":"failed","reason":"down"}]')["round"]["attempt"] == 2
    output = resume(raw, b"null")["ok"]
    assert output["failures"] == [
        {"host": "a", "attempts": 2, "reason": "the executor stopped answering"}
    ]
    assert raw.live() == 0


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"[{]", "unusable"),
        (b'[{"status":"maybe"}]', "unknown variant"),
        (b'[{"status":"ok"},{"status":"ok"}]', "answered 2 outcomes for 1 host"),
        (b"[]", "answered 0 outcomes for 1 host"),
        (b"\xff", "unusable"),
    ],
)
def test_an_unusable_answer_fails_every_host_of_the_round(answer: bytes, reason: str) -> None:
    raw = RawModule(executor=True)
    start(raw, retries=0, host_list=["a"])
    output = resume(raw, answer)["ok"]
    assert output["failed_hosts"] == ["a"]
    assert reason in output["failures"][0]["reason"]
    assert raw.live() == 0


def test_resume_without_a_procedure_is_an_error_and_cancel_ends_one() -> None:
    raw = RawModule(executor=True)
    assert resume(raw, b"[]")["error"]["kind"] == "invalid_argument"
    start(raw)
    assert raw.call("cancel_procedure") == 0
    assert raw.call("cancel_procedure") == 1
    assert resume(raw, b'[{"status":"ok"},{"status":"ok"}]')["error"]["kind"] == (
        "invalid_argument"
    )
    assert raw.live() == 0


def test_resume_refuses_an_answer_outside_a_live_buffer() -> None:
    raw = RawModule(executor=True)
    start(raw)
    out = raw.lend(bytes(16))
    _, _, document = raw.reply(raw.call("resume_procedure", 1024, 8, out, 16))
    assert document["error"]["kind"] == "invalid_argument"
    assert "the answer" in document["error"]["message"]
