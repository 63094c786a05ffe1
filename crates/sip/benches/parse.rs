//! Parse + serialize throughput of typical SIP messages.
//!
//! Run: `cargo bench -p conclave-sip --bench parse`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use conclave_sip::parser::{Limits, parse_datagram};
use conclave_sip::sdp::SessionDescription;

const INVITE: &[u8] = include_bytes!("../testdata/invite_sdp.sip");
const OK: &[u8] = include_bytes!("../testdata/ok_sdp.sip");
const REGISTER: &[u8] = include_bytes!("../testdata/register.sip");

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, msg) in [
        ("invite_sdp", INVITE),
        ("200_ok_sdp", OK),
        ("register", REGISTER),
    ] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("parse", |b| {
            b.iter(|| parse_datagram(black_box(msg), &limits))
        });
        let parsed = parse_datagram(msg, &limits).expect("sample parses");
        g.bench_function("serialize", |b| b.iter(|| black_box(&parsed).to_bytes()));
        g.bench_function("parse+serialize", |b| {
            b.iter(|| {
                parse_datagram(black_box(msg), &limits)
                    .map(|m| m.to_bytes())
                    .unwrap_or_default()
            })
        });
        g.bench_function("parse+validate+typed", |b| {
            b.iter(|| {
                let m = parse_datagram(black_box(msg), &limits).expect("parses");
                let h = m.headers();
                black_box((h.top_via().ok(), h.cseq().ok(), h.from().ok(), h.to().ok()));
                if let conclave_sip::Message::Request(r) = &m {
                    black_box(r.validate(&["timer"]).is_ok());
                }
            })
        });
        g.finish();
    }
    let body = &INVITE[INVITE
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(0)
        + 4..];
    c.bench_function("sdp/parse+serialize", |b| {
        b.iter(|| {
            SessionDescription::parse(black_box(body))
                .map(|s| s.to_bytes())
                .unwrap_or_default()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
