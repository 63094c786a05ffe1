#![no_main]
//! SRTP/SRTCP unprotect of arbitrary datagrams for every suite: errors, never panics.
use conclave_media::srtp::{SrtpKey, SrtpSession, SrtpSuite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for suite in SrtpSuite::ALL {
        let m = vec![7u8; suite.key_len() + suite.salt_len()];
        let k = SrtpKey::from_material(suite, &m).unwrap();
        let mut s = SrtpSession::new(&k, &k).unwrap();
        let _ = s.unprotect_rtp(data);
        let _ = s.unprotect_rtcp(data);
        // what we protect ourselves always comes back
        if let Ok(p) = s.protect_rtp(data) {
            assert_eq!(s.unprotect_rtp(&p).as_deref().ok(), Some(data));
        }
    }
});
