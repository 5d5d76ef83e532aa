//! The simian experiment language: the model, parsing with positions,
//! validation that reports every problem at once, and the JSON Schema.
#![forbid(unsafe_code)]

pub mod assertion;
pub mod diag;
mod load;
pub mod model;
pub mod tree;
mod validate;
mod vars;

pub use assertion::{Assertion, Bound, Check, Op};
pub use diag::Diagnostic;
pub use load::{load, Env, FaultSite, Loaded};
pub use model::*;
pub use validate::{is_http_url, max_duration, method_time};
pub use vars::expand;

/// The JSON Schema of the experiment format, for editors.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Experiment)).expect("schema serializes")
}
