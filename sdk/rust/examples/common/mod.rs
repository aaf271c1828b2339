//! The values the guide leaves to the reader, for the runnable examples.
//!
//! - `THALOVANT_HUB_ID`: the guide's `"hub-id"`;
//! - `THALOVANT_PROTOCOL`: the carrier (`wss`, `https` or `mqtt`; the guide shows `wss`);
//! - the identity file is the guide's own `_identity.json` in the working directory.
#![allow(dead_code)]

use thalovant::{HubProtocol, Identity};

/// The hub id the guide writes as `"hub-id"`.
pub fn hub_id() -> String {
    std::env::var("THALOVANT_HUB_ID").unwrap_or_else(|_| "hub-id".to_string())
}

/// The carrier to use (default: WSS, as the guide).
pub fn protocol() -> HubProtocol {
    std::env::var("THALOVANT_PROTOCOL").ok().and_then(|p| HubProtocol::parse(&p)).unwrap_or(HubProtocol::Wss)
}

/// The identity the runtime snippets start from ("after you have identity material").
pub fn identity() -> thalovant::Result<Identity> {
    Identity::from_file("_identity.json")
}
