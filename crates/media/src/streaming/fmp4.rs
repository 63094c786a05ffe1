//! Fragmented MP4 (ISO/IEC 14496-12, CMAF) with one Opus track ("Encapsulation of Opus in
//! ISO Base Media File Format", opus-codec.org) and, for a meeting with video, one H.264
//! track of its composed picture (ISO/IEC 14496-15, `avc3`: parameter sets travel in the
//! stream, before each keyframe, so the init segment is written before the first picture):
//! the init segment a player reads once, and one fragment (`moof` + `mdat`) per media
//! segment. Writing only what HLS players need, plus a reader for fragments (tests and tools
//! check what was served).

/// Opus in MP4 always counts time at 48 kHz.
pub const TIMESCALE: u32 = 48_000;
/// The video track's clock (RTP's).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// A picture of the video track: its duration (90 kHz), its NAL units each behind a 4-byte
/// length, and whether it is a keyframe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSample {
    /// Until the next picture, at 90 kHz.
    pub duration: u32,
    /// NAL units, each after its length (4 bytes, big-endian).
    pub data: Vec<u8>,
    /// An IDR picture: a player may start here.
    pub keyframe: bool,
}

/// NAL units (single ones and FU-A fragments, as the composer packetizes them) as one
/// sample: each NAL unit behind its 4-byte length. Fragments out of order are dropped.
pub fn sample_from_packets<'a>(packets: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut fragment: Option<Vec<u8>> = None;
    let push = |out: &mut Vec<u8>, nal: &[u8]| {
        if let Ok(len) = u32::try_from(nal.len()) {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(nal);
        }
    };
    for p in packets {
        let Some(&head) = p.first() else { continue };
        if head & 0x1f != 28 {
            push(&mut out, p);
            continue;
        }
        let Some(&fu) = p.get(1) else { continue };
        let body = &p[2..];
        if fu & 0x80 != 0 {
            let mut nal = vec![(head & 0xe0) | (fu & 0x1f)];
            nal.extend_from_slice(body);
            fragment = Some(nal);
        } else if let Some(nal) = fragment.as_mut() {
            nal.extend_from_slice(body);
        }
        if fu & 0x40 != 0
            && let Some(nal) = fragment.take()
        {
            push(&mut out, &nal);
        }
    }
    out
}

fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    boxed(out, kind, |o| {
        o.push(version);
        o.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(o);
    });
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The init segment (`ftyp` + `moov`) of a mono Opus track; `pre_skip` in 48 kHz samples.
pub fn init_segment(pre_skip: u16) -> Vec<u8> {
    init_segment_with_video(pre_skip, None)
}

/// The init segment of the Opus track (track 1) and, with a picture size, an H.264 track
/// (track 2, Constrained Baseline at level 3.1).
pub fn init_segment_with_video(pre_skip: u16, video: Option<(u16, u16)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(700);
    boxed(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32be(o, 0);
        for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
            o.extend_from_slice(brand);
        }
    });
    boxed(&mut out, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32be(o, 0); // creation
            u32be(o, 0); // modification
            u32be(o, 1000); // timescale
            u32be(o, 0); // duration: unknown (fragmented)
            u32be(o, 0x0001_0000); // rate 1.0
            u16be(o, 0x0100); // volume 1.0
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|&m| u32be(o, m));
            o.extend_from_slice(&[0; 24]);
            u32be(o, if video.is_some() { 3 } else { 2 }); // next track id
        });
        boxed(o, b"trak", |o| {
            full(o, b"tkhd", 0, 3, |o| {
                u32be(o, 0);
                u32be(o, 0);
                u32be(o, 1); // track id
                u32be(o, 0);
                u32be(o, 0); // duration
                o.extend_from_slice(&[0; 8]);
                u16be(o, 0); // layer
                u16be(o, 0); // alternate group
                u16be(o, 0x0100); // volume
                u16be(o, 0);
                MATRIX.iter().for_each(|&m| u32be(o, m));
                u32be(o, 0); // width
                u32be(o, 0); // height
            });
            boxed(o, b"mdia", |o| {
                full(o, b"mdhd", 0, 0, |o| {
                    u32be(o, 0);
                    u32be(o, 0);
                    u32be(o, TIMESCALE);
                    u32be(o, 0);
                    u16be(o, 0x55c4); // "und"
                    u16be(o, 0);
                });
                full(o, b"hdlr", 0, 0, |o| {
                    u32be(o, 0);
                    o.extend_from_slice(b"soun");
                    o.extend_from_slice(&[0; 12]);
                    o.extend_from_slice(b"Conclave\0");
                });
                boxed(o, b"minf", |o| {
                    full(o, b"smhd", 0, 0, |o| u32be(o, 0));
                    data_information(o);
                    boxed(o, b"stbl", |o| {
                        full(o, b"stsd", 0, 0, |o| {
                            u32be(o, 1);
                            boxed(o, b"Opus", |o| {
                                o.extend_from_slice(&[0; 6]);
                                u16be(o, 1); // data reference index
                                o.extend_from_slice(&[0; 8]);
                                u16be(o, 1); // channels
                                u16be(o, 16); // sample size
                                u32be(o, 0);
                                u32be(o, TIMESCALE << 16);
                                boxed(o, b"dOps", |o| {
                                    o.push(0); // version
                                    o.push(1); // output channels
                                    u16be(o, pre_skip);
                                    u32be(o, TIMESCALE); // input rate
                                    u16be(o, 0); // output gain
                                    o.push(0); // mapping family
                                });
                            });
                        });
                        empty_sample_tables(o);
                    });
                });
            });
        });
        if let Some((width, height)) = video {
            video_track(o, width, height);
        }
        boxed(o, b"mvex", |o| {
            full(o, b"trex", 0, 0, |o| {
                u32be(o, 1); // track id
                u32be(o, 1); // sample description
                u32be(o, 960); // default duration: 20 ms
                u32be(o, 0);
                u32be(o, 0);
            });
            if video.is_some() {
                full(o, b"trex", 0, 0, |o| {
                    u32be(o, 2);
                    u32be(o, 1);
                    u32be(o, 3000); // 1/30 s
                    u32be(o, 0);
                    u32be(o, 0x0001_0000); // non-sync unless a sample says so
                });
            }
        });
    });
    out
}

/// A track's `dinf`: its data is in this file.
fn data_information(o: &mut Vec<u8>) {
    boxed(o, b"dinf", |o| {
        full(o, b"dref", 0, 0, |o| {
            u32be(o, 1);
            full(o, b"url ", 0, 1, |_| {});
        });
    });
}

/// A fragmented track's sample tables: empty (the samples are in the fragments).
fn empty_sample_tables(o: &mut Vec<u8>) {
    full(o, b"stts", 0, 0, |o| u32be(o, 0));
    full(o, b"stsc", 0, 0, |o| u32be(o, 0));
    full(o, b"stsz", 0, 0, |o| {
        u32be(o, 0);
        u32be(o, 0);
    });
    full(o, b"stco", 0, 0, |o| u32be(o, 0));
}

/// The H.264 track's `trak`.
fn video_track(o: &mut Vec<u8>, width: u16, height: u16) {
    boxed(o, b"trak", |o| {
        full(o, b"tkhd", 0, 3, |o| {
            u32be(o, 0);
            u32be(o, 0);
            u32be(o, 2); // track id
            u32be(o, 0);
            u32be(o, 0);
            o.extend_from_slice(&[0; 8]);
            u16be(o, 0);
            u16be(o, 0);
            u16be(o, 0); // volume: none
            u16be(o, 0);
            MATRIX.iter().for_each(|&m| u32be(o, m));
            u32be(o, u32::from(width) << 16);
            u32be(o, u32::from(height) << 16);
        });
        boxed(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                u32be(o, 0);
                u32be(o, 0);
                u32be(o, VIDEO_TIMESCALE);
                u32be(o, 0);
                u16be(o, 0x55c4);
                u16be(o, 0);
            });
            full(o, b"hdlr", 0, 0, |o| {
                u32be(o, 0);
                o.extend_from_slice(b"vide");
                o.extend_from_slice(&[0; 12]);
                o.extend_from_slice(b"Conclave\0");
            });
            boxed(o, b"minf", |o| {
                full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                data_information(o);
                boxed(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        u32be(o, 1);
                        boxed(o, b"avc3", |o| {
                            o.extend_from_slice(&[0; 6]);
                            u16be(o, 1); // data reference index
                            o.extend_from_slice(&[0; 16]);
                            u16be(o, width);
                            u16be(o, height);
                            u32be(o, 0x0048_0000); // 72 dpi
                            u32be(o, 0x0048_0000);
                            u32be(o, 0);
                            u16be(o, 1); // frames per sample
                            o.extend_from_slice(&[0; 32]); // compressor name
                            u16be(o, 0x0018); // depth
                            u16be(o, 0xffff);
                            boxed(o, b"avcC", |o| {
                                // version, Constrained Baseline, level 3.1, 4-byte lengths,
                                // no parameter sets here (avc3: they are in the stream)
                                o.extend_from_slice(&[1, 0x42, 0xe0, 31, 0xff, 0xe0, 0]);
                            });
                        });
                    });
                    empty_sample_tables(o);
                });
            });
        });
    });
}

/// One fragment: `sequence` counts from 1, `decode_time` (48 kHz) is when its first sample
/// plays, `samples` are Opus packets with their durations (48 kHz).
pub fn fragment(sequence: u32, decode_time: u64, samples: &[(u32, &[u8])]) -> Vec<u8> {
    fragment_with_video(sequence, decode_time, samples, None)
}

/// A fragment with the video track's pictures too (`video`: when the first one shows, at
/// 90 kHz, and the pictures); the audio's data comes first in the `mdat`.
pub fn fragment_with_video(
    sequence: u32,
    decode_time: u64,
    samples: &[(u32, &[u8])],
    video: Option<(u64, &[VideoSample])>,
) -> Vec<u8> {
    let payload: usize = samples.iter().map(|(_, p)| p.len()).sum::<usize>()
        + video.map_or(0, |(_, v)| v.iter().map(|s| s.data.len()).sum());
    let mut out = Vec::with_capacity(payload + 200 + samples.len() * 8);
    let mut offset_at = 0;
    let mut video_offset_at = None;
    boxed(&mut out, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32be(o, sequence));
        boxed(o, b"traf", |o| {
            // default-base-is-moof: data offsets count from the moof's first byte
            full(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, 1));
            full(o, b"tfdt", 1, 0, |o| {
                o.extend_from_slice(&decode_time.to_be_bytes())
            });
            // data offset, sample durations and sizes
            full(o, b"trun", 0, 0x0301, |o| {
                u32be(o, u32::try_from(samples.len()).unwrap_or(u32::MAX));
                offset_at = o.len();
                u32be(o, 0);
                for (duration, packet) in samples {
                    u32be(o, *duration);
                    u32be(o, u32::try_from(packet.len()).unwrap_or(u32::MAX));
                }
            });
        });
        if let Some((video_time, pictures)) = video.filter(|(_, v)| !v.is_empty()) {
            boxed(o, b"traf", |o| {
                full(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, 2));
                full(o, b"tfdt", 1, 0, |o| {
                    o.extend_from_slice(&video_time.to_be_bytes())
                });
                // data offset, durations, sizes and flags (sync or not)
                full(o, b"trun", 0, 0x0701, |o| {
                    u32be(o, u32::try_from(pictures.len()).unwrap_or(u32::MAX));
                    video_offset_at = Some(o.len());
                    u32be(o, 0);
                    for p in pictures {
                        u32be(o, p.duration);
                        u32be(o, u32::try_from(p.data.len()).unwrap_or(u32::MAX));
                        u32be(o, if p.keyframe { 0x0200_0000 } else { 0x0101_0000 });
                    }
                });
            });
        }
    });
    let data_offset = u32::try_from(out.len() + 8).unwrap_or(u32::MAX);
    out[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    if let Some(at) = video_offset_at {
        let audio: usize = samples.iter().map(|(_, p)| p.len()).sum();
        let offset = u32::try_from(out.len() + 8 + audio).unwrap_or(u32::MAX);
        out[at..at + 4].copy_from_slice(&offset.to_be_bytes());
    }
    boxed(&mut out, b"mdat", |o| {
        for (_, packet) in samples {
            o.extend_from_slice(packet);
        }
        for p in video.map_or(&[][..], |(_, v)| v) {
            o.extend_from_slice(&p.data);
        }
    });
    out
}

/// What [`read_fragment`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Its `mfhd` sequence number.
    pub sequence: u32,
    /// When its first sample plays (48 kHz).
    pub decode_time: u64,
    /// (duration, packet)
    pub samples: Vec<(u32, Vec<u8>)>,
}

/// Why a fragment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a fragment this server writes: {0}")]
pub struct FragmentError(&'static str);

/// A box: its type and its body.
type Boxed<'a> = ([u8; 4], &'a [u8]);

fn children(data: &[u8]) -> Result<Vec<Boxed<'_>>, FragmentError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let head = rest.get(..8).ok_or(FragmentError("a box header is cut"))?;
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if size < 8 || size > rest.len() {
            return Err(FragmentError("a box's size is wrong"));
        }
        let kind = [head[4], head[5], head[6], head[7]];
        out.push((kind, &rest[8..size]));
        rest = &rest[size..];
    }
    Ok(out)
}

fn find<'a>(boxes: &[Boxed<'a>], kind: &[u8; 4]) -> Result<&'a [u8], FragmentError> {
    boxes
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| *b)
        .ok_or(FragmentError("a box is missing"))
}

fn be32(data: &[u8], at: usize) -> Result<u32, FragmentError> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(FragmentError("a box is cut"))
}

/// Reads a fragment written by [`fragment`] (one track; sizes and durations in `trun`).
pub fn read_fragment(data: &[u8]) -> Result<Fragment, FragmentError> {
    let top = children(data)?;
    let moof = find(&top, b"moof")?;
    let mdat = find(&top, b"mdat")?;
    let moof_boxes = children(moof)?;
    let sequence = be32(find(&moof_boxes, b"mfhd")?, 4)?;
    let traf = children(find(&moof_boxes, b"traf")?)?;
    let tfdt = find(&traf, b"tfdt")?;
    let decode_time = match tfdt.first() {
        Some(1) => (u64::from(be32(tfdt, 4)?) << 32) | u64::from(be32(tfdt, 8)?),
        Some(0) => u64::from(be32(tfdt, 4)?),
        _ => return Err(FragmentError("tfdt version")),
    };
    let trun = find(&traf, b"trun")?;
    if be32(trun, 0)? & 0x00ff_ffff != 0x0301 {
        return Err(FragmentError("trun flags"));
    }
    let count = be32(trun, 4)? as usize;
    if count > trun.len() / 8 {
        return Err(FragmentError("trun count"));
    }
    let mut samples = Vec::with_capacity(count);
    let mut at = 0usize;
    for i in 0..count {
        let duration = be32(trun, 12 + i * 8)?;
        let size = be32(trun, 16 + i * 8)? as usize;
        let packet = mdat
            .get(at..at.saturating_add(size))
            .ok_or(FragmentError("a sample is past the mdat"))?;
        samples.push((duration, packet.to_vec()));
        at += size;
    }
    Ok(Fragment {
        sequence,
        decode_time,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fragment_reads_back() {
        let packets: [&[u8]; 3] = [b"abc", b"", b"defgh"];
        let samples: Vec<(u32, &[u8])> = packets.iter().map(|p| (960, *p)).collect();
        let data = fragment(7, 48_000 * 3600 * 30, &samples);
        let read = read_fragment(&data).expect("reads");
        assert_eq!(read.sequence, 7);
        assert_eq!(read.decode_time, 48_000 * 3600 * 30);
        assert_eq!(
            read.samples,
            vec![
                (960, b"abc".to_vec()),
                (960, vec![]),
                (960, b"defgh".to_vec())
            ]
        );
        // the data offset points at the first packet
        let moof = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        assert_eq!(&data[moof + 8..moof + 11], b"abc");
    }

    #[test]
    fn the_init_segment_is_well_formed() {
        let init = init_segment(312);
        let top = children(&init).expect("boxes");
        assert_eq!(
            top.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [*b"ftyp", *b"moov"]
        );
        let at = init.windows(4).position(|w| w == b"dOps").expect("dOps");
        assert_eq!(&init[at + 4..at + 8], &[0, 1, 1, 56]); // version, mono, pre-skip 312
    }

    #[test]
    fn cut_or_broken_fragments_are_refused() {
        let data = fragment(1, 0, &[(960, b"abc".as_slice())]);
        for cut in 0..data.len() {
            assert!(read_fragment(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut big = data.clone();
        big[3] = 0xff;
        assert!(read_fragment(&big).is_err());
    }
}
