//! Thalovant SDK for Rust: discover hubs and provision client identities on the control plane,
//! then reach a hub over WSS, HTTPS polling or MQTT with the runtime [`Client`].
//!
//! ```no_run
//! use thalovant::{BootstrapIdentityOptions, Client, ControlPlane, HubProtocol, RequestOptions};
//!
//! # async fn run() -> thalovant::Result<()> {
//! let mut api = ControlPlane::default();
//! let result = api
//!     .create_client_identity_for_hub_id(
//!         "hub-id",
//!         BootstrapIdentityOptions { name: "rust-demo-client".into(), ..Default::default() },
//!     )
//!     .await?;
//! let client = Client::with_protocol(result.identity.clone(), HubProtocol::Wss)?;
//! let reply = client.ask("Tell me a short clean joke.", RequestOptions::default()).await?;
//! println!("{}", reply.text);
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod carriers;
pub mod client;
pub mod config;
pub mod context;
pub mod control;
pub mod errors;
pub mod events;
mod http;
pub mod identity;
pub mod models;
pub mod noise_store;
pub mod protocol;
pub mod protocols;
pub mod runtime;
pub mod tls;

pub use client::{
    ActionOptions, Client, ClientOptions, CodeOptions, Conversation, ConversationOptions, RequestOptions, Transport,
};
pub use context::{ClientContextOptions, build_client_context};
pub use control::{BootstrapIdentityOptions, BootstrapIdentityResult, ControlPlane, Hub, Page};
pub use errors::{ApiError, ApiErrorKind, Error, PolicyDenied, Result};
pub use events::{DisplayItem, Event};
pub use identity::{Identity, MqttBrokerCredentials};
pub use models::{Health, Reply};
pub use protocols::{DEFAULT_PROTOCOL_PREFERENCE, HubProtocol};
