//! The integration-test harness: the library's stage plus test helpers.
#![allow(dead_code)]

pub use aidhub::stage::*;
