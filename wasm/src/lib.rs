//! The browser's face of `rust_lib`: the tutorial's three functions through
//! wasm-bindgen, over the same byte-level calls the WASI module exports
//! (`rust_lib::calls`), so the logic and its answers are the same.
//!
//! Every function returns the reply document of docs/ABI.md as a string,
//! `{"ok": ...}` or `{"error": {"kind", "message", "path"}}`, and throws
//! only if the module itself breaks (a panic traps and is logged first).
//! Arguments arrive as plain `JsValue`s and are checked here: a value that
//! wasm-bindgen converted itself could throw through the module instead,
//! and each such throw leaks one of wasm-bindgen's slots for JS values.

use js_sys::{Function, JsString, Reflect};
use rust_lib::calls;
use rust_lib::engine::{Execution, Executor, Outcome, Round};
use rust_lib::error::{Error, ErrorKind};
use std::sync::Once;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console)]
    fn log(line: &str);
    #[wasm_bindgen(js_namespace = console)]
    fn error(line: &str);
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

/// Runs a procedure from ProcedureInput JSON. `execute_round`, when given,
/// is the executor: it takes a round request (JSON) and returns the
/// outcomes (JSON), as docs/ABI.md's `execute_round` does. Without it,
/// the procedure is a dry run.
#[wasm_bindgen]
pub fn start_procedure(input: &JsValue, execute_round: &JsValue) -> String {
    install_panic_hook();
    let input = match utf8(input) {
        Ok(input) => input,
        Err(error) => return reply(Err(error)),
    };
    let reply = if execute_round.is_undefined() || execute_round.is_null() {
        calls::start_procedure(input.as_bytes(), &mut NoExecutor)
    } else if let Some(function) = execute_round.dyn_ref::<Function>() {
        calls::start_procedure(input.as_bytes(), &mut JsExecutor(function))
    } else {
        return reply(Err(Error::new(
            ErrorKind::InvalidType,
            format!(
                "the executor must be a function, got {}",
                type_of(execute_round)
            ),
        )));
    };
    String::from_utf8(reply).expect("reply documents are JSON, so UTF-8")
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

struct NoExecutor;

impl Executor for NoExecutor {
    fn execute(&mut self, _: &Round<'_>) -> Execution {
        Execution::NotGranted
    }
}

/// A JavaScript function as the executor: whatever it throws or returns
/// that is not outcomes fails the round, with the reason.
struct JsExecutor<'a>(&'a Function);

impl Executor for JsExecutor<'_> {
    fn execute(&mut self, round: &Round<'_>) -> Execution {
        let request = String::from_utf8(calls::round_request(round))
            .expect("round requests are JSON, so UTF-8");
        let hosts = round.hosts.len();
        match self.0.call1(&JsValue::NULL, &JsValue::from_str(&request)) {
            Ok(answer) => {
                let answer = answer
                    .as_string()
                    .map(String::into_bytes)
                    .ok_or_else(|| "it is not a string".to_owned());
                Execution::Ran(calls::outcomes_from_answer(answer, hosts))
            }
            Err(thrown) => {
                let reason = format!("the executor threw {}", describe(&thrown));
                Execution::Ran(vec![Outcome::Failed { reason }; hosts])
            }
        }
    }
}

/// What a thrown JavaScript value says: its `message`, else its text. The
/// message is read through `Reflect.get`, which catches: a getter that
/// throws must not throw through the module.
fn describe(thrown: &JsValue) -> String {
    Reflect::get(thrown, &JsValue::from_str("message"))
        .ok()
        .and_then(|message| message.as_string())
        .or_else(|| thrown.as_string())
        .unwrap_or_else(|| format!("a {} without a message", type_of(thrown)))
}

fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| error(&info.to_string())));
    });
}
