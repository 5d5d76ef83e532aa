//! Fault injectors: plan, inject, and an idempotent revert that can run in another process.
#![forbid(unsafe_code)]
