//! Noise (revision 34) for `XXpsk2` and `KKpsk0` on the `snow` crate (data-plane spec 3.7).
//!
//! The client is always the initiator. [`Handshake`] wraps one `snow` handshake in the
//! initiator role; once finished it splits into a stateless transport whose two directions
//! keep their own nonce counters ([`super::channel`]). Every failure is a
//! [`ProtocolError::Handshake`] or, when a tag does not verify, [`ProtocolError::Decrypt`].

use std::fmt;

use snow::params::NoiseParams;

use super::errors::{ProtocolError, Result};

/// The patterns this engine speaks.
pub const PATTERNS: [&str; 2] = ["XXpsk2", "KKpsk0"];
/// The cipher suites this engine speaks.
pub const SUITES: [&str; 2] = ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"];
/// Largest Noise message (handshake or transport), in bytes.
pub const MAX_MESSAGE: usize = 65535;
/// X25519 key length.
pub const DHLEN: usize = 32;
/// AEAD tag length.
pub const TAGLEN: usize = 16;

/// The full Noise protocol name, e.g. `Noise_XXpsk2_25519_ChaChaPoly_SHA256`.
pub fn protocol_name(pattern: &str, suite: &str) -> Result<String> {
    if !PATTERNS.contains(&pattern) {
        return Err(ProtocolError::Handshake(format!("unsupported Noise pattern {pattern:?}")));
    }
    if !SUITES.contains(&suite) {
        return Err(ProtocolError::Handshake(format!("unsupported Noise cipher suite {suite:?}")));
    }
    Ok(format!("Noise_{pattern}_{suite}"))
}

/// An X25519 key pair as raw bytes; `Debug` shows the public key only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    private: [u8; DHLEN],
    /// The public key.
    pub public: [u8; DHLEN],
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Result<Self> {
        let mut private = [0u8; DHLEN];
        getrandom::fill(&mut private).map_err(|e| ProtocolError::Handshake(format!("no randomness: {e}")))?;
        Ok(Self::from_private(private))
    }

    /// The key pair of a raw private key.
    pub fn from_private(private: [u8; DHLEN]) -> Self {
        let public = curve25519_dalek::MontgomeryPoint::mul_base_clamped(private).to_bytes();
        Self { private, public }
    }

    /// The raw private key (for the key file only).
    pub fn private_bytes(&self) -> &[u8; DHLEN] {
        &self.private
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair(public={})", hex::encode(self.public))
    }
}

fn snow_error(error: snow::Error) -> ProtocolError {
    match error {
        snow::Error::Decrypt => ProtocolError::Decrypt("wrong key, tamper or reorder".into()),
        other => ProtocolError::Handshake(other.to_string()),
    }
}

/// The initiator side of one Noise handshake.
pub struct Handshake {
    state: snow::HandshakeState,
    pattern: &'static str,
}

impl Handshake {
    /// Start a handshake as initiator. `remote_static` is required for KKpsk0 (the pinned hub
    /// key) and ignored for XXpsk2; the PSK sits at position 0 (KK) or 2 (XX).
    pub fn initiator(
        pattern: &str,
        suite: &str,
        prologue: &[u8],
        psk: &[u8; 32],
        static_key: &KeyPair,
        remote_static: Option<&[u8; DHLEN]>,
    ) -> Result<Self> {
        let name = protocol_name(pattern, suite)?;
        let params: NoiseParams = name.parse().map_err(snow_error)?;
        let (pattern, location) = if pattern == "KKpsk0" { ("KKpsk0", 0) } else { ("XXpsk2", 2) };
        let mut builder = snow::Builder::new(params)
            .local_private_key(static_key.private_bytes())
            .and_then(|b| b.prologue(prologue))
            .and_then(|b| b.psk(location, psk))
            .map_err(snow_error)?;
        if pattern == "KKpsk0" {
            let remote = remote_static.ok_or_else(|| ProtocolError::Handshake("KKpsk0 needs the hub's key".into()))?;
            builder = builder.remote_public_key(remote).map_err(snow_error)?;
        }
        let state = builder.build_initiator().map_err(snow_error)?;
        Ok(Self { state, pattern })
    }

    /// The pattern of this handshake.
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// The next handshake message carrying `payload`.
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; MAX_MESSAGE];
        let size = self.state.write_message(payload, &mut out).map_err(snow_error)?;
        out.truncate(size);
        Ok(out)
    }

    /// Process the peer's next handshake message; returns its payload.
    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        if message.len() > MAX_MESSAGE {
            return Err(ProtocolError::Handshake("handshake message exceeds 65535 bytes".into()));
        }
        let mut out = vec![0u8; MAX_MESSAGE];
        let size = self.state.read_message(message, &mut out).map_err(snow_error)?;
        out.truncate(size);
        Ok(out)
    }

    /// True once every handshake message was written or read.
    pub fn finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// The peer's static key (known in advance for KK, learned during XX).
    pub fn remote_static(&self) -> Option<[u8; DHLEN]> {
        self.state.get_remote_static().and_then(|key| key.try_into().ok())
    }

    /// The transport of a finished handshake.
    pub fn into_transport(self) -> Result<snow::StatelessTransportState> {
        self.state.into_stateless_transport_mode().map_err(snow_error)
    }
}
