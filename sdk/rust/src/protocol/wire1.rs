//! WIRE-1 binary frames (spec 5.2): the bitstring carried after marker 0x01 or 0x03.
//!
//! Layout, most significant bit first: left padding `0*` ended by a `1` bit; a versioned bit
//! and, when set, an 8-bit version (<= 1); the 5-bit message type; a compressed bit; the 8-bit
//! metadata length in bytes; the metadata (a JSON object, zlib-inflated when compressed); then
//! for `bin` (type 12) a 4-bit payload type and every remaining whole byte, never inflated, or
//! for any other type a JSON object payload (inflated when compressed).
//!
//! The encoder writes hivemind-bus-client's layout (version 1, left-padded to a whole byte),
//! so its frames match the reference vectors byte for byte.

use std::io::Write;

use flate2::{Decompress, FlushDecompress, Status};
use serde_json::{Map, Value};

use super::canonical::write_json_string;
use super::envelope::{HiveMessage, message_type_name, message_type_number, parse_json_object};
use super::errors::{ProtocolError, Result};

/// Message type number of `bin` frames.
pub const BIN_TYPE: u8 = 12;
/// Cap on any zlib inflation of frame content.
pub const MAX_INFLATED: usize = 32 * 1024 * 1024;
const MAX_METADATA: usize = 255;

/// The name of a binary payload type; unnamed numbers read as `binary:<n>`.
pub fn payload_type_name(number: u8) -> String {
    match number {
        1 => "raw_audio".into(),
        2 => "numpy_image".into(),
        3 => "file".into(),
        4 => "stt_transcribe".into(),
        5 => "stt_handle".into(),
        6 => "tts_audio".into(),
        n => format!("binary:{n}"),
    }
}

/// The payload of a decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire1Payload {
    /// The raw bytes of a `bin` frame.
    Binary(Vec<u8>),
    /// The JSON object of any other frame.
    Json(Map<String, Value>),
}

/// A decoded WIRE-1 frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Wire1Frame {
    /// The message type (`bin`, `bus`, ...).
    pub msg_type: String,
    /// The metadata object.
    pub metadata: Map<String, Value>,
    /// The payload.
    pub payload: Wire1Payload,
    /// The 4-bit payload type of a `bin` frame.
    pub bin_type: Option<u8>,
    /// The version, when the frame carries one.
    pub version: Option<u8>,
    /// True when metadata (and a JSON payload) were zlib streams.
    pub compressed: bool,
}

impl Wire1Frame {
    /// The payload type name of a `bin` frame (`binary:<n>` if unnamed).
    pub fn kind(&self) -> Option<String> {
        self.bin_type.map(payload_type_name)
    }

    /// A non-empty string metadata value.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// What was spoken (TTS frames).
    pub fn utterance(&self) -> Option<&str> {
        self.text("utterance")
    }

    /// The language.
    pub fn lang(&self) -> Option<&str> {
        self.text("lang")
    }

    /// A file name hint.
    pub fn file_name(&self) -> Option<&str> {
        self.text("file_name")
    }

    /// The JSON envelope a non-`bin` frame stands for.
    pub fn to_envelope(&self) -> Result<HiveMessage> {
        match &self.payload {
            Wire1Payload::Json(payload) => {
                let mut envelope = HiveMessage::new(&self.msg_type, payload.clone());
                envelope.metadata = self.metadata.clone();
                Ok(envelope)
            }
            Wire1Payload::Binary(_) => Err(ProtocolError::Wire1("a bin frame carries no JSON envelope".into())),
        }
    }
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn take(&mut self, count: usize) -> Result<u64> {
        if self.pos + count > self.data.len() * 8 {
            return Err(ProtocolError::Wire1("binary frame truncated".into()));
        }
        let mut value = 0u64;
        for _ in 0..count {
            let byte = self.data[self.pos / 8];
            value = (value << 1) | u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(value)
    }

    fn take_bytes(&mut self, count: usize) -> Result<Vec<u8>> {
        (0..count).map(|_| self.take(8).map(|b| b as u8)).collect()
    }

    /// Every whole byte from the current position (trailing partial-byte bits dropped).
    fn rest(&self) -> Vec<u8> {
        let shift = self.pos % 8;
        let start = self.pos / 8;
        if shift == 0 {
            return self.data[start..].to_vec();
        }
        let tail = &self.data[start..];
        tail.windows(2).map(|pair| (pair[0] << shift) | (pair[1] >> (8 - shift))).collect()
    }
}

fn inflate(data: &[u8]) -> Result<Vec<u8>> {
    let mut inflater = Decompress::new(true);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(1 << 20));
    loop {
        if out.len() == out.capacity() {
            if out.len() > MAX_INFLATED {
                return Err(ProtocolError::Wire1(format!("inflated content exceeds {MAX_INFLATED} bytes")));
            }
            out.reserve(out.len().max(4096));
        }
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or_default();
        let before_out = inflater.total_out();
        let status = inflater
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|_| ProtocolError::Wire1("corrupt zlib stream".into()))?;
        if out.len() > MAX_INFLATED {
            return Err(ProtocolError::Wire1(format!("inflated content exceeds {MAX_INFLATED} bytes")));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            _ if inflater.total_out() == before_out
                && usize::try_from(inflater.total_in()).unwrap_or(usize::MAX) == consumed
                && out.len() < out.capacity() =>
            {
                return Err(ProtocolError::Wire1("truncated zlib stream".into()));
            }
            _ => {}
        }
    }
}

fn json_object(data: &[u8], what: &str) -> Result<Map<String, Value>> {
    parse_json_object(data, what).map_err(|e| match e {
        ProtocolError::Envelope(reason) => ProtocolError::Wire1(reason),
        other => other,
    })
}

/// Decode one WIRE-1 frame; every malformation is a [`ProtocolError::Wire1`].
pub fn decode_frame(data: &[u8]) -> Result<Wire1Frame> {
    let first =
        data.iter().position(|&b| b != 0).ok_or_else(|| ProtocolError::Wire1("no start bit in binary frame".into()))?;
    let start = data[first].leading_zeros() as usize;
    let mut bits = Bits { data: &data[first..], pos: start + 1 };
    let mut version = None;
    if bits.take(1)? == 1 {
        let v = bits.take(8)? as u8;
        if v > 1 {
            return Err(ProtocolError::Wire1(format!("unsupported WIRE-1 version {v}")));
        }
        version = Some(v);
    }
    let type_number = bits.take(5)? as u8;
    let compressed = bits.take(1)? == 1;
    let metalen = bits.take(8)? as usize;
    let mut raw_meta = bits.take_bytes(metalen)?;
    if compressed && !raw_meta.is_empty() {
        raw_meta = inflate(&raw_meta)?;
    }
    let metadata = if raw_meta.is_empty() { Map::new() } else { json_object(&raw_meta, "frame metadata")? };
    let msg_type = message_type_name(type_number).to_string();
    if type_number == BIN_TYPE {
        let bin_type = bits.take(4)? as u8;
        let payload = bits.rest();
        return Ok(Wire1Frame {
            msg_type,
            metadata,
            payload: Wire1Payload::Binary(payload),
            bin_type: Some(bin_type),
            version,
            compressed,
        });
    }
    let mut body = bits.rest();
    if compressed {
        body = inflate(&body)?;
    }
    let payload = json_object(&body, "frame payload")?;
    Ok(Wire1Frame { msg_type, metadata, payload: Wire1Payload::Json(payload), bin_type: None, version, compressed })
}

fn metadata_bytes(metadata: &Map<String, Value>, compress: Option<bool>) -> Result<(Vec<u8>, bool)> {
    let raw = python_json(&Value::Object(metadata.clone()));
    let compress = compress.unwrap_or(raw.len() > MAX_METADATA);
    let raw = if compress { deflate(&raw)? } else { raw };
    if raw.len() > MAX_METADATA {
        return Err(ProtocolError::Wire1("metadata exceeds 255 bytes even when compressed".into()));
    }
    Ok((raw, compress))
}

fn deflate(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).map_err(|e| ProtocolError::Wire1(format!("deflate: {e}")))?;
    encoder.finish().map_err(|e| ProtocolError::Wire1(format!("deflate: {e}")))
}

/// JSON as Python's `json.dumps` writes it by default: `", "` and `": "` separators and
/// non-ASCII characters escaped (`ensure_ascii`).
fn python_json(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_python(value, &mut out);
    out.into_bytes()
}

fn write_python(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_string(key, out, true);
                out.push_str(": ");
                write_python(item, out);
            }
            out.push('}');
        }
        Value::String(text) => write_json_string(text, out, true),
        other => out.push_str(&other.to_string()),
    }
}

/// Start bit, versioned header, metadata and `tail_bits` of `tail`, left-padded with zero
/// bits to whole bytes (so whatever follows is byte-aligned).
fn pack(type_number: u8, compressed: bool, meta: &[u8], tail_bits: usize, tail: u8) -> Vec<u8> {
    let mut bits: Vec<bool> = Vec::with_capacity(24 + meta.len() * 8 + tail_bits + 7);
    let mut push = |value: u64, count: usize| {
        for i in (0..count).rev() {
            bits.push((value >> i) & 1 == 1);
        }
    };
    push(1, 1); // start bit
    push(1, 1); // versioned
    push(1, 8); // version 1
    push(u64::from(type_number), 5);
    push(u64::from(compressed), 1);
    push(meta.len() as u64, 8);
    for &byte in meta {
        push(u64::from(byte), 8);
    }
    push(u64::from(tail), tail_bits);
    let padding = (8 - bits.len() % 8) % 8;
    let mut padded = vec![false; padding];
    padded.extend(bits);
    padded.chunks(8).map(|chunk| chunk.iter().fold(0u8, |acc, &bit| (acc << 1) | u8::from(bit))).collect()
}

/// Encode a `bin` frame (metadata compressed when it would exceed 255 bytes; the payload
/// never is). `bin_type` must fit in 4 bits.
pub fn encode_binary(payload: &[u8], bin_type: u8, metadata: &Map<String, Value>) -> Result<Vec<u8>> {
    if bin_type > 15 {
        return Err(ProtocolError::Wire1(format!("payload type {bin_type} does not fit in 4 bits")));
    }
    let (meta, compressed) = metadata_bytes(metadata, None)?;
    let mut out = pack(BIN_TYPE, compressed, &meta, 4, bin_type);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Encode a JSON-carrying message type as a WIRE-1 frame; when the metadata is compressed
/// the payload is too.
pub fn encode_json(msg_type: &str, payload: &Map<String, Value>, metadata: &Map<String, Value>) -> Result<Vec<u8>> {
    let number = message_type_number(msg_type)
        .filter(|n| *n != BIN_TYPE)
        .ok_or_else(|| ProtocolError::Wire1(format!("message type {msg_type:?} has no JSON WIRE-1 encoding")))?;
    let (meta, compressed) = metadata_bytes(metadata, None)?;
    let mut body = python_json(&Value::Object(payload.clone()));
    if compressed {
        body = deflate(&body)?;
    }
    let mut out = pack(number, compressed, &meta, 0, 0);
    out.extend_from_slice(&body);
    Ok(out)
}
