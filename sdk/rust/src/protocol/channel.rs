//! The secure channel of an established session: Noise transport plus framing (spec 3.11).
//!
//! A finished handshake splits into a [`Sealer`] (this side's sending direction) and an
//! [`Opener`] (the receiving direction), each with its own strictly sequential nonce, so a
//! reader task and a writer can use them independently. Messages must be opened in the order
//! they were sealed; any decryption or framing failure is fatal for the session.

use std::sync::Arc;

use super::errors::{ProtocolError, Result};
use super::framing::{CHUNK_SIZE, Frame, MAX_TRANSPORT_MESSAGE, Reassembler, split_plaintext};
use super::noise::TAGLEN;

type Transport = Arc<snow::StatelessTransportState>;

/// Both directions of one finished handshake.
pub fn split(transport: snow::StatelessTransportState) -> (Sealer, Opener) {
    let transport = Arc::new(transport);
    (Sealer { transport: transport.clone(), nonce: 0 }, Opener { transport, nonce: 0, reassembler: Reassembler::new() })
}

/// The sending direction: bodies in, transport messages out.
pub struct Sealer {
    transport: Transport,
    nonce: u64,
}

impl Sealer {
    /// The transport messages carrying one JSON envelope body (chunked above 65000 bytes).
    pub fn seal_json(&mut self, body: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.seal(body, false)
    }

    /// The transport messages carrying one WIRE-1 frame.
    pub fn seal_binary(&mut self, body: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.seal(body, true)
    }

    fn seal(&mut self, body: &[u8], binary: bool) -> Result<Vec<Vec<u8>>> {
        split_plaintext(body, binary, CHUNK_SIZE).iter().map(|plain| self.encrypt(plain)).collect()
    }

    fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        if self.nonce == u64::MAX {
            return Err(ProtocolError::Handshake("Noise nonce counter exhausted".into()));
        }
        let mut out = vec![0u8; plaintext.len() + TAGLEN];
        let size = self
            .transport
            .write_message(self.nonce, plaintext, &mut out)
            .map_err(|e| ProtocolError::Handshake(format!("cannot encrypt: {e}")))?;
        out.truncate(size);
        self.nonce += 1;
        Ok(out)
    }
}

/// The receiving direction: transport messages in, complete frames out.
pub struct Opener {
    transport: Transport,
    nonce: u64,
    reassembler: Reassembler,
}

impl Opener {
    /// Decrypt one transport message; the frame it completes, if any.
    pub fn open(&mut self, message: &[u8]) -> Result<Option<Frame>> {
        if message.len() > MAX_TRANSPORT_MESSAGE {
            return Err(ProtocolError::Framing(format!(
                "transport message of {} bytes exceeds {MAX_TRANSPORT_MESSAGE}",
                message.len()
            )));
        }
        if message.len() < TAGLEN {
            return Err(ProtocolError::Decrypt("transport message shorter than its tag".into()));
        }
        if self.nonce == u64::MAX {
            return Err(ProtocolError::Handshake("Noise nonce counter exhausted".into()));
        }
        let mut plain = vec![0u8; message.len()];
        let size = self
            .transport
            .read_message(self.nonce, message, &mut plain)
            .map_err(|_| ProtocolError::Decrypt("transport message".into()))?;
        plain.truncate(size);
        self.nonce += 1;
        self.reassembler.feed(plain)
    }
}
