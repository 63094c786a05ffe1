#![no_main]
//! Stream framer: arbitrary bytes in arbitrary chunks; never panics, never loops, and
//! consumes its input.

use conclave_sip::parser::{Limits, StreamFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut f = StreamFramer::new(Limits { max_header_bytes: 4096, ..Limits::default() });
    let mut produced = 0usize;
    for c in rest.chunks(chunk) {
        f.push(c);
        while let Some(r) = f.next_message() {
            produced += 1;
            assert!(produced <= rest.len() + 1, "framer produced more units than bytes");
            if r.is_err() {
                break;
            }
        }
    }
});
