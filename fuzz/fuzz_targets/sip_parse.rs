#![no_main]
//! Datagram parser: never panics; whatever parses serializes to something that parses.

use conclave_sip::message::error_response;
use conclave_sip::parser::{Limits, parse_datagram};
use conclave_sip::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match parse_datagram(data, &limits) {
        Ok(m) => {
            let h = m.headers();
            let _ = h.top_via();
            let _ = h.vias();
            let _ = h.cseq();
            let _ = h.from();
            let _ = h.to();
            let _ = h.contacts();
            let _ = h.routes(&conclave_sip::HeaderName::RecordRoute);
            let _ = h.session_expires();
            let _ = h.min_se();
            let _ = h.expires();
            let _ = h.authorization(&conclave_sip::HeaderName::Authorization);
            if let Message::Request(r) = &m {
                if let Err(e) = r.validate(&["timer"]) {
                    let _ = error_response(data, &e);
                }
                let _ = r.response(200, "OK", Some("t"));
            }
            let bytes = m.to_bytes();
            let again = parse_datagram(&bytes, &Limits { max_message_size: usize::MAX, max_header_bytes: usize::MAX, max_headers: usize::MAX, max_body_size: usize::MAX });
            assert!(again.is_ok(), "serialized message does not parse: {:?}", again);
        }
        Err(e) => {
            let _ = e.status();
            let _ = error_response(data, &e);
        }
    }
});
