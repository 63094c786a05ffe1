//! The sealed file of one recorded track: chunks of Ogg sealed one by one with AES-256-GCM
//! under the recording's own key, so that nothing readable reaches the disk, what was
//! written before a crash still opens, and a reader can skip to any chunk.
//!
//! ```text
//! file   = header record*
//! header = "CNCLREC1" track:u32be 0:u32be                   (16 bytes, plaintext)
//! record = length:u32be flags:u8 ciphertext+tag[length]     (flags: 1 = the last chunk)
//! nonce  = track:u32be index:u64be
//! aad    = "CNCLREC1" recording-id track:u32be index:u64be flags:u8
//! ```
//! The nonce is unique because the key is the recording's alone and each track numbers its
//! chunks; the additional data binds every chunk to its recording, track, place and
//! whether it is the last, so chunks cannot be swapped, moved or cut off unnoticed (a file
//! without its last chunk reads as interrupted).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const MAGIC: &[u8; 8] = b"CNCLREC1";
/// Bytes before the first record.
pub const HEADER_LEN: usize = 16;
const LAST: u8 = 1;
/// The largest chunk a reader accepts (a writer's chunks are a few kilobytes).
pub const MAX_CHUNK: usize = 1 << 20;
/// Bytes a record adds to its chunk: length, flags, tag.
pub const RECORD_OVERHEAD: usize = 4 + 1 + 16;

/// A recording's key (32 random bytes; kept wrapped by the tenant's key).
pub struct RecordingKey(LessSafeKey);

impl std::fmt::Debug for RecordingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordingKey")
    }
}

impl RecordingKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<RecordingKey, SealedError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealedError::BadKey)?;
        Ok(RecordingKey(LessSafeKey::new(key)))
    }
}

/// Why a sealed file does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    /// Not 32 bytes.
    #[error("a recording key is 32 bytes")]
    BadKey,
    /// Not a sealed track file, or another track's.
    #[error("not a sealed recording track")]
    NotSealed,
    /// A chunk larger than any writer makes.
    #[error("chunk {0} is too large")]
    TooLarge(u64),
    /// A chunk does not authenticate: another key or recording, or altered bytes.
    #[error("chunk {0} does not authenticate (wrong key, or altered)")]
    Forged(u64),
    /// Bytes after the last chunk.
    #[error("data after the last chunk")]
    Trailing,
}

fn nonce(track: u32, index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&track.to_be_bytes());
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(recording: &[u8], track: u32, index: u64, flags: u8) -> Vec<u8> {
    let mut a = Vec::with_capacity(8 + recording.len() + 13);
    a.extend_from_slice(MAGIC);
    a.extend_from_slice(recording);
    a.extend_from_slice(&track.to_be_bytes());
    a.extend_from_slice(&index.to_be_bytes());
    a.push(flags);
    a
}

/// Seals one track's chunks in order.
#[derive(Debug)]
pub struct SealedWriter {
    key: RecordingKey,
    recording: Vec<u8>,
    track: u32,
    index: u64,
}

impl SealedWriter {
    /// A writer for `track` of the recording named `recording` (its id's bytes).
    pub fn new(key: RecordingKey, recording: &[u8], track: u32) -> SealedWriter {
        SealedWriter {
            key,
            recording: recording.to_vec(),
            track,
            index: 0,
        }
    }

    /// The file's header (written once, first).
    pub fn header(&self) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&self.track.to_be_bytes());
        h.extend_from_slice(&[0; 4]);
        h
    }

    /// The next record: `plain` sealed (`last`: nothing follows).
    pub fn seal(&mut self, plain: &[u8], last: bool) -> Vec<u8> {
        let flags = if last { LAST } else { 0 };
        let mut data = plain.to_vec();
        let tag = self.key.0.seal_in_place_separate_tag(
            nonce(self.track, self.index),
            Aad::from(aad(&self.recording, self.track, self.index, flags)),
            &mut data,
        );
        let tag = match tag {
            Ok(tag) => tag,
            // only a chunk beyond GCM's 64 GiB limit fails, and chunks are small
            Err(_) => return Vec::new(),
        };
        self.index += 1;
        let mut record = Vec::with_capacity(data.len() + RECORD_OVERHEAD);
        record.extend_from_slice(&((data.len() + 16) as u32).to_be_bytes());
        record.push(flags);
        record.extend_from_slice(&data);
        record.extend_from_slice(tag.as_ref());
        record
    }
}

/// What a sealed file opened to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The chunks' plaintext, in order.
    pub plain: Vec<u8>,
    /// Chunks read.
    pub chunks: u64,
    /// The last chunk was there: the recording ended normally.
    pub complete: bool,
}

/// Opens a track's file: every whole chunk is authenticated and decrypted; a record cut off
/// at the end (a crash while writing) is left out and the file reads as not complete.
pub fn open(
    key: &RecordingKey,
    recording: &[u8],
    track: u32,
    file: &[u8],
) -> Result<Opened, SealedError> {
    if file.len() < HEADER_LEN
        || &file[..8] != MAGIC
        || file[8..12] != track.to_be_bytes()
        || file[12..16] != [0; 4]
    {
        return Err(SealedError::NotSealed);
    }
    let mut out = Opened::default();
    let mut rest = &file[HEADER_LEN..];
    while rest.len() >= 5 {
        if out.complete {
            return Err(SealedError::Trailing);
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let flags = rest[4];
        if !(16..=MAX_CHUNK + 16).contains(&len) || flags & !LAST != 0 {
            return Err(SealedError::TooLarge(out.chunks));
        }
        if rest.len() < 5 + len {
            break;
        }
        let mut data = rest[5..5 + len].to_vec();
        let plain = key
            .0
            .open_in_place(
                nonce(track, out.chunks),
                Aad::from(aad(recording, track, out.chunks, flags)),
                &mut data,
            )
            .map_err(|_| SealedError::Forged(out.chunks))?;
        out.plain.extend_from_slice(plain);
        out.chunks += 1;
        out.complete = flags & LAST != 0;
        rest = &rest[5 + len..];
    }
    if out.complete && !rest.is_empty() {
        return Err(SealedError::Trailing);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> RecordingKey {
        RecordingKey::new(&[b; 32]).expect("key")
    }

    #[test]
    fn chunks_open_in_order_and_nothing_else_does() {
        let mut w = SealedWriter::new(key(1), b"rec-1", 3);
        let mut file = w.header();
        file.extend(w.seal(b"OggS first", false));
        file.extend(w.seal(b"OggS second", false));
        let unfinished = file.clone();
        file.extend(w.seal(b"OggS third", true));
        let opened = open(&key(1), b"rec-1", 3, &file).expect("open");
        assert_eq!(opened.plain, b"OggS firstOggS secondOggS third");
        assert!(opened.complete);
        assert_eq!(opened.chunks, 3);
        // a crash: what was written opens, marked as not complete; so does a torn record
        let cut = open(&key(1), b"rec-1", 3, &unfinished).expect("open");
        assert!(!cut.complete && cut.chunks == 2);
        let torn = open(&key(1), b"rec-1", 3, &file[..file.len() - 3]).expect("open");
        assert!(!torn.complete && torn.chunks == 2);
        // no plaintext on disk
        assert!(!file.windows(4).any(|w| w == b"OggS"));
        // another key, recording or track; an altered byte; chunks swapped
        assert_eq!(
            open(&key(2), b"rec-1", 3, &file),
            Err(SealedError::Forged(0))
        );
        assert_eq!(
            open(&key(1), b"rec-2", 3, &file),
            Err(SealedError::Forged(0))
        );
        assert_eq!(
            open(&key(1), b"rec-1", 4, &file),
            Err(SealedError::NotSealed)
        );
        let mut altered = file.clone();
        altered[HEADER_LEN + 7] ^= 1;
        assert_eq!(
            open(&key(1), b"rec-1", 3, &altered),
            Err(SealedError::Forged(0))
        );
        let first = 5 + 10 + 16;
        let second = 5 + 11 + 16;
        let mut swapped = w.header();
        swapped.extend_from_slice(&file[HEADER_LEN + first..HEADER_LEN + first + second]);
        swapped.extend_from_slice(&file[HEADER_LEN..HEADER_LEN + first]);
        assert!(open(&key(1), b"rec-1", 3, &swapped).is_err());
        let mut trailing = file.clone();
        trailing.extend_from_slice(&file[HEADER_LEN..HEADER_LEN + first]);
        assert_eq!(
            open(&key(1), b"rec-1", 3, &trailing),
            Err(SealedError::Trailing)
        );
    }
}
