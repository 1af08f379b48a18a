//! What wshub's integration tests and the chat-room tool (`tools/chat-room`)
//! share about processes: what `/proc` says of one (CPU time, memory, page
//! faults), and raising the open-file limit that many sockets need; and the
//! timing harness of wshub's micro-benchmarks (`bench`).
//!
//! Linux only, std only. Readers give `None` when `/proc` cannot answer
//! (the process is gone): a test unwraps, a benchmark reports what it can.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod bench;
mod nofile;
pub mod proc;

pub use nofile::raise_nofile;
