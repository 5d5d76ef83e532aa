//! The simian experiment language: the model, parsing with positions,
//! validation that reports every problem at once, and the JSON Schema.
#![forbid(unsafe_code)]

pub mod model;

pub use model::*;
