//! Fault injection, compiled only with the `faults` feature into a module
//! built for tests: `print_string` or `start_procedure` given one of these
//! commands (`fault:panic`), or `start_procedure` given an input whose action
//! names one (`fault-panic`), misbehaves instead, so the host's defences can
//! be tested through its public API. Never part of the shipped module.

use std::hint::black_box;
use std::io::Write;

/// A fault that needs the ABI module to carry it out.
pub enum Fault {
    /// Return this packed value as it is.
    Return(u64),
    /// Return these bytes as a live reply.
    Reply(Vec<u8>),
    /// Ask the host for this round, once or at every step after.
    Round { request: Vec<u8>, forever: bool },
    /// Read far outside linear memory.
    ReadOutOfBounds,
}

/// Carries out the fault `input` names, or says what the ABI module must
/// do; `None` when it names no fault.
pub fn inject(input: &[u8], stdout: &mut dyn Write) -> Option<Fault> {
    let from_action = serde_json::from_slice::<serde_json::Value>(input)
        .ok()
        .and_then(|input| {
            input["action"]
                .as_str()?
                .strip_prefix("fault-")
                .map(str::to_owned)
        })
        .map(|name| format!("fault:{name}").into_bytes());
    let command = from_action.as_deref().unwrap_or(input);
    let fault = match command {
        b"fault:panic" => panic!("injected panic: the host asked for it"),
        b"fault:loop" => loop {
            black_box(());
        },
        b"fault:grow" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(black_box(vec![1u8; 1 << 20]));
            }
        }
        b"fault:stack-overflow" => Fault::Return(recurse(black_box(1))),
        b"fault:exit" => std::process::exit(7),
        b"fault:huge-output" => {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..4 {
                if stdout.write_all(&chunk).is_err() {
                    break;
                }
            }
            Fault::Return(0)
        }
        b"fault:huge-output-then-error" => {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..4 {
                let _ = stdout.write_all(&chunk);
            }
            Fault::Reply(
                br#"{"error":{"kind":"invalid_value","message":"nothing to see","path":[]}}"#
                    .to_vec(),
            )
        }
        b"fault:endless-output" => loop {
            let _ = stdout.write_all(b"more\n");
        },
        b"fault:reply-out-of-bounds" => Fault::Return(0xffff_0000_0000_0100),
        b"fault:reply-not-live" => Fault::Return((8 << 32) | 16),
        // 16 bytes whose last byte is the last of linear memory, and the same
        // one byte further on: in bounds (but no live buffer), and not.
        #[cfg(target_arch = "wasm32")]
        b"fault:reply-at-memory-end" => Fault::Return(((memory_end() - 16) << 32) | 16),
        #[cfg(target_arch = "wasm32")]
        b"fault:reply-straddles-memory-end" => Fault::Return(((memory_end() - 15) << 32) | 16),
        // From start_procedure_into: "1 MiB written into your buffer".
        b"fault:reply-in-place-too-long" => Fault::Return(1 << 20),
        b"fault:reply-2mib" => Fault::Reply(vec![b' '; 2 << 20]),
        b"fault:reply-garbage" => Fault::Reply(b"not json".to_vec()),
        b"fault:reply-ok-not-output" => Fault::Reply(br#"{"ok":1}"#.to_vec()),
        b"fault:reply-duplicate-ok" => Fault::Reply(br#"{"ok":{"a":1},"ok":{"b":2}}"#.to_vec()),
        // Rounds for an input with this action, timeout 1 and host "a".
        b"fault:round-garbage" => Fault::Round {
            request: b"not json".to_vec(),
            forever: false,
        },
        b"fault:round-bad-host" => Fault::Round {
            request: br#"{"action":"fault-round-bad-host","timeout":1,"attempt":1,"hosts":["-oProxyCommand=x"]}"#
                .to_vec(),
            forever: false,
        },
        b"fault:round-no-host" => Fault::Round {
            request: br#"{"action":"fault-round-no-host","timeout":1,"attempt":1,"hosts":[]}"#
                .to_vec(),
            forever: false,
        },
        b"fault:round-other-host" => Fault::Round {
            request: br#"{"action":"fault-round-other-host","timeout":1,"attempt":1,"hosts":["elsewhere"]}"#
                .to_vec(),
            forever: false,
        },
        b"fault:round-other-action" => Fault::Round {
            request: br#"{"action":"reboot","timeout":1,"attempt":1,"hosts":["a"]}"#.to_vec(),
            forever: false,
        },
        b"fault:round-forever" => Fault::Round {
            request: br#"{"action":"fault-round-forever","timeout":1,"attempt":1,"hosts":["a"]}"#
                .to_vec(),
            forever: true,
        },
        b"fault:read-out-of-bounds" => Fault::ReadOutOfBounds,
        _ => return None,
    };
    Some(fault)
}

/// The size of linear memory in bytes: the first address past its end.
#[cfg(target_arch = "wasm32")]
fn memory_end() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65536
}

/// Recurses until the stack runs out: the depth is never reached.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if frame[0] == u64::MAX {
        return 0;
    }
    recurse(frame[0] + 1) + frame[63]
}
