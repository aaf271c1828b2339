//! The pre-shared key of a client identity (data-plane spec 3.5).
//!
//! [`derive_psk`] costs about 0.1 s of CPU and 64 MiB of memory: derive once per (access key,
//! node id), cache it, and never run it on an async worker (use `spawn_blocking`).

use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

use super::errors::{ProtocolError, Result};

/// Length of the pre-shared key.
pub const PSK_LENGTH: usize = 32;
/// argon2id time cost.
pub const ARGON2_ITERATIONS: u32 = 3;
/// argon2id memory cost in KiB (64 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 65536;
/// argon2id parallelism.
pub const ARGON2_LANES: u32 = 1;

/// argon2id(UTF-8 password, salt = SHA-256(UTF-8 node_id), t=3, m=64 MiB, p=1) -> 32 bytes.
pub fn derive_psk(password: &str, node_id: &str) -> Result<[u8; PSK_LENGTH]> {
    let salt = Sha256::digest(node_id.as_bytes());
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, Some(PSK_LENGTH))
        .map_err(|e| ProtocolError::Handshake(format!("argon2 parameters: {e}")))?;
    let mut out = [0u8; PSK_LENGTH];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|e| ProtocolError::Handshake(format!("argon2id failed: {e}")))?;
    Ok(out)
}
