//! Fault injection, compiled only with the `faults` feature, into a module
//! built for tests: `print_string` given one of these commands misbehaves
//! instead of printing, so the host's defences can be tested through its
//! public API. Never part of the shipped module.

/// What `print_string` returns for a fault `command`, or `None` to print as usual.
pub fn inject(command: &[u8]) -> Option<u64> {
    match command {
        b"fault:panic" => panic!("injected panic: the host asked for it"),
        // A reply far outside linear memory.
        b"fault:reply-out-of-bounds" => Some(0xffff_0000_0000_0100),
        // A reply inside memory that is not a live buffer.
        b"fault:reply-not-live" => Some((8 << 32) | 16),
        _ => None,
    }
}
