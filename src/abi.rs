//! The WebAssembly ABI: the exports the host calls. docs/ABI.md is the
//! contract; this is the only module with raw pointers or `unsafe`.
//!
//! Nothing the host passes is trusted. Every pointer must lie inside a live
//! buffer from `alloc`, so a stale, forged or doubly freed pointer gets an
//! error instead of reaching the allocator; and every input is copied before
//! it is used.
//!
//! The module calls nothing of the host's: a procedure returns each round
//! for the host to run and takes the outcomes through `resume_procedure`,
//! what it prints waits in its memory for the host to copy after the call,
//! and so does the reason for a trap. So no host code ever runs while a
//! call of this module is on the stack.
#![allow(unsafe_code)]

use crate::allocations::{Allocations, Owner};
use crate::calls::{self, Procedures};
use crate::error::{Error, ErrorKind};
use std::alloc::{GlobalAlloc, Layout, System, alloc_zeroed, dealloc as free, handle_alloc_error};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::sync::Once;

/// The ABI version; a host refuses a module whose version it does not know.
const ABI_VERSION: u32 = 3;
/// The longest trap report kept: a panic message is cut there.
const MAX_TRAP_REPORT: usize = 4096;
/// Output kept between calls up to this capacity; a larger buffer is let go.
const KEPT_OUTPUT_CAPACITY: usize = 64 * 1024;

/// Where the host finds what the last call printed, and why the module is
/// trapping: four little-endian u32s at the address `outbox` returns.
#[repr(C)]
#[derive(Clone, Copy)]
struct Outbox {
    output_ptr: u32,
    output_len: u32,
    trap_ptr: u32,
    trap_len: u32,
}

thread_local! {
    static LIVE: RefCell<Allocations> = RefCell::new(Allocations::default());
    static PROCEDURES: RefCell<Procedures> = RefCell::new(Procedures::default());
    static EXECUTOR_GRANTED: Cell<bool> = const { Cell::new(false) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTBOX: Cell<Outbox> = const {
        Cell::new(Outbox { output_ptr: 0, output_len: 0, trap_ptr: 0, trap_len: 0 })
    };
    static TRAP_REPORT: RefCell<TrapReport> = const { RefCell::new(TrapReport::new()) };
}

/// Records a failed allocation before std's handler traps, since that
/// handler can only print, and the module has nowhere to print to.
struct RecordingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments, so
// `System` upholds the contract; recording a failure allocates nothing.
unsafe impl GlobalAlloc for RecordingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        noted(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as GlobalAlloc::alloc_zeroed requires.
        noted(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's block and layout, as GlobalAlloc::dealloc requires.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's block, layout and size, as GlobalAlloc::realloc requires.
        noted(unsafe { System.realloc(ptr, layout, new_size) }, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: RecordingAllocator = RecordingAllocator;

fn noted(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        record_trap(format_args!("memory allocation of {size} bytes failed"));
    }
    ptr
}

/// Returns a zeroed buffer of `len` bytes for the host to fill, or 0 when
/// memory is exhausted or `len` is absurd.
#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    enter();
    allocate(len, Owner::Host).unwrap_or(std::ptr::null_mut())
}

/// Frees a live buffer given its start and exact length: 0 when freed,
/// 1 (and nothing freed) when `(ptr, len)` is not a live buffer.
#[unsafe(no_mangle)]
pub extern "C" fn dealloc(ptr: *mut u8, len: usize) -> i32 {
    enter();
    match free_live(ptr, Some(len), None) {
        Some(_) => 0,
        None => 1,
    }
}

/// The tutorial's free for a returned reply: 0 when freed, 1 (and nothing
/// freed) when `ptr` is not the start of a live reply.
#[unsafe(no_mangle)]
pub extern "C" fn free_mem(ptr: *mut u8) -> i32 {
    enter();
    match free_live(ptr, None, Some(Owner::Reply)) {
        Some(_) => 0,
        None => 1,
    }
}

/// How many buffers are live: input buffers the host has not freed and
/// replies it has not freed. Zero between calls when nothing leaks.
#[unsafe(no_mangle)]
pub extern "C" fn live_allocations() -> usize {
    LIVE.with_borrow(Allocations::len)
}

#[unsafe(no_mangle)]
pub extern "C" fn abi_version() -> u32 {
    ABI_VERSION
}

/// The crate's version, UTF-8, packed: static text for the host to copy,
/// never to free.
#[unsafe(no_mangle)]
pub extern "C" fn crate_version() -> u64 {
    pack(crate::VERSION.as_ptr() as usize, crate::VERSION.len())
}

/// The address of the outbox, the same for the instance's whole life.
#[unsafe(no_mangle)]
pub extern "C" fn outbox() -> *const u8 {
    OUTBOX.with(|outbox| outbox.as_ptr().cast())
}

/// The host will answer the rounds of procedures: without this call every
/// procedure is a dry run.
#[unsafe(no_mangle)]
pub extern "C" fn grant_executor() {
    EXECUTOR_GRANTED.set(true);
}

/// Prints UTF-8 text and a newline into the outbox: 0 when printed,
/// otherwise a packed error reply.
#[unsafe(no_mangle)]
pub extern "C" fn print_string(ptr: *const u8, len: usize) -> u64 {
    enter();
    with_output(|out| {
        let text = match copy_host_bytes("the text", ptr, len) {
            Ok(text) => text,
            Err(error) => return error_reply(error),
        };
        #[cfg(feature = "faults")]
        if let Some(fault) = inject_fault(&text, out) {
            return fault;
        }
        status(calls::print_string(&text, out))
    })
}

/// Prints the little-endian i32 in the 4 bytes at `ptr` into the outbox: 0
/// when printed, otherwise a packed error reply.
#[unsafe(no_mangle)]
pub extern "C" fn print_int(ptr: *const u8) -> u64 {
    enter();
    with_output(|out| {
        let le_bytes = match copy_host_bytes("the int", ptr, 4) {
            Ok(bytes) => bytes
                .try_into()
                .expect("copy_host_bytes copies exactly 4 bytes"),
            Err(error) => return error_reply(error),
        };
        status(calls::print_int(le_bytes, out))
    })
}

/// Starts a procedure from UTF-8 JSON and returns its first step's packed
/// reply: the output, an error, or a round for the host to run.
#[unsafe(no_mangle)]
pub extern "C" fn start_procedure(ptr: *const u8, len: usize) -> u64 {
    enter();
    with_output(|out| match step(Step::Start, ptr, len, out) {
        Ok(reply) => hand_over(&reply),
        Err(packed) => packed,
    })
}

/// Starts a procedure like `start_procedure`, but writes the reply into the
/// host's buffer `[out_ptr, out_ptr + out_cap)`, which may be the input's,
/// and returns its length: a packed value whose pointer half is 0, so the
/// host has nothing to free. A reply that does not fit comes packed in a
/// new buffer instead.
#[unsafe(no_mangle)]
pub extern "C" fn start_procedure_into(
    ptr: *const u8,
    len: usize,
    out_ptr: *mut u8,
    out_cap: usize,
) -> u64 {
    enter();
    with_output(|out| step_into(Step::Start, ptr, len, out_ptr, out_cap, out))
}

/// Takes the executor's answer to the round now due (UTF-8 JSON) and
/// returns the next step's reply, into the host's buffer as
/// `start_procedure_into` does.
#[unsafe(no_mangle)]
pub extern "C" fn resume_procedure(
    ptr: *const u8,
    len: usize,
    out_ptr: *mut u8,
    out_cap: usize,
) -> u64 {
    enter();
    with_output(|out| step_into(Step::Resume, ptr, len, out_ptr, out_cap, out))
}

/// Abandons the procedure in progress: 0 when there was one, 1 when not.
#[unsafe(no_mangle)]
pub extern "C" fn cancel_procedure() -> i32 {
    enter();
    #[cfg(feature = "faults")]
    ENDLESS_ROUND.set(None);
    if PROCEDURES.with_borrow_mut(Procedures::cancel) {
        0
    } else {
        1
    }
}

/// Which step of a procedure a call takes.
#[derive(Clone, Copy)]
enum Step {
    Start,
    Resume,
}

fn step_into(
    step: Step,
    ptr: *const u8,
    len: usize,
    out_ptr: *mut u8,
    out_cap: usize,
    out: &mut Vec<u8>,
) -> u64 {
    let Some(out_buffer) = host_buffer_of(out_ptr, out_cap) else {
        return error_reply(outside_buffers("the reply buffer", out_cap));
    };
    match self::step(step, ptr, len, out) {
        Ok(reply) if write_host_bytes(&reply, out_ptr, out_cap, out_buffer) => reply.len() as u64,
        Ok(reply) => hand_over(&reply),
        Err(packed) => packed,
    }
}

/// The reply document of a procedure's step, whose input (the procedure's,
/// or the executor's answer) is at `[ptr, ptr + len)`; or what to return at
/// once instead: an error reply, or (in the test build) a fault.
fn step(step: Step, ptr: *const u8, len: usize, out: &mut Vec<u8>) -> Result<Vec<u8>, u64> {
    let what = match step {
        Step::Start => "the input",
        Step::Resume => "the answer",
    };
    let input = copy_host_bytes(what, ptr, len).map_err(error_reply)?;
    #[cfg(feature = "faults")]
    match step {
        Step::Start => {
            ENDLESS_ROUND.set(None);
            if let Some(fault) = inject_fault(&input, out) {
                return Err(fault);
            }
        }
        Step::Resume => {
            if let Some(round) = ENDLESS_ROUND.with_borrow(Clone::clone) {
                return Err(hand_over(&round));
            }
        }
    }
    #[cfg(not(feature = "faults"))]
    let _ = out;
    Ok(PROCEDURES.with_borrow_mut(|procedures| match step {
        Step::Start => procedures.start(&input, EXECUTOR_GRANTED.get()),
        Step::Resume => procedures.resume(&input),
    }))
}

/// Runs a call that may print: what it prints is collected, and shown in
/// the outbox when it returns, until the next such call.
fn with_output(call: impl FnOnce(&mut Vec<u8>) -> u64) -> u64 {
    OUTPUT.with_borrow_mut(|out| {
        if out.capacity() > KEPT_OUTPUT_CAPACITY {
            *out = Vec::new();
        }
        out.clear();
        let result = call(out);
        OUTBOX.set(Outbox {
            output_ptr: out.as_ptr() as u32,
            output_len: out.len() as u32,
            ..OUTBOX.get()
        });
        result
    })
}

/// Copies the host's bytes at `[ptr, ptr + len)` (`what`, for an error), if
/// they lie inside one live buffer from `alloc`.
fn copy_host_bytes(what: &str, ptr: *const u8, len: usize) -> Result<Vec<u8>, Error> {
    if host_buffer_of(ptr, len).is_none() {
        return Err(outside_buffers(what, len));
    }
    // SAFETY: the range lies inside a live allocation that `alloc` zeroed, so
    // it is allocated and initialized. The slice lives only for the copy,
    // and WebAssembly has no other thread to write it meanwhile.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// Copies `bytes` into the host's `[ptr, ptr + cap)` if they fit and the
/// range still lies inside the live buffer from `alloc` with id `buffer`;
/// false, writing nothing, otherwise.
fn write_host_bytes(bytes: &[u8], ptr: *mut u8, cap: usize, buffer: u64) -> bool {
    if bytes.len() > cap || host_buffer_of(ptr, cap) != Some(buffer) {
        return false;
    }
    // SAFETY: the range lies inside a live buffer from `alloc`, checked just
    // now, and `bytes` is the module's own, which cannot overlap a buffer it
    // lent the host.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
    true
}

fn host_buffer_of(ptr: *const u8, len: usize) -> Option<u64> {
    LIVE.with_borrow(|live| live.host_buffer_of(ptr as usize, len))
}

/// The error for a range that is not inside a live buffer. It names no
/// address: a reply must not show the module's memory layout, nor differ
/// with the allocations that came before the call.
fn outside_buffers(what: &str, len: usize) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("{what} ({len} bytes) is not inside a live buffer from alloc"),
    )
}

/// 0 for success, else the packed error reply.
fn status(result: Result<(), Error>) -> u64 {
    match result {
        Ok(()) => 0,
        Err(error) => error_reply(error),
    }
}

fn error_reply(error: Error) -> u64 {
    hand_over(&calls::reply::<()>(&Err(error)))
}

/// Copies `bytes` into a new live reply and returns it packed.
fn hand_over(bytes: &[u8]) -> u64 {
    let Some(ptr) = allocate(bytes.len(), Owner::Reply) else {
        handle_alloc_error(layout(bytes.len()));
    };
    // SAFETY: `allocate` returned a fresh buffer of `bytes.len()` bytes that
    // nothing else references, and `bytes` cannot overlap it.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
    pack(ptr as usize, bytes.len())
}

fn allocate(len: usize, owner: Owner) -> Option<*mut u8> {
    let layout = Layout::from_size_align(len.max(1), 1).ok()?;
    // SAFETY: the layout's size is at least 1.
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return None;
    }
    LIVE.with_borrow_mut(|live| live.insert(ptr as usize, len, owner));
    Some(ptr)
}

/// Frees the live buffer at `ptr` if it matches `len` and `owner` (when
/// given) and returns its length; anything else is left alone.
fn free_live(ptr: *mut u8, len: Option<usize>, owner: Option<Owner>) -> Option<usize> {
    let len = LIVE.with_borrow_mut(|live| live.remove(ptr as usize, len, owner))?;
    // SAFETY: the entry in LIVE was made by `allocate` for this pointer with
    // this layout, and removing it first means the buffer is freed once.
    unsafe { free(ptr, layout(len)) };
    Some(len)
}

fn layout(len: usize) -> Layout {
    Layout::from_size_align(len.max(1), 1).expect("a live buffer's layout was valid")
}

fn pack(ptr: usize, len: usize) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// Every export that runs code starts here: the panic hook is in place, and
/// the outbox holds no trap report from an earlier call.
fn enter() {
    static INSTALL: Once = Once::new();
    INSTALL
        .call_once(|| std::panic::set_hook(Box::new(|info| record_trap(format_args!("{info}")))));
    OUTBOX.set(Outbox {
        trap_len: 0,
        ..OUTBOX.get()
    });
}

/// Why the module is about to trap, in static memory: allocating could fail
/// again, and there may be no memory left at all.
struct TrapReport {
    text: [u8; MAX_TRAP_REPORT],
    len: usize,
}

impl TrapReport {
    const fn new() -> Self {
        TrapReport {
            text: [0; MAX_TRAP_REPORT],
            len: 0,
        }
    }
}

impl std::fmt::Write for TrapReport {
    /// Keeps what fits, cut at a character's boundary.
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let room = MAX_TRAP_REPORT - self.len;
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.text[self.len..self.len + end].copy_from_slice(&text.as_bytes()[..end]);
        self.len += end;
        Ok(())
    }
}

/// Puts the reason for the coming trap in the outbox. Cold: every
/// allocation's failure path leads here, and none should carry its code.
#[cold]
#[inline(never)]
fn record_trap(reason: std::fmt::Arguments<'_>) {
    // A second failure while the first is being recorded keeps the first.
    let _ = TRAP_REPORT.try_with(|report| {
        let Ok(mut report) = report.try_borrow_mut() else {
            return;
        };
        report.len = 0;
        let _ = report.write_fmt(reason);
        OUTBOX.set(Outbox {
            trap_ptr: report.text.as_ptr() as u32,
            trap_len: report.len as u32,
            ..OUTBOX.get()
        });
    });
}

#[cfg(feature = "faults")]
thread_local! {
    /// The round a `fault-round-forever` procedure asks for at every step.
    static ENDLESS_ROUND: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Carries out a fault from `crate::faults`, for the test-only module.
#[cfg(feature = "faults")]
fn inject_fault(command: &[u8], out: &mut Vec<u8>) -> Option<u64> {
    use crate::faults::Fault;
    match crate::faults::inject(command, out)? {
        Fault::Return(packed) => Some(packed),
        Fault::Reply(bytes) => Some(hand_over(&bytes)),
        Fault::Round { request, forever } => {
            let reply = [&b"{\"round\":"[..], &request, b"}"].concat();
            if forever {
                ENDLESS_ROUND.set(Some(reply.clone()));
            }
            Some(hand_over(&reply))
        }
        Fault::ReadOutOfBounds => {
            // SAFETY: none, on purpose: the address is past the 4 GiB a
            // 32-bit memory can have, so the runtime traps instead of reading.
            let value = unsafe { std::ptr::read_volatile(0xffff_fff0 as *const u64) };
            Some(value)
        }
    }
}
