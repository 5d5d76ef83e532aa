//! Probes: open-loop HTTP load, TCP connects, commands; each records observations for the hypothesis.
#![forbid(unsafe_code)]
