//! The tutorial's way, as the benchmark's baseline: the same logic as the
//! WebAssembly module, compiled natively and called through ctypes, in the
//! module's shape (docs/ABI.md, version 3). The caller drives a procedure's
//! rounds: `start_procedure` and `resume_procedure` each return one step's
//! reply, a buffer the caller frees; `print_int` prints into the instance's
//! outbox, for the caller to read after the call. It trusts its caller
//! completely, as a native library must: there is no sandbox to keep.

use rust_lib::calls::{self, Procedures};
use std::slice;

/// What the module keeps in an instance: the procedure in progress, whether
/// the caller answers rounds, and the output of the last print.
pub struct Instance {
    procedures: Procedures,
    executor_granted: bool,
    output: Vec<u8>,
    outbox: Outbox,
}

/// Where the caller finds what the last `print_int` printed, at the address
/// `outbox` returns, as in the module.
#[repr(C)]
pub struct Outbox {
    output_ptr: *const u8,
    output_len: usize,
}

/// A new instance, for `instance_free` to free: every instance has its own
/// procedure, as every instance of the module does.
#[unsafe(no_mangle)]
pub extern "C" fn instance_new() -> *mut Instance {
    Box::into_raw(Box::new(Instance {
        procedures: Procedures::default(),
        executor_granted: false,
        output: Vec::new(),
        outbox: Outbox {
            output_ptr: std::ptr::null(),
            output_len: 0,
        },
    }))
}

/// Frees an instance from `instance_new`.
///
/// # Safety
/// `instance` came from `instance_new` and is freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn instance_free(instance: *mut Instance) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(instance) });
}

/// The caller will answer the rounds of procedures: without this call every
/// procedure is a dry run.
///
/// # Safety
/// `instance` is a live instance from `instance_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn grant_executor(instance: *mut Instance) {
    // SAFETY: the caller's promise.
    unsafe { (*instance).executor_granted = true };
}

/// The address of the instance's outbox, the same for the instance's life.
///
/// # Safety
/// `instance` is a live instance from `instance_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn outbox(instance: *const Instance) -> *const Outbox {
    // SAFETY: the caller's promise.
    unsafe { &raw const (*instance).outbox }
}

/// Starts a procedure from UTF-8 JSON and returns its first step's reply
/// (the output, an error, or a round), its length in `*reply_len`. Free it
/// with `free_reply`.
///
/// # Safety
/// `instance` is a live instance from `instance_new`, `input_len` bytes are
/// readable at `input`, and `reply_len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn start_procedure(
    instance: *mut Instance,
    input: *const u8,
    input_len: usize,
    reply_len: *mut usize,
) -> *mut u8 {
    // SAFETY: the caller's promise.
    let (instance, input) = unsafe { (&mut *instance, slice::from_raw_parts(input, input_len)) };
    let reply = instance.procedures.start(input, instance.executor_granted);
    // SAFETY: the caller's promise.
    unsafe { hand_over(reply, reply_len) }
}

/// Takes the caller's answer to the round now due (UTF-8 JSON) and returns
/// the next step's reply, as `start_procedure` does.
///
/// # Safety
/// As for `start_procedure`, with `answer_len` bytes readable at `answer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn resume_procedure(
    instance: *mut Instance,
    answer: *const u8,
    answer_len: usize,
    reply_len: *mut usize,
) -> *mut u8 {
    // SAFETY: the caller's promise.
    let (instance, answer) = unsafe { (&mut *instance, slice::from_raw_parts(answer, answer_len)) };
    let reply = instance.procedures.resume(answer);
    // SAFETY: the caller's promise.
    unsafe { hand_over(reply, reply_len) }
}

/// Gives the caller `reply`, its length in `*reply_len`.
///
/// # Safety
/// `reply_len` is writable.
unsafe fn hand_over(reply: Vec<u8>, reply_len: *mut usize) -> *mut u8 {
    let reply = reply.into_boxed_slice();
    // SAFETY: the caller's promise.
    unsafe { *reply_len = reply.len() };
    Box::into_raw(reply).cast()
}

/// Frees a reply: the tutorial's `free_mem`.
///
/// # Safety
/// `reply` came from a procedure's step with this length, and is freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_reply(reply: *mut u8, reply_len: usize) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(reply, reply_len)) });
}

/// Prints the i32 at `value` as the tutorial does, into the outbox.
///
/// # Safety
/// `instance` is a live instance from `instance_new`, and `value` a readable i32.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn print_int(instance: *mut Instance, value: *const i32) {
    // SAFETY: the caller's promise.
    let (instance, value) = unsafe { (&mut *instance, *value) };
    let output = &mut instance.output;
    output.clear();
    calls::print_int(value.to_le_bytes(), output).expect("a Vec takes every write");
    instance.outbox = Outbox {
        output_ptr: output.as_ptr(),
        output_len: output.len(),
    };
}

/// Does nothing: the cost of a call itself.
#[unsafe(no_mangle)]
pub extern "C" fn empty() -> u32 {
    0
}
