//! The simian command line.
#![forbid(unsafe_code)]
pub fn main() -> i32 { 0 }
