//! Ogg encapsulation of Opus (RFC 7845): a writer that turns encoded 20 ms packets into
//! pages (one page a second, so a cut-off file loses at most the page being filled), and a
//! reader of pages back into packets (tests, durations, replays; fuzzed: it reads files).

/// Samples per second of every Opus granule position, whatever the input rate.
pub const GRANULE_RATE: u64 = 48_000;

const CONTINUED: u8 = 0x01;
const FIRST: u8 = 0x02;
const LAST: u8 = 0x04;

/// Packets gathered before a page is closed (one second of 20 ms packets).
const PACKETS_PER_PAGE: usize = 50;

fn crc_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *entry = r;
        }
        table
    })
}

/// Ogg's CRC-32 (polynomial 0x04c11db7, not reflected, initial value 0).
fn crc(bytes: &[u8]) -> u32 {
    let table = crc_table();
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// Writes one logical Opus stream as Ogg pages.
#[derive(Debug)]
pub struct OggOpusWriter {
    serial: u32,
    sequence: u32,
    granule: u64,
    segments: Vec<u8>,
    body: Vec<u8>,
    packets: usize,
    out: Vec<u8>,
}

impl OggOpusWriter {
    /// A stream with its two header pages written: `pre_skip` in 48 kHz samples, the
    /// encoder's input rate (informational), and comments (`KEY=value`).
    pub fn new(serial: u32, pre_skip: u16, input_rate: u32, comments: &[String]) -> Self {
        let mut w = OggOpusWriter {
            serial,
            sequence: 0,
            granule: 0,
            segments: Vec::new(),
            body: Vec::new(),
            packets: 0,
            out: Vec::new(),
        };
        let mut head = b"OpusHead".to_vec();
        head.push(1); // version
        head.push(1); // mono
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&input_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family: mono/stereo
        w.lace(&head);
        w.page(FIRST, 0);
        let mut tags = b"OpusTags".to_vec();
        let vendor = b"Conclave";
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&(comments.len() as u32).to_le_bytes());
        for c in comments {
            tags.extend_from_slice(&(c.len() as u32).to_le_bytes());
            tags.extend_from_slice(c.as_bytes());
        }
        w.lace(&tags);
        w.page(0, 0);
        w
    }

    /// Adds a packet that decodes to `samples` (at 48 kHz); closes a page each second.
    pub fn push(&mut self, packet: &[u8], samples: u64) {
        // a page holds at most 255 lacing values
        if self.segments.len() + packet.len() / 255 + 1 > 255 {
            self.page(0, self.granule);
        }
        self.lace(packet);
        self.granule += samples;
        self.packets += 1;
        if self.packets >= PACKETS_PER_PAGE {
            self.page(0, self.granule);
        }
    }

    /// Closes the page being filled (if any): what is taken then is whole pages.
    pub fn flush(&mut self) {
        if !self.segments.is_empty() {
            self.page(0, self.granule);
        }
    }

    /// Ends the stream (the last page carries the end-of-stream flag).
    pub fn finish(&mut self) {
        self.page(LAST, self.granule);
    }

    /// Whole pages written so far, taken.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Bytes of whole pages waiting to be taken.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// 48 kHz samples written so far.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    fn lace(&mut self, packet: &[u8]) {
        let mut left = packet.len();
        while left >= 255 {
            self.segments.push(255);
            left -= 255;
        }
        self.segments.push(left as u8);
        self.body.extend_from_slice(packet);
    }

    fn page(&mut self, flags: u8, granule: u64) {
        let start = self.out.len();
        self.out.extend_from_slice(b"OggS");
        self.out.push(0);
        self.out.push(flags);
        self.out.extend_from_slice(&granule.to_le_bytes());
        self.out.extend_from_slice(&self.serial.to_le_bytes());
        self.out.extend_from_slice(&self.sequence.to_le_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.out.push(self.segments.len() as u8);
        self.out.append(&mut self.segments);
        self.out.append(&mut self.body);
        let sum = crc(&self.out[start..]);
        self.out[start + 22..start + 26].copy_from_slice(&sum.to_le_bytes());
        self.sequence += 1;
        self.packets = 0;
    }
}

/// What an Ogg Opus file holds: its packets (headers first) and the last granule position.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OggPackets {
    /// Every packet in order, `OpusHead` and `OpusTags` first.
    pub packets: Vec<Vec<u8>>,
    /// The granule position of the last page.
    pub granule: u64,
    /// The pre-skip of `OpusHead` (48 kHz samples), when it was read.
    pub pre_skip: Option<u16>,
    /// The last page had the end-of-stream flag.
    pub ended: bool,
}

/// Why a file is not Ogg.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OggError {
    /// A page does not start with `OggS` where one should.
    #[error("no Ogg page at byte {0}")]
    NoPage(usize),
    /// A page's checksum does not match.
    #[error("the page at byte {0} is corrupt (checksum)")]
    Checksum(usize),
}

/// Reads the pages of one logical stream; a cut-off last page is ignored (what a crash
/// leaves), anything else that is not Ogg is an error.
pub fn read_packets(data: &[u8]) -> Result<OggPackets, OggError> {
    let mut out = OggPackets::default();
    let mut partial: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < 27 {
            break;
        }
        if &rest[..4] != b"OggS" {
            return Err(OggError::NoPage(at));
        }
        let n = usize::from(rest[26]);
        if rest.len() < 27 + n {
            break;
        }
        let lacing = &rest[27..27 + n];
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let len = 27 + n + body_len;
        if rest.len() < len {
            break;
        }
        let mut page = rest[..len].to_vec();
        let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
        page[22..26].fill(0);
        if crc(&page) != stored {
            return Err(OggError::Checksum(at));
        }
        let flags = rest[5];
        if flags & CONTINUED == 0 {
            partial.clear();
        }
        let mut body = &rest[27 + n..len];
        for &l in lacing {
            let l = usize::from(l);
            partial.extend_from_slice(&body[..l]);
            body = &body[l..];
            if l < 255 {
                out.packets.push(std::mem::take(&mut partial));
            }
        }
        let mut granule = [0u8; 8];
        granule.copy_from_slice(&rest[6..14]);
        let granule = u64::from_le_bytes(granule);
        // -1 means no packet ends on this page
        if granule != u64::MAX {
            out.granule = granule;
        }
        out.ended = flags & LAST != 0;
        at += len;
    }
    if let Some(head) = out.packets.first()
        && head.len() >= 19
        && &head[..8] == b"OpusHead"
    {
        out.pre_skip = Some(u16::from_le_bytes([head[10], head[11]]));
    }
    Ok(out)
}

/// The length of the whole page at the start of `data`.
fn page_len(data: &[u8]) -> Option<usize> {
    if data.len() < 27 || &data[..4] != b"OggS" {
        return None;
    }
    let n = usize::from(data[26]);
    let lacing = data.get(27..27 + n)?;
    let len = 27 + n + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
    (data.len() >= len).then_some(len)
}

/// The same stream with one more comment in its `OpusTags` (who downloaded it, say); `None`
/// when the stream's second page is not a whole `OpusTags` packet.
pub fn with_comment(data: &[u8], comment: &str) -> Option<Vec<u8>> {
    let first = page_len(data)?;
    let second = page_len(&data[first..])?;
    let page = &data[first..first + second];
    let n = usize::from(page[26]);
    let lacing = &page[27..27 + n];
    if page[5] & CONTINUED != 0 || lacing.last().is_none_or(|&l| l == 255) {
        return None;
    }
    let body = &page[27 + n..];
    if lacing.iter().take(n - 1).any(|&l| l < 255) || !body.starts_with(b"OpusTags") {
        return None;
    }
    // vendor, count, comments
    let vendor_len = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?) as usize;
    let count_at = 12 + vendor_len;
    let count = u32::from_le_bytes(body.get(count_at..count_at + 4)?.try_into().ok()?);
    let mut tags = body[..count_at].to_vec();
    tags.extend_from_slice(&(count.checked_add(1)?).to_le_bytes());
    tags.extend_from_slice(&body[count_at + 4..]);
    tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
    tags.extend_from_slice(comment.as_bytes());
    let mut w = OggOpusWriter {
        serial: u32::from_le_bytes(page[14..18].try_into().ok()?),
        sequence: u32::from_le_bytes(page[18..22].try_into().ok()?),
        granule: 0,
        segments: Vec::new(),
        body: Vec::new(),
        packets: 0,
        out: Vec::new(),
    };
    if tags.len() / 255 + 1 > 255 {
        return None;
    }
    w.lace(&tags);
    w.page(page[5], u64::from_le_bytes(page[6..14].try_into().ok()?));
    let mut out = data[..first].to_vec();
    out.extend_from_slice(&w.out);
    out.extend_from_slice(&data[first + second..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip_and_a_cut_file_keeps_its_whole_pages() {
        let mut w = OggOpusWriter::new(7, 312, 8000, &["TITLE=x".into()]);
        for i in 0..120u32 {
            let packet = vec![(i % 251) as u8; 40 + (i as usize % 600)];
            w.push(&packet, 960);
        }
        w.finish();
        let bytes = w.take();
        let read = read_packets(&bytes).expect("ogg");
        assert_eq!(read.packets.len(), 122);
        assert_eq!(read.granule, 120 * 960);
        assert_eq!(read.pre_skip, Some(312));
        assert!(read.ended);
        assert_eq!(read.packets[2 + 119].len(), 40 + 119);
        let cut = read_packets(&bytes[..bytes.len() - 100]).expect("cut ogg");
        assert!(!cut.ended);
        assert!(cut.packets.len() < 122 && cut.packets.len() >= 102);
        let mut bad = bytes.clone();
        bad[60] ^= 1;
        assert!(read_packets(&bad).is_err());
        let stamped = with_comment(&bytes, "DOWNLOADED_BY=ann").expect("stamped");
        let again = read_packets(&stamped).expect("stamped ogg");
        assert_eq!(again.packets.len(), 122);
        assert_eq!(again.packets[2..], read.packets[2..]);
        let tags = &again.packets[1];
        assert!(tags.ends_with(b"DOWNLOADED_BY=ann") && tags.windows(7).any(|w| w == b"TITLE=x"));
        assert_eq!(with_comment(b"not ogg", "x"), None);
    }
}
