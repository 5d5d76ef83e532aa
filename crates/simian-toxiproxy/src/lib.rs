//! An async client for the Toxiproxy HTTP API.
#![forbid(unsafe_code)]
