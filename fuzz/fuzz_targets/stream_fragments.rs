#![no_main]
//! The fragment reader (what tools and tests read of a served segment): never panics, never
//! returns more packet bytes than it was given.
use conclave_media::streaming::fmp4::read_fragment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = read_fragment(data) {
        assert!(f.samples.iter().map(|(_, p)| p.len()).sum::<usize>() <= data.len());
    }
});
