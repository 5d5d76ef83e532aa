//! HTTP(S) to the team's tools: the outage check's URL ([`check_url`]), and webhook
//! notifications of a run, so a game day is visible where the team talks:
//! one POST when it starts, when it aborts, and with its verdict. Bodies are a Slack
//! incoming-webhook message or the run's facts as generic JSON.
//!
//! A notification never changes a run: a webhook that fails or hangs costs a warning
//! and at most [`TIMEOUT`] × [`ATTEMPTS`], never the verdict.
#![forbid(unsafe_code)]

mod body;
mod send;

pub use body::{body, Notice};
pub use send::{check_url, Notifier, ATTEMPTS, TIMEOUT};
