//! Reporters: console summary, JSON and JUnit XML from a finished run.
#![forbid(unsafe_code)]
