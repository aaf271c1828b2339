//! Transport framing after the handshake (spec 3.11): marker bytes, chunking, reassembly.
//!
//! Every Noise transport message decrypts to one marker byte and a body. Bodies larger than
//! [`CHUNK_SIZE`] travel as a first chunk, middle chunks and a last chunk, in order and with
//! nothing in between. This module neither encrypts nor does I/O.

use super::errors::{ProtocolError, Result};

/// The first byte of every decrypted transport message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Marker {
    /// A complete JSON envelope.
    Json = 0x00,
    /// A complete WIRE-1 binary frame.
    Binary = 0x01,
    /// First chunk of a JSON envelope.
    JsonFirst = 0x02,
    /// First chunk of a binary frame.
    BinaryFirst = 0x03,
    /// Middle chunk.
    Middle = 0x04,
    /// Last chunk.
    Last = 0x05,
}

/// Largest body one transport message carries.
pub const CHUNK_SIZE: usize = 65000;
/// Largest Noise transport message (ciphertext) accepted.
pub const MAX_TRANSPORT_MESSAGE: usize = 65535;
/// Largest body a chunked sequence may reassemble to.
pub const MAX_REASSEMBLY: usize = 32 * 1024 * 1024;

/// One complete application frame: a JSON envelope (`binary` false) or a WIRE-1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// True for a WIRE-1 frame.
    pub binary: bool,
    /// The frame's bytes.
    pub body: Vec<u8>,
}

/// The marker-prefixed plaintexts that carry `body`, in sending order.
pub fn split_plaintext(body: &[u8], binary: bool, chunk_size: usize) -> Vec<Vec<u8>> {
    let chunk_size = chunk_size.max(1);
    let with_marker = |marker: Marker, part: &[u8]| {
        let mut out = Vec::with_capacity(part.len() + 1);
        out.push(marker as u8);
        out.extend_from_slice(part);
        out
    };
    if body.len() <= chunk_size {
        return vec![with_marker(if binary { Marker::Binary } else { Marker::Json }, body)];
    }
    let chunks: Vec<&[u8]> = body.chunks(chunk_size).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let marker = match index {
                0 if binary => Marker::BinaryFirst,
                0 => Marker::JsonFirst,
                i if i == last => Marker::Last,
                _ => Marker::Middle,
            };
            with_marker(marker, part)
        })
        .collect()
}

/// Turns the plaintexts of one direction back into frames, enforcing spec 3.11. After any
/// violation the stream is dead and every later call fails too.
#[derive(Debug, Default)]
pub struct Reassembler {
    parts: Option<Vec<u8>>,
    binary: bool,
    failed: bool,
}

impl Reassembler {
    /// A fresh reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a chunked sequence has begun and not ended.
    pub fn in_sequence(&self) -> bool {
        self.parts.is_some()
    }

    /// Consume one decrypted transport message (handed over: a complete frame or a first chunk
    /// keeps its buffer); the frame it completes, if any.
    pub fn feed(&mut self, mut plaintext: Vec<u8>) -> Result<Option<Frame>> {
        if self.failed {
            return Err(ProtocolError::Framing("the frame stream already failed".into()));
        }
        let Some(&marker) = plaintext.first() else {
            return Err(self.fail("empty transport plaintext"));
        };
        match marker {
            0x00 | 0x01 => {
                if self.parts.is_some() {
                    return Err(self.fail("complete frame inside a chunked sequence"));
                }
                plaintext.remove(0);
                Ok(Some(Frame { binary: marker == 0x01, body: plaintext }))
            }
            0x02 | 0x03 => {
                if self.parts.is_some() {
                    return Err(self.fail("first chunk inside another chunked sequence"));
                }
                self.binary = marker == 0x03;
                plaintext.remove(0);
                self.parts = Some(plaintext);
                Ok(None)
            }
            0x04 | 0x05 => {
                let Some(parts) = self.parts.as_mut() else {
                    return Err(self.fail("middle or last chunk without a first chunk"));
                };
                let rest = &plaintext[1..];
                if parts.len() + rest.len() > MAX_REASSEMBLY {
                    return Err(self.fail("reassembled frame exceeds 32 MiB"));
                }
                parts.extend_from_slice(rest);
                if marker == 0x04 {
                    return Ok(None);
                }
                let body = self.parts.take().unwrap_or_default();
                Ok(Some(Frame { binary: self.binary, body }))
            }
            other => Err(self.fail(&format!("unknown marker 0x{other:02x}"))),
        }
    }

    fn fail(&mut self, reason: &str) -> ProtocolError {
        self.failed = true;
        self.parts = None;
        ProtocolError::Framing(reason.to_string())
    }
}
