//! The tutorial's Rust logic, "Calling Rust from Python", made to run as a
//! sandboxed WebAssembly module.
//!
//! Everything here but `abi` is plain safe Rust, tested natively:
//! [`model`] and [`validate`] define and check the procedure's input,
//! [`engine`] holds a procedure between the rounds its host runs, [`calls`]
//! is the byte-level face every adapter shares. `abi` (built for
//! wasm32-wasip1 only) holds the exports, the outbox and every raw pointer.

#![deny(unsafe_code)]

pub mod allocations;
pub mod calls;
mod compact;
pub mod engine;
pub mod error;
pub mod message;
pub mod model;
pub mod validate;

/// The module's own version (Cargo.toml's), which every adapter reports:
/// the `crate_version` export, and the browser build's page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod abi;
#[cfg(feature = "faults")]
pub mod faults;
#[cfg(feature = "schema")]
pub mod schema;
