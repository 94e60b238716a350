//! The browser's face of `rust_lib`: the tutorial's functions through
//! wasm-bindgen, over the same byte-level calls the WASI module exports
//! (`rust_lib::calls`), so the logic and its answers are the same.
//!
//! A procedure goes in steps JavaScript drives, as docs/ABI.md's host does:
//! `start_procedure` answers with the output, an error or the first round;
//! JavaScript runs the round however it likes (a Promise, a timer) with no
//! WebAssembly on the stack, and hands its answer to `resume_procedure` for
//! the next step. The procedure waits between steps in this module.
//!
//! Every function returns the reply document of docs/ABI.md as a string,
//! `{"ok": ...}`, `{"error": {"kind", "message", "path"}}` or, from a
//! procedure's step, `{"round": ...}`, and throws only if the module itself
//! breaks (a panic traps and is logged first). Arguments arrive as plain
//! `JsValue`s and are checked here: a value that wasm-bindgen converted
//! itself could throw through the module instead, and each such throw leaks
//! one of wasm-bindgen's slots for JS values. A call with a wrong argument
//! runs nothing, as a bad pointer does in docs/ABI.md: the procedure in
//! progress, if any, still waits.

use js_sys::JsString;
use rust_lib::calls::{self, Procedures};
use rust_lib::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::sync::Once;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The procedure between the steps JavaScript drives: at most one.
    static PROCEDURES: RefCell<Procedures> = RefCell::default();
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console)]
    fn log(line: &str);
    #[wasm_bindgen(js_namespace = console)]
    fn error(line: &str);
}

/// The Rust core's version, the one py_host's `crate_version` reads, for
/// the page to show.
#[wasm_bindgen]
pub fn version() -> String {
    rust_lib::VERSION.to_owned()
}

/// Prints `text` and a newline as the tutorial does, to the console; the
/// reply's `ok` is the printed line, for the page to show.
#[wasm_bindgen]
pub fn print_string(text: &JsValue) -> String {
    install_panic_hook();
    reply(utf8(text).and_then(|text| print(|out| calls::print_string(text.as_bytes(), out))))
}

/// Prints `Python gave us number <value>` as the tutorial does. `value` must
/// be an integer in the i32 range: JavaScript would otherwise wrap or
/// truncate it silently.
#[wasm_bindgen]
pub fn print_int(value: &JsValue) -> String {
    install_panic_hook();
    let Some(number) = value.as_f64() else {
        return reply(Err(Error::new(
            ErrorKind::InvalidType,
            format!("expected a number, got {}", type_of(value)),
        )));
    };
    if number.fract() != 0.0 || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&number) {
        return reply(Err(Error::new(
            ErrorKind::OutOfRange,
            format!("{number} is not an integer in the i32 range"),
        )));
    }
    // The checks above make the conversion exact.
    let le_bytes = (number as i32).to_le_bytes();
    reply(print(|out| calls::print_int(le_bytes, out)))
}

/// `print_int` for a number as a person typed it: text of an optional
/// leading minus and digits, nothing else (no plus, spaces, hex, fraction
/// or exponent), the rule of the page's number fields. Its errors quote the
/// text as typed, which a JavaScript number would have rounded past 2^53.
#[wasm_bindgen]
pub fn print_int_typed(text: &JsValue) -> String {
    install_panic_hook();
    reply(utf8(text).and_then(|text| {
        let number = whole_i32(&text)?;
        print(|out| calls::print_int(number.to_le_bytes(), out))
    }))
}

fn whole_i32(text: &str) -> Result<i32, Error> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Error::new(
            ErrorKind::InvalidType,
            format!("{text:?} is not a whole number: digits only, after an optional minus"),
        ));
    }
    // Only digits remain, so the sole failure is the range.
    text.parse().map_err(|_| {
        Error::new(
            ErrorKind::OutOfRange,
            format!("{text} is not an integer in the i32 range"),
        )
    })
}

/// Starts a procedure from ProcedureInput JSON, abandoning any in progress,
/// and returns its first step's reply. `executor_granted` says whether
/// JavaScript will run the rounds: without an executor the procedure is a
/// dry run, over in this one step.
#[wasm_bindgen]
pub fn start_procedure(input: &JsValue, executor_granted: &JsValue) -> String {
    install_panic_hook();
    match (utf8(input), boolean(executor_granted)) {
        (Ok(input), Ok(granted)) => step(|procedures| procedures.start(input.as_bytes(), granted)),
        (Err(error), _) | (_, Err(error)) => reply(Err(error)),
    }
}

/// Takes JavaScript's answer to the round now due (JSON: one outcome per
/// host, or `null` when it cannot answer) and returns the next step's reply.
#[wasm_bindgen]
pub fn resume_procedure(answer: &JsValue) -> String {
    install_panic_hook();
    match utf8(answer) {
        Ok(answer) => step(|procedures| procedures.resume(answer.as_bytes())),
        Err(error) => reply(Err(error)),
    }
}

/// Abandons the procedure in progress; false when there was none.
#[wasm_bindgen]
pub fn cancel_procedure() -> bool {
    install_panic_hook();
    PROCEDURES.with_borrow_mut(Procedures::cancel)
}

/// Takes one step of the procedure this module holds, as a reply string.
fn step(take: impl FnOnce(&mut Procedures) -> Vec<u8>) -> String {
    let document = PROCEDURES.with_borrow_mut(take);
    String::from_utf8(document).expect("reply documents are JSON, so UTF-8")
}

/// `text` in UTF-8: it must be a string, and one without lone surrogates,
/// which UTF-8 cannot carry (they are refused rather than replaced unseen).
fn utf8(text: &JsValue) -> Result<String, Error> {
    let Some(text) = text.dyn_ref::<JsString>() else {
        return Err(Error::new(
            ErrorKind::InvalidType,
            format!("expected a string, got {}", type_of(text)),
        ));
    };
    if text.is_valid_utf16() {
        Ok(String::from(text))
    } else {
        Err(Error::new(
            ErrorKind::InvalidUtf8,
            "the text holds a lone surrogate, which UTF-8 cannot encode",
        ))
    }
}

/// `value` as a bool: it must be `true` or `false`, not merely truthy, so
/// that a mistaken argument is refused rather than read as a grant.
fn boolean(value: &JsValue) -> Result<bool, Error> {
    value.as_bool().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidType,
            format!("expected a boolean, got {}", type_of(value)),
        )
    })
}

fn type_of(value: &JsValue) -> String {
    value.js_typeof().as_string().unwrap_or_default()
}

/// Runs `print` into a buffer and logs what it printed: the printed line
/// (without its newline), or the error.
fn print(print: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>) -> Result<String, Error> {
    let mut out = Vec::new();
    print(&mut out)?;
    let line = String::from_utf8(out).expect("calls print UTF-8");
    let line = line.strip_suffix('\n').unwrap_or(&line).to_owned();
    log(&line);
    Ok(line)
}

fn reply(result: Result<String, Error>) -> String {
    String::from_utf8(calls::reply(&result)).expect("reply documents are JSON, so UTF-8")
}

fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| error(&info.to_string())));
    });
}
