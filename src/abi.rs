//! The WebAssembly ABI: the exports the host calls and the imports it grants.
//! docs/ABI.md is the contract; this is the only module with raw pointers
//! or `unsafe`.
//!
//! Nothing the host passes is trusted: every pointer must lie inside a live
//! buffer from `alloc`, so a stale, forged or doubly freed pointer gets an
//! error reply instead of reaching the allocator.

use crate::allocations::{Allocations, Owner};
use crate::calls;
use crate::engine::{Execution, Executor, Outcome, Round};
use crate::error::{Error, ErrorKind};
use crate::validate::parse_input;
use std::alloc::{Layout, alloc_zeroed, dealloc as free, handle_alloc_error};
use std::cell::RefCell;
use std::sync::Once;

/// The ABI version; a host refuses a module whose version it does not know.
const ABI_VERSION: u32 = 1;
/// What `execute_round` returns when the host granted no executor.
const NOT_GRANTED: i64 = -1;

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
    if LIVE.with_borrow_mut(|live| live.remove(ptr as usize, len)) {
        release(ptr, len);
        0
    } else {
        1
    }
}

/// The tutorial's free for a returned reply: 0 when freed, 1 (and nothing
/// freed) when `ptr` is not the start of a live reply.
#[unsafe(no_mangle)]
pub extern "C" fn free_mem(ptr: *mut u8) -> i32 {
    match LIVE.with_borrow_mut(|live| live.remove_reply(ptr as usize)) {
        Some(len) => {
            release(ptr, len);
            0
        }
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

/// Prints UTF-8 text and a newline to stdout: 0 when printed, otherwise a
/// packed error reply.
#[unsafe(no_mangle)]
pub extern "C" fn print_string(ptr: *const u8, len: usize) -> u64 {
    install_panic_hook();
    #[cfg(feature = "faults")]
    if let Ok(Some(fault)) = read_host_bytes(ptr, len, crate::faults::inject) {
        return fault;
    }
    let printed = read_host_bytes(ptr, len, |text| {
        calls::print_string(text, &mut std::io::stdout().lock())
    });
    status(printed.and_then(|result| result))
}

/// Prints the little-endian i32 in the 4 bytes at `ptr`: 0 when printed,
/// otherwise a packed error reply.
#[unsafe(no_mangle)]
pub extern "C" fn print_int(ptr: *const u8) -> u64 {
    install_panic_hook();
    let printed = read_host_bytes(ptr, 4, |bytes| {
        let le_bytes = bytes
            .try_into()
            .expect("read_host_bytes gives exactly 4 bytes");
        calls::print_int(le_bytes, &mut std::io::stdout().lock())
    });
    status(printed.and_then(|result| result))
}

/// Runs a procedure from UTF-8 JSON and returns the packed reply.
#[unsafe(no_mangle)]
pub extern "C" fn start_procedure(ptr: *const u8, len: usize) -> u64 {
    install_panic_hook();
    // Parse first: the input is owned before the executor runs host code.
    let input = read_host_bytes(ptr, len, parse_input).and_then(|input| input);
    let output = input.map(|input| crate::engine::run_procedure(&input, &mut HostExecutor));
    hand_over(&calls::reply(&output))
}

/// The executor the host grants through the `execute_round` import.
struct HostExecutor;

impl Executor for HostExecutor {
    fn execute(&mut self, round: &Round<'_>) -> Execution {
        let request = calls::round_request(round);
        // SAFETY: `request` is alive and unchanged for the whole call; the
        // host only reads it. The host may call back into our exports, none
        // of which touch `request`.
        let answer = unsafe { execute_round(request.as_ptr(), request.len()) };
        if answer == NOT_GRANTED {
            return Execution::NotGranted;
        }
        let (ptr, len) = unpack(answer as u64);
        let outcomes = read_host_bytes(ptr as *const u8, len, calls::parse_outcomes)
            .map_err(|e| e.message)
            .and_then(|parsed| parsed);
        dealloc(ptr as *mut u8, len);
        Execution::Ran(outcomes.unwrap_or_else(|problem| {
            let reason = format!("the executor's answer was unusable: {problem}");
            vec![Outcome::Failed { reason }; round.hosts.len()]
        }))
    }
}

/// Calls `read` on the host's bytes at `[ptr, ptr + len)`, if they lie inside
/// one live buffer from `alloc`; no host code may run inside `read`.
fn read_host_bytes<R>(
    ptr: *const u8,
    len: usize,
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    if !LIVE.with_borrow(|live| live.holds_host_range(ptr as usize, len)) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{len} bytes at {ptr:?} are not inside a live buffer from alloc"),
        ));
    }
    // SAFETY: the range lies inside a live allocation that `alloc` zeroed, so
    // it is allocated and initialized. WebAssembly memory has no other
    // threads, and `read` runs no host code, so nothing writes it meanwhile.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    Ok(read(bytes))
}

/// 0 for success, else the packed error reply.
fn status(result: Result<(), Error>) -> u64 {
    match result {
        Ok(()) => 0,
        Err(error) => hand_over(&calls::reply::<()>(&Err(error))),
    }
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

/// Returns a buffer the caller just removed from `LIVE` to the allocator.
fn release(ptr: *mut u8, len: usize) {
    // SAFETY: `ptr` came from `allocate` with this same layout (the entry in
    // LIVE matched), and removing the entry first means it is freed once.
    unsafe { free(ptr, layout(len)) };
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
