//! The experiment engine: phases, continuous hypothesis, stop conditions, write-ahead journal, recover.
#![forbid(unsafe_code)]
