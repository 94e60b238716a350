//! The tutorial's way, as the benchmark's baseline: the same logic as the
//! WebAssembly module, compiled natively and called through ctypes, with the
//! same semantics (UTF-8 JSON in, a reply buffer out that the caller frees,
//! rounds sent to an executor the caller passes as a C callback). It trusts
//! its caller completely, as a native library must: there is no sandbox to
//! keep.

use rust_lib::calls;
use rust_lib::engine::{Execution, Executor, Round};
use std::slice;

/// The executor: `request` in; on success, `*answer`/`*answer_len` point at
/// the caller's answer, valid until the callback is called again. Returns 0
/// when it answered, -1 when no executor is granted.
pub type ExecuteRound = extern "C" fn(
    request: *const u8,
    request_len: usize,
    answer: *mut *const u8,
    answer_len: *mut usize,
) -> i32;

struct Callback(ExecuteRound);

impl Executor for Callback {
    fn execute(&mut self, round: &Round<'_>) -> Execution {
        let request = calls::round_request(round);
        let (mut answer, mut answer_len) = (std::ptr::null(), 0);
        if (self.0)(request.as_ptr(), request.len(), &mut answer, &mut answer_len) != 0 {
            return Execution::NotGranted;
        }
        // SAFETY: the caller promises `answer_len` bytes at `answer` until it is called again.
        let answer = unsafe { slice::from_raw_parts(answer, answer_len) }.to_vec();
        Execution::Ran(calls::outcomes_from_answer(Ok(answer), round.hosts.len()))
    }
}

/// Runs a procedure; returns the reply and writes its length to `*reply_len`.
/// Free it with `free_reply`.
#[unsafe(no_mangle)]
pub extern "C" fn start_procedure(
    input: *const u8,
    input_len: usize,
    execute_round: ExecuteRound,
    reply_len: *mut usize,
) -> *mut u8 {
    // SAFETY: the caller passes `input_len` readable bytes at `input`.
    let input = unsafe { slice::from_raw_parts(input, input_len) };
    let reply = calls::start_procedure(input, &mut Callback(execute_round)).into_boxed_slice();
    // SAFETY: the caller passes a writable length.
    unsafe { *reply_len = reply.len() };
    Box::into_raw(reply).cast()
}

/// Frees a reply from `start_procedure`: the tutorial's `free_mem`.
#[unsafe(no_mangle)]
pub extern "C" fn free_reply(reply: *mut u8, reply_len: usize) {
    // SAFETY: `reply` came from `start_procedure` with this length, freed once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(reply, reply_len)) });
}

/// Prints the i32 at `value`, as the tutorial does.
#[unsafe(no_mangle)]
pub extern "C" fn print_int(value: *const i32) {
    // SAFETY: the caller passes a readable i32.
    let bytes = unsafe { *value }.to_le_bytes();
    let _ = calls::print_int(bytes, &mut std::io::stdout().lock());
}

/// Does nothing: the cost of a call itself.
#[unsafe(no_mangle)]
pub extern "C" fn empty() -> u32 {
    0
}
