//! The WebAssembly ABI: the exports the host calls and the imports it grants.
//! docs/ABI.md is the contract; this is the only module with raw pointers
//! or `unsafe`.
//!
//! Nothing the host passes is trusted. Every pointer must lie inside a live
//! buffer from `alloc`, so a stale, forged or doubly freed pointer gets an
//! error instead of reaching the allocator; and every input is copied before
//! any host code runs, so a host that writes or frees its buffer from inside
//! an import cannot change what the module has already checked.
#![allow(unsafe_code)]

use crate::allocations::{Allocations, Owner};
use crate::calls;
use crate::engine::{Execution, Executor, Round};
use crate::error::{Error, ErrorKind};
use std::alloc::{Layout, alloc_zeroed, dealloc as free, handle_alloc_error};
use std::cell::RefCell;
use std::sync::Once;

/// The ABI version; a host refuses a module whose version it does not know.
const ABI_VERSION: u32 = 2;
/// What `execute_round` returns when the host granted no executor: never a
/// packed buffer from `alloc`, whose pointer is never 0.
const NOT_GRANTED: i64 = 0;

#[link(wasm_import_module = "host")]
unsafe extern "C" {
    /// Runs a round; see docs/ABI.md for the request and answer documents.
    fn execute_round(request_ptr: *const u8, request_len: usize) -> i64;
    /// Tells the host why the module is about to trap.
    fn report_panic(message_ptr: *const u8, message_len: usize);
}

thread_local! {
    static LIVE: RefCell<Allocations> = RefCell::new(Allocations::default());
}

/// Returns a zeroed buffer of `len` bytes for the host to fill, or 0 when
/// memory is exhausted or `len` is absurd.
#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    install_panic_hook();
    allocate(len, Owner::Host).unwrap_or(std::ptr::null_mut())
}

/// Frees a live buffer given its start and exact length: 0 when freed,
/// 1 (and nothing freed) when `(ptr, len)` is not a live buffer.
#[unsafe(no_mangle)]
pub extern "C" fn dealloc(ptr: *mut u8, len: usize) -> i32 {
    match free_live(ptr, Some(len), None) {
        Some(_) => 0,
        None => 1,
    }
}

/// The tutorial's free for a returned reply: 0 when freed, 1 (and nothing
/// freed) when `ptr` is not the start of a live reply.
#[unsafe(no_mangle)]
pub extern "C" fn free_mem(ptr: *mut u8) -> i32 {
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
    const VERSION: &str = env!("CARGO_PKG_VERSION");
    pack(VERSION.as_ptr() as usize, VERSION.len())
}

/// Prints UTF-8 text and a newline to stdout: 0 when printed, otherwise a
/// packed error reply.
#[unsafe(no_mangle)]
pub extern "C" fn print_string(ptr: *const u8, len: usize) -> u64 {
    install_panic_hook();
    let text = match copy_host_bytes("the text", ptr, len) {
        Ok(text) => text,
        Err(error) => return error_reply(error),
    };
    #[cfg(feature = "faults")]
    if let Some(fault) = inject_fault(&text) {
        return fault;
    }
    status(calls::print_string(&text, &mut std::io::stdout().lock()))
}

/// Prints the little-endian i32 in the 4 bytes at `ptr`: 0 when printed,
/// otherwise a packed error reply.
#[unsafe(no_mangle)]
pub extern "C" fn print_int(ptr: *const u8) -> u64 {
    install_panic_hook();
    let le_bytes = match copy_host_bytes("the int", ptr, 4) {
        Ok(bytes) => bytes
            .try_into()
            .expect("copy_host_bytes copies exactly 4 bytes"),
        Err(error) => return error_reply(error),
    };
    status(calls::print_int(le_bytes, &mut std::io::stdout().lock()))
}

/// Runs a procedure from UTF-8 JSON and returns the packed reply.
#[unsafe(no_mangle)]
pub extern "C" fn start_procedure(ptr: *const u8, len: usize) -> u64 {
    install_panic_hook();
    match procedure_reply(ptr, len) {
        Ok(reply) => hand_over(&reply),
        Err(packed) => packed,
    }
}

/// Runs a procedure like `start_procedure`, but writes the reply into the
/// host's buffer `[out_ptr, out_ptr + out_cap)`, which may be the input's,
/// and returns its length: a packed value whose pointer half is 0, so the
/// host has nothing to free. A reply that does not fit, or whose buffer the
/// host freed during the call, comes packed in a new buffer instead.
#[unsafe(no_mangle)]
pub extern "C" fn start_procedure_into(
    ptr: *const u8,
    len: usize,
    out_ptr: *mut u8,
    out_cap: usize,
) -> u64 {
    install_panic_hook();
    let Some(out_buffer) = host_buffer_of(out_ptr, out_cap) else {
        return error_reply(outside_buffers("the reply buffer", out_ptr, out_cap));
    };
    match procedure_reply(ptr, len) {
        Ok(reply) if write_host_bytes(&reply, out_ptr, out_cap, out_buffer) => reply.len() as u64,
        Ok(reply) => hand_over(&reply),
        Err(packed) => packed,
    }
}

/// The reply document for the input at `[ptr, ptr + len)`, or what to
/// return at once instead: an error reply, or (in the test build) a fault.
fn procedure_reply(ptr: *const u8, len: usize) -> Result<Vec<u8>, u64> {
    let input = copy_host_bytes("the input", ptr, len).map_err(error_reply)?;
    #[cfg(feature = "faults")]
    if let Some(fault) = inject_fault(&input) {
        return Err(fault);
    }
    Ok(calls::start_procedure(&input, &mut HostExecutor))
}

/// The executor the host grants through the `execute_round` import.
struct HostExecutor;

impl Executor for HostExecutor {
    fn execute(&mut self, round: &Round<'_>) -> Execution {
        match ask_host(&calls::round_request(round)) {
            None => Execution::NotGranted,
            Some(answer) => Execution::Ran(calls::outcomes_from_answer(
                answer.map_err(|e| e.message),
                round.hosts.len(),
            )),
        }
    }
}

/// Sends a round request to the host and takes its answer: `None` when no
/// executor is granted, else the answer's bytes or why they are unusable.
fn ask_host(request: &[u8]) -> Option<Result<Vec<u8>, Error>> {
    // SAFETY: `request` is alive and unchanged for the whole call; the host
    // only reads it, and no export it may call touches it.
    let answer = unsafe { execute_round(request.as_ptr(), request.len()) };
    if answer == NOT_GRANTED {
        return None;
    }
    let (ptr, len) = unpack(answer as u64);
    Some(take_host_buffer(ptr as *mut u8, len))
}

/// Copies the host's bytes at `[ptr, ptr + len)` (`what`, for an error), if they lie inside one live
/// buffer from `alloc`.
fn copy_host_bytes(what: &str, ptr: *const u8, len: usize) -> Result<Vec<u8>, Error> {
    if host_buffer_of(ptr, len).is_none() {
        return Err(outside_buffers(what, ptr, len));
    }
    // SAFETY: the range lies inside a live allocation that `alloc` zeroed, so
    // it is allocated and initialized. The slice lives only for the copy,
    // during which no host code runs and WebAssembly has no other thread.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// Copies `bytes` into the host's `[ptr, ptr + cap)` if they fit and the
/// range still lies inside the live buffer from `alloc` with id `buffer`;
/// false, writing nothing, otherwise. Checked here, at the last moment,
/// because the host may have freed that buffer from an import since the
/// call began, and even made another at the same address.
fn write_host_bytes(bytes: &[u8], ptr: *mut u8, cap: usize, buffer: u64) -> bool {
    if bytes.len() > cap || host_buffer_of(ptr, cap) != Some(buffer) {
        return false;
    }
    // SAFETY: the range lies inside a live buffer from `alloc`, checked just
    // now with no host code run since, and `bytes` is the module's own,
    // which cannot overlap a buffer it lent the host.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
    true
}

fn host_buffer_of(ptr: *const u8, len: usize) -> Option<u64> {
    LIVE.with_borrow(|live| live.host_buffer_of(ptr as usize, len))
}

fn outside_buffers(what: &str, ptr: *const u8, len: usize) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("{what}: {len} bytes at {ptr:?} are not inside a live buffer from alloc"),
    )
}

/// Takes ownership of the host's buffer `(ptr, len)` from `alloc`: copies it
/// and frees it. Anything else is refused and left alone.
fn take_host_buffer(ptr: *mut u8, len: usize) -> Result<Vec<u8>, Error> {
    let bytes = copy_host_bytes("the answer", ptr, len)?;
    match free_live(ptr, Some(len), Some(Owner::Host)) {
        Some(_) => Ok(bytes),
        None => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{len} bytes at {ptr:?} are not a whole buffer from alloc"),
        )),
    }
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

fn unpack(packed: u64) -> (usize, usize) {
    ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize)
}

fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.to_string();
            // SAFETY: `message` is alive for the call and the host only reads it.
            unsafe { report_panic(message.as_ptr(), message.len()) };
        }));
    });
}

/// Carries out a fault from `crate::faults`, for the test-only module.
#[cfg(feature = "faults")]
fn inject_fault(command: &[u8]) -> Option<u64> {
    use crate::faults::Fault;
    match crate::faults::inject(command, &mut std::io::stdout().lock())? {
        Fault::Return(packed) => Some(packed),
        Fault::Reply(bytes) => Some(hand_over(&bytes)),
        Fault::Round { request, forever } => loop {
            let _ = ask_host(&request);
            if !forever {
                return Some(0);
            }
        },
        Fault::ReadOutOfBounds => {
            // SAFETY: none, on purpose: the address is past the 4 GiB a
            // 32-bit memory can have, so the runtime traps instead of reading.
            let value = unsafe { std::ptr::read_volatile(0xffff_fff0 as *const u64) };
            Some(value)
        }
    }
}
