//! Thalovant SDK for Rust.
#![forbid(unsafe_code)]

pub mod protocol;
