//! The fault proxy's HTTP/1.1 mode on any bytes from a client: request heads, bodies
//! (chunked or sized), pipelined requests, and the proxy's rewriting of each request for
//! its upstream. No panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    simian_proxy::fuzzing::http1(data);
});
