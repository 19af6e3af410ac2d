//! Block codec: the bytes of one series' aggregates over a run of slots
//! (the 1,440 minutes of a UTC day, a run of hours or days). It owns the
//! frame (version, kind, checksum), the compression and the columnar
//! payload inside; which slots a block covers and where blocks are kept
//! belong to `embedded::blocks`. The layout is drawn in `docs/format.md`,
//! section "Block encoding".
//!
//! Every number comes back bit for bit (`-0.0`, `0.1 + 0.2`, subnormals,
//! even NaN payloads), so a block can be decoded, merged and re-encoded any
//! number of times without drift. Decoding never trusts its input: damage
//! is a [`CodecError`] that says what is wrong, never a panic, and the
//! payload cannot inflate past [`MAX_PAYLOAD`].

mod decoded;
#[cfg(test)]
mod dist_tests;
mod floats;
mod layout;
#[cfg(test)]
mod tests;
pub(crate) mod varint;

use minutely_core::{Agg, Kind, Part, Slim};

pub use decoded::DecodedPart;
pub use layout::DistSlot;

/// Format version written in the first byte. Later versions keep the
/// version byte first and the CRC32 last, so that this build can tell a
/// newer block from a damaged one.
pub const VERSION: u8 = 1;

/// Largest payload a block may inflate to. An honest day of minutes is
/// kilobytes; the bound keeps a damaged or hostile block (whose checksum
/// happens to match) from exhausting memory.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Version byte, kind byte and the CRC32 around the deflate stream.
const FRAME_LEN: usize = 2 + 4;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("block is {0} bytes, shorter than the {FRAME_LEN}-byte frame (version, kind, checksum): it was cut short")]
    TooShort(usize),
    #[error("block checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the bytes were damaged or cut short")]
    Checksum { stored: u32, computed: u32 },
    #[error("block format version {0} is not supported (this build reads version {VERSION}): written by a newer minutely?")]
    Version(u8),
    #[error("block has unknown metric kind code {0}")]
    Kind(u8),
    #[error("block payload does not inflate: {0}")]
    Deflate(#[source] std::io::Error),
    #[error("block payload inflates to more than {MAX_PAYLOAD} bytes")]
    TooLarge,
    #[error("block payload ends early, inside {0}")]
    Truncated(&'static str),
    #[error("block payload is malformed: {0}")]
    Malformed(String),
}

/// Encodes one series' slots. `slots` must be sorted by slot, unique and all
/// of `kind` (debug builds check the kind; in release an aggregate of
/// another kind is left out, as the block has no column for it).
pub fn encode_block(kind: Kind, slots: &[(u16, Agg)]) -> Vec<u8> {
    let payload = layout::encode(kind, slots);
    let mut out = vec![VERSION, kind.code()];
    out.extend_from_slice(&deflate(kind, &payload));
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a block written by [`encode_block`]: its kind and its slots, in
/// the order they were given.
pub fn decode_block(bytes: &[u8]) -> Result<(Kind, Vec<(u16, Agg)>), CodecError> {
    let (kind, deflated) = check_frame(bytes)?;
    let payload = inflate(deflated)?;
    Ok((kind, layout::decode(kind, &payload)?))
}

/// What a reader of parts keeps from block to block: the buffers.
#[derive(Default)]
pub struct PartReader {
    /// Inflated payload in `payload[..len]`; the rest is spare room.
    payload: Vec<u8>,
    len: usize,
    cols: layout::Columns,
}

impl PartReader {
    /// Decodes only what `part` needs of a block written by
    /// [`encode_block`], handing each slot's part to `out` in slot order.
    /// A block of a kind the part does not apply to gives nothing.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        part: Part,
        out: &mut impl FnMut(u16, Slim),
    ) -> Result<(), CodecError> {
        self.decode_keeping(bytes, part, |_, _| {}, out)
    }

    /// [`PartReader::decode`] that also shows `keep` the block's kind and
    /// whole inflated payload (for a cache), once the frame checked out.
    pub fn decode_keeping(
        &mut self,
        bytes: &[u8],
        part: Part,
        keep: impl FnOnce(Kind, &[u8]),
        out: &mut impl FnMut(u16, Slim),
    ) -> Result<(), CodecError> {
        let (kind, deflated) = check_frame(bytes)?;
        self.len = inflate_into(deflated, &mut self.payload)?;
        let payload = &self.payload[..self.len];
        keep(kind, payload);
        layout::decode_part(kind, payload, part, &mut self.cols, out)
    }

    /// [`PartReader::decode`] into a [`DecodedPart`] to keep.
    pub fn decoded(&mut self, bytes: &[u8], part: Part) -> Result<DecodedPart, CodecError> {
        let (kind, deflated) = check_frame(bytes)?;
        self.len = inflate_into(deflated, &mut self.payload)?;
        DecodedPart::decode(kind, &self.payload[..self.len], part, &mut self.cols)
    }

    /// [`PartReader::decoded`] of a payload inflated before from a block
    /// of `kind` (as a cache kept it).
    pub fn decoded_payload(
        &mut self,
        kind: Kind,
        payload: &[u8],
        part: Part,
    ) -> Result<DecodedPart, CodecError> {
        DecodedPart::decode(kind, payload, part, &mut self.cols)
    }

    /// Decodes the distributions of a block written by [`encode_block`]
    /// (the numbers [`decode_block`] gives, bit for bit), handing each slot
    /// to `out` in slot order from reused buffers; also shows `keep` the
    /// block's kind and inflated payload, as [`PartReader::decode_keeping`]
    /// does. A block of another kind gives nothing. Without `sketches`,
    /// each slot's sketch is handed over empty (zero count 0) and the
    /// sketches are not read, like columns a part does not need.
    pub fn decode_dists_keeping(
        &mut self,
        bytes: &[u8],
        sketches: bool,
        keep: impl FnOnce(Kind, &[u8]),
        out: &mut impl FnMut(u16, DistSlot<'_>),
    ) -> Result<(), CodecError> {
        let (kind, deflated) = check_frame(bytes)?;
        self.len = inflate_into(deflated, &mut self.payload)?;
        let payload = &self.payload[..self.len];
        keep(kind, payload);
        layout::decode_dists(kind, payload, sketches, &mut self.cols, out)
    }

    /// [`PartReader::decode_dists_keeping`] of a payload inflated before
    /// from a block of `kind`.
    pub fn decode_dists_payload(
        &mut self,
        kind: Kind,
        payload: &[u8],
        sketches: bool,
        out: &mut impl FnMut(u16, DistSlot<'_>),
    ) -> Result<(), CodecError> {
        layout::decode_dists(kind, payload, sketches, &mut self.cols, out)
    }
}

/// [`decode_block`] that also shows `keep` the block's kind and inflated
/// payload (for a cache), once the frame checked out.
pub fn decode_block_keeping(
    bytes: &[u8],
    keep: impl FnOnce(Kind, &[u8]),
) -> Result<Vec<(u16, Agg)>, CodecError> {
    let (kind, deflated) = check_frame(bytes)?;
    let payload = inflate(deflated)?;
    keep(kind, &payload);
    layout::decode(kind, &payload)
}

/// The slots of a payload inflated before from a block of `kind`.
pub fn decode_payload(kind: Kind, payload: &[u8]) -> Result<Vec<(u16, Agg)>, CodecError> {
    layout::decode(kind, payload)
}

/// Checks the frame; the block's kind and its deflate stream.
fn check_frame(bytes: &[u8]) -> Result<(Kind, &[u8]), CodecError> {
    if bytes.len() < FRAME_LEN {
        return Err(CodecError::TooShort(bytes.len()));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32fast::hash(body);
    // Checked first, so the version and kind bytes are trusted below and
    // damaged bytes never reach the inflater.
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    if body[0] != VERSION {
        return Err(CodecError::Version(body[0]));
    }
    let kind = Kind::from_code(body[1]).ok_or(CodecError::Kind(body[1]))?;
    Ok((kind, &body[2..]))
}

/// Inflates into `buf` and returns the payload's length. libdeflate
/// needs room for the whole payload at once: `buf` keeps the room the last
/// block needed (it is reused from block to block), starts at four times
/// the stream, and doubles when short, up to the bound.
fn inflate_into(data: &[u8], buf: &mut Vec<u8>) -> Result<usize, CodecError> {
    thread_local! {
        static INFLATER: std::cell::RefCell<libdeflater::Decompressor> =
            std::cell::RefCell::new(libdeflater::Decompressor::new());
    }
    let room = data.len().saturating_mul(4).clamp(4_096, MAX_PAYLOAD + 1);
    if buf.len() < room {
        buf.resize(room, 0);
    }
    INFLATER.with(|d| {
        let mut d = d.borrow_mut();
        loop {
            match d.deflate_decompress(data, buf) {
                Ok(n) if n > MAX_PAYLOAD => return Err(CodecError::TooLarge),
                Ok(n) => return Ok(n),
                Err(libdeflater::DecompressionError::InsufficientSpace) => {
                    if buf.len() > MAX_PAYLOAD {
                        return Err(CodecError::TooLarge);
                    }
                    let grown = (buf.len() * 2).min(MAX_PAYLOAD + 1);
                    buf.resize(grown, 0);
                }
                Err(libdeflater::DecompressionError::BadData) => {
                    return Err(CodecError::Deflate(std::io::Error::other(
                        "not a valid deflate stream (damaged or cut short)",
                    )))
                }
            }
        }
    })
}

/// libdeflate's levels, by kind. Gauge and counter columns are varints
/// of deltas with few long repeats: level 1 (greedy matching) gives the
/// same bytes as level 6 (on a day of 10,000 such series, 0.1% fewer) in
/// three quarters of the time, which matters because a checkpoint
/// re-encodes every block it touches. Sketches repeat more: level 6 is 5%
/// smaller there.
const DEFLATE_LEVELS: [i32; 2] = [1, 6];

/// Which of [`DEFLATE_LEVELS`] (and of a thread's compressors) `kind` uses.
fn level_index(kind: Kind) -> usize {
    match kind {
        Kind::Gauge | Kind::Counter => 0,
        Kind::Distribution => 1,
    }
}

thread_local! {
    /// Compressors per thread, one per level: the match finder is
    /// allocated once.
    static COMPRESSORS: std::cell::RefCell<[Option<libdeflater::Compressor>; 2]> =
        std::cell::RefCell::new(DEFLATE_LEVELS.map(|level| {
            libdeflater::CompressionLvl::new(level)
                .ok()
                .map(libdeflater::Compressor::new)
        }));
}

fn deflate(kind: Kind, payload: &[u8]) -> Vec<u8> {
    deflate_at(level_index(kind), payload)
}

/// A raw deflate stream of `data` at the denser level, for what the store
/// keeps outside blocks (the places file, series definitions).
pub(crate) fn deflate_dense(data: &[u8]) -> Vec<u8> {
    deflate_at(1, data)
}

fn deflate_at(level: usize, payload: &[u8]) -> Vec<u8> {
    COMPRESSORS
        .with(|c| {
            c.borrow_mut()[level]
                .as_mut()
                .and_then(|c| deflate_with(c, payload))
        })
        // Cannot fail with an output of the compressor's bound; were it
        // ever to, stored (uncompressed) deflate blocks keep the block
        // readable instead of panicking.
        .unwrap_or_else(|| stored_deflate(payload))
}

/// Inflates a raw deflate stream that must come to exactly `len` bytes,
/// at most `limit`. A length deflate cannot reach from `data` (it shrinks
/// by 1,032 times at most) is damage and is refused before anything is
/// allocated.
pub(crate) fn inflate_exact(data: &[u8], len: usize, limit: usize) -> Result<Vec<u8>, CodecError> {
    if len > limit || len > data.len().saturating_mul(1_032).saturating_add(64) {
        return Err(CodecError::TooLarge);
    }
    let mut out = vec![0; len];
    match libdeflater::Decompressor::new().deflate_decompress(data, &mut out) {
        Ok(n) if n == len => Ok(out),
        Ok(n) => Err(CodecError::Malformed(format!(
            "inflates to {n} bytes, not the {len} it says"
        ))),
        Err(_) => Err(CodecError::Deflate(std::io::Error::other(
            "not a valid deflate stream of the length it says (damaged or cut short)",
        ))),
    }
}

fn deflate_with(c: &mut libdeflater::Compressor, input: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0; c.deflate_compress_bound(input.len())];
    let len = c.deflate_compress(input, &mut out).ok()?;
    out.truncate(len);
    Some(out)
}

/// A valid deflate stream of uncompressed "stored" blocks (RFC 1951 3.2.4).
fn stored_deflate(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5 * (payload.len() / 0xFFFF + 1));
    let mut chunks = payload.chunks(0xFFFF).peekable();
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        // BFINAL in bit 0, BTYPE 00 (stored), then padding to the byte.
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
        if last {
            return out;
        }
    }
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let len = inflate_into(data, &mut out)?;
    out.truncate(len);
    Ok(out)
}
