//! RTCP (RFC 3550): parsing and building of compound packets (SR, RR, SDES,
//! BYE; other types are passed through as [`RtcpPacket::Other`]), and the
//! per-source reception statistics that feed receiver reports (loss,
//! interarrival jitter) and round-trip time from LSR/DLSR.

use std::time::Duration;
use thiserror::Error;

/// Errors returned by the RTCP parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// A header or a declared length does not fit the datagram.
    #[error("packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("bad RTCP version")]
    BadVersion,
    /// A packet body is inconsistent with its header (report count, item lengths).
    #[error("malformed packet")]
    Malformed,
}

/// Packet type numbers.
pub mod pt {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
}

/// One report block of an SR or RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp.
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_ts: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's octet count.
    pub octet_count: u32,
}

/// One SDES chunk: a source and its items (type, text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk<'a> {
    /// Source.
    pub ssrc: u32,
    /// Items: (type, value). Type 1 is CNAME.
    pub items: Vec<(u8, &'a [u8])>,
}

/// One parsed RTCP packet of a compound datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// Sender.
        ssrc: u32,
        /// Sender info.
        info: SenderInfo,
        /// Report blocks.
        reports: Vec<ReportBlock>,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter.
        ssrc: u32,
        /// Report blocks.
        reports: Vec<ReportBlock>,
    },
    /// Source description.
    Sdes(Vec<SdesChunk<'a>>),
    /// Goodbye.
    Bye {
        /// Sources leaving.
        sources: Vec<u32>,
        /// Optional reason.
        reason: Option<&'a [u8]>,
    },
    /// Any other packet type (APP, RTPFB, PSFB, XR ...): type, count field, body.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count / format field.
        count: u8,
        /// Body after the 4-byte header, without padding.
        body: &'a [u8],
    },
}

fn be32(d: &[u8], o: usize) -> Result<u32, RtcpError> {
    d.get(o..o + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(RtcpError::Truncated)
}

fn parse_block(d: &[u8], o: usize) -> Result<ReportBlock, RtcpError> {
    let w = be32(d, o + 4)?;
    let lost24 = w & 0x00ff_ffff;
    // sign-extend 24 bits
    let cumulative_lost = ((lost24 << 8) as i32) >> 8;
    Ok(ReportBlock {
        ssrc: be32(d, o)?,
        fraction_lost: (w >> 24) as u8,
        cumulative_lost,
        highest_seq: be32(d, o + 8)?,
        jitter: be32(d, o + 12)?,
        last_sr: be32(d, o + 16)?,
        delay_since_last_sr: be32(d, o + 20)?,
    })
}

/// Iterator over the packets of a compound RTCP datagram.
/// Yields an error once and then stops on malformed input.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Parses a compound RTCP datagram lazily.
pub fn parse_compound(data: &[u8]) -> RtcpIter<'_> {
    RtcpIter {
        data,
        pos: 0,
        failed: false,
    }
}

/// Parses a compound RTCP datagram into a vector, failing on the first malformed packet.
pub fn parse_all(data: &[u8]) -> Result<Vec<RtcpPacket<'_>>, RtcpError> {
    if data.is_empty() {
        return Err(RtcpError::Truncated);
    }
    parse_compound(data).collect()
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let r = self.next_inner();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> RtcpIter<'a> {
    fn next_inner(&mut self) -> Result<RtcpPacket<'a>, RtcpError> {
        let d = &self.data[self.pos..];
        if d.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        if d[0] >> 6 != 2 {
            return Err(RtcpError::BadVersion);
        }
        let padding = d[0] & 0x20 != 0;
        let count = d[0] & 0x1f;
        let ptype = d[1];
        let len = (u16::from_be_bytes([d[2], d[3]]) as usize + 1) * 4;
        if d.len() < len {
            return Err(RtcpError::Truncated);
        }
        let mut body = &d[4..len];
        if padding {
            let p = *body.last().ok_or(RtcpError::Malformed)? as usize;
            if p == 0 || p > body.len() {
                return Err(RtcpError::Malformed);
            }
            body = &body[..body.len() - p];
        }
        self.pos += len;
        match ptype {
            pt::SR => {
                if body.len() < 24 + 24 * count as usize {
                    return Err(RtcpError::Malformed);
                }
                let ssrc = be32(body, 0)?;
                let info = SenderInfo {
                    ntp: ((be32(body, 4)? as u64) << 32) | be32(body, 8)? as u64,
                    rtp_ts: be32(body, 12)?,
                    packet_count: be32(body, 16)?,
                    octet_count: be32(body, 20)?,
                };
                let reports = (0..count as usize)
                    .map(|i| parse_block(body, 24 + 24 * i))
                    .collect::<Result<_, _>>()?;
                Ok(RtcpPacket::SenderReport {
                    ssrc,
                    info,
                    reports,
                })
            }
            pt::RR => {
                if body.len() < 4 + 24 * count as usize {
                    return Err(RtcpError::Malformed);
                }
                let ssrc = be32(body, 0)?;
                let reports = (0..count as usize)
                    .map(|i| parse_block(body, 4 + 24 * i))
                    .collect::<Result<_, _>>()?;
                Ok(RtcpPacket::ReceiverReport { ssrc, reports })
            }
            pt::SDES => {
                let mut chunks = Vec::with_capacity(count as usize);
                let mut o = 0;
                for _ in 0..count {
                    let ssrc = be32(body, o)?;
                    o += 4;
                    let mut items = Vec::new();
                    loop {
                        let t = *body.get(o).ok_or(RtcpError::Malformed)?;
                        if t == 0 {
                            // end of list: skip to the next 32-bit boundary
                            o = (o + 4) & !3;
                            break;
                        }
                        let l = *body.get(o + 1).ok_or(RtcpError::Malformed)? as usize;
                        let v = body.get(o + 2..o + 2 + l).ok_or(RtcpError::Malformed)?;
                        items.push((t, v));
                        o += 2 + l;
                    }
                    chunks.push(SdesChunk { ssrc, items });
                }
                Ok(RtcpPacket::Sdes(chunks))
            }
            pt::BYE => {
                let n = count as usize;
                if body.len() < 4 * n {
                    return Err(RtcpError::Malformed);
                }
                let sources = (0..n)
                    .map(|i| be32(body, 4 * i))
                    .collect::<Result<_, _>>()?;
                let reason = match body.get(4 * n) {
                    Some(&l) => Some(
                        body.get(4 * n + 1..4 * n + 1 + l as usize)
                            .ok_or(RtcpError::Malformed)?,
                    ),
                    None => None,
                };
                Ok(RtcpPacket::Bye { sources, reason })
            }
            _ => Ok(RtcpPacket::Other {
                packet_type: ptype,
                count,
                body,
            }),
        }
    }
}

fn header(out: &mut Vec<u8>, count: u8, ptype: u8) -> usize {
    let start = out.len();
    out.push(0x80 | (count & 0x1f));
    out.push(ptype);
    out.extend_from_slice(&[0, 0]);
    start
}

fn finish(out: &mut Vec<u8>, start: usize) {
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

fn write_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
    out.extend_from_slice(&(((b.fraction_lost as u32) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.last_sr.to_be_bytes());
    out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
}

/// Appends a sender report (at most 31 report blocks are written).
pub fn write_sr(out: &mut Vec<u8>, ssrc: u32, info: &SenderInfo, reports: &[ReportBlock]) {
    let reports = &reports[..reports.len().min(31)];
    let s = header(out, reports.len() as u8, pt::SR);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_ts.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    for b in reports {
        write_block(out, b);
    }
    finish(out, s);
}

/// Appends a receiver report (at most 31 report blocks are written).
pub fn write_rr(out: &mut Vec<u8>, ssrc: u32, reports: &[ReportBlock]) {
    let reports = &reports[..reports.len().min(31)];
    let s = header(out, reports.len() as u8, pt::RR);
    out.extend_from_slice(&ssrc.to_be_bytes());
    for b in reports {
        write_block(out, b);
    }
    finish(out, s);
}

/// Appends an SDES packet with one chunk carrying a CNAME (truncated to 255 bytes).
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let s = header(out, 1, pt::SDES);
    out.extend_from_slice(&ssrc.to_be_bytes());
    let c = &cname.as_bytes()[..cname.len().min(255)];
    out.push(1);
    out.push(c.len() as u8);
    out.extend_from_slice(c);
    // item list terminator, then pad to 32 bits (at least one zero byte)
    out.push(0);
    finish(out, s);
}

/// Appends a BYE packet (at most 31 sources).
pub fn write_bye(out: &mut Vec<u8>, sources: &[u32], reason: Option<&str>) {
    let sources = &sources[..sources.len().min(31)];
    let s = header(out, sources.len() as u8, pt::BYE);
    for src in sources {
        out.extend_from_slice(&src.to_be_bytes());
    }
    if let Some(r) = reason {
        let r = &r.as_bytes()[..r.len().min(255)];
        out.push(r.len() as u8);
        out.extend_from_slice(r);
    }
    finish(out, s);
}

/// Converts a time (since the Unix epoch) to a 64-bit NTP timestamp.
pub fn ntp_from_unix(t: Duration) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let secs = t.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = ((t.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp (the LSR / "compact NTP" form).
pub fn ntp_compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Round-trip time from a report block about our stream, given the compact NTP time
/// at which the block arrived (RFC 3550 6.4.1). `None` when the peer has not seen an SR.
pub fn round_trip_time(block: &ReportBlock, arrival_compact_ntp: u32) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = arrival_compact_ntp
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    if rtt > 0x8000_0000 {
        // negative: clocks inconsistent
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos((rtt as u64 * 1_000_000_000) >> 16))
}

/// Reception statistics for one remote source (RFC 3550 appendix A.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct ReceptionStats {
    initialized: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in timestamp units, scaled by 16 (RFC 3550 A.8).
    jitter_q4: u32,
    last_transit: Option<i64>,
    last_sr: u32,
    last_sr_arrival: Option<Duration>,
}

impl ReceptionStats {
    /// Records an accepted packet: sequence number, RTP timestamp, arrival time and clock rate.
    pub fn on_packet(&mut self, seq: u16, ts: u32, arrival: Duration, clock_rate: u32) {
        if !self.initialized {
            self.initialized = true;
            self.max_seq = seq;
            self.base_seq = seq as u32;
            self.cycles = 0;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < 0x8000 && delta != 0 {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            }
        }
        self.received += 1;
        let arrival_ts = crate::dsp::duration_to_units(arrival, clock_rate) as i64;
        let transit = arrival_ts.wrapping_sub(ts as i64);
        if let Some(last) = self.last_transit {
            let mut d = transit.wrapping_sub(last).unsigned_abs();
            // a timestamp jump must not explode the estimate
            if d > clock_rate as u64 {
                d = 0;
            }
            let d = d as i64;
            let j = self.jitter_q4 as i64;
            self.jitter_q4 = (j + d - ((j + 8) >> 4)).max(0) as u32;
        }
        self.last_transit = Some(transit);
    }

    /// Records an SR received from the source.
    pub fn on_sender_report(&mut self, ntp: u64, arrival: Duration) {
        self.last_sr = ntp_compact(ntp);
        self.last_sr_arrival = Some(arrival);
    }

    /// Extended highest sequence number.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    /// Packets expected so far.
    pub fn expected(&self) -> u64 {
        if !self.initialized {
            return 0;
        }
        (self.extended_max() as u64).wrapping_sub(self.base_seq as u64) + 1
    }

    /// Packets received (including duplicates).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative packets lost (may be negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Builds a report block for this source and starts a new reporting interval.
    pub fn report_block(&mut self, ssrc: u32, now: Duration) -> ReportBlock {
        let expected = self.expected();
        let exp_int = expected.saturating_sub(self.expected_prior);
        let rec_int = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_int = exp_int as i64 - rec_int as i64;
        let fraction_lost = if exp_int == 0 || lost_int <= 0 {
            0
        } else {
            ((lost_int << 8) / exp_int as i64).min(255) as u8
        };
        let dlsr = match self.last_sr_arrival {
            Some(t) => {
                let d = now.saturating_sub(t);
                ((d.as_micros() * 65536) / 1_000_000).min(u32::MAX as u128) as u32
            }
            None => 0,
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_max(),
            jitter: self.jitter(),
            last_sr: self.last_sr,
            delay_since_last_sr: dlsr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_roundtrip() {
        let mut out = Vec::new();
        let info = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_ts: 99,
            packet_count: 5,
            octet_count: 800,
        };
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 70000,
            jitter: 12,
            last_sr: 0x0304_0506,
            delay_since_last_sr: 65536,
        };
        write_sr(&mut out, 1, &info, &[block]);
        write_rr(&mut out, 2, &[block, block]);
        write_sdes_cname(&mut out, 1, "conclave@example");
        write_bye(&mut out, &[1, 2], Some("bye"));
        assert_eq!(out.len() % 4, 0);
        let pkts = parse_all(&out).unwrap();
        assert_eq!(pkts.len(), 4);
        assert_eq!(
            pkts[0],
            RtcpPacket::SenderReport {
                ssrc: 1,
                info,
                reports: vec![block]
            }
        );
        assert_eq!(
            pkts[1],
            RtcpPacket::ReceiverReport {
                ssrc: 2,
                reports: vec![block, block]
            }
        );
        match &pkts[2] {
            RtcpPacket::Sdes(c) => {
                assert_eq!(c[0].ssrc, 1);
                assert_eq!(c[0].items, vec![(1u8, &b"conclave@example"[..])]);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(
            pkts[3],
            RtcpPacket::Bye {
                sources: vec![1, 2],
                reason: Some(b"bye")
            }
        );
        // every prefix and every corruption is handled without panic
        for n in 0..out.len() {
            let _ = parse_all(&out[..n]);
            let mut c = out.clone();
            c[n] ^= 0xff;
            let _ = parse_all(&c);
        }
    }

    #[test]
    fn garbage() {
        assert_eq!(parse_all(&[]), Err(RtcpError::Truncated));
        assert_eq!(parse_all(&[0x80, 200, 0]), Err(RtcpError::Truncated));
        assert_eq!(parse_all(&[0x00, 200, 0, 0]), Err(RtcpError::BadVersion));
        // SR claiming 31 blocks in 1 word
        assert_eq!(
            parse_all(&[0x9f, 200, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Malformed)
        );
        // length field larger than datagram
        assert_eq!(
            parse_all(&[0x80, 201, 0xff, 0xff]),
            Err(RtcpError::Truncated)
        );
        // unknown type is passed through
        let p = parse_all(&[0x81, 205, 0, 1, 1, 2, 3, 4]).unwrap();
        assert!(matches!(
            p[0],
            RtcpPacket::Other {
                packet_type: 205,
                ..
            }
        ));
    }

    #[test]
    fn stats_loss_and_jitter() {
        let mut s = ReceptionStats::default();
        // 100 packets, every 10th lost, constant 20 ms spacing: zero jitter
        let mut n = 0;
        for i in 0u32..100 {
            if i % 10 == 5 {
                continue;
            }
            let seq = (65500u32 + i) as u16; // wraps
            s.on_packet(seq, i * 160, Duration::from_millis(20 * i as u64), 8000);
            n += 1;
        }
        assert_eq!(s.received(), n);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.lost(), 10);
        assert_eq!(s.jitter(), 0);
        let b = s.report_block(1, Duration::from_secs(2));
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.fraction_lost, (10 * 256 / 100) as u8);
        assert_eq!(b.highest_seq, 65536 + ((65500u32 + 99) & 0xffff));
        // alternating 0 / 10 ms extra delay gives a jitter around 80 units at 8 kHz
        let mut s = ReceptionStats::default();
        for i in 0u32..500 {
            let extra = if i % 2 == 0 { 0 } else { 10 };
            s.on_packet(
                i as u16,
                i * 160,
                Duration::from_millis(20 * i as u64 + extra),
                8000,
            );
        }
        assert!((70..=90).contains(&s.jitter()), "{}", s.jitter());
    }

    #[test]
    fn rtt_from_lsr_dlsr() {
        let sent = Duration::from_secs(1_700_000_000);
        let ntp_sent = ntp_from_unix(sent);
        // the peer holds our SR for 250 ms, network adds 2*40 ms
        let block = ReportBlock {
            last_sr: ntp_compact(ntp_sent),
            delay_since_last_sr: 65536 / 4,
            ..Default::default()
        };
        let arrival = ntp_compact(ntp_from_unix(sent + Duration::from_millis(330)));
        let rtt = round_trip_time(&block, arrival).unwrap();
        assert!((rtt.as_secs_f64() - 0.080).abs() < 0.001, "{rtt:?}");
        assert_eq!(round_trip_time(&ReportBlock::default(), arrival), None);
        // DLSR via ReceptionStats
        let mut s = ReceptionStats::default();
        s.on_sender_report(ntp_sent, Duration::from_secs(10));
        let b = s.report_block(9, Duration::from_millis(10_500));
        assert_eq!(b.delay_since_last_sr, 65536 / 2);
        assert_eq!(b.last_sr, ntp_compact(ntp_sent));
    }
}
