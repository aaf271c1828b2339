//! Client-side carriers: I/O adapters between a transport (WebSocket, HTTPS polling, MQTT)
//! and the protocol engine. A carrier moves cleartext negotiation text and Noise transport
//! messages, in order, and reports how a session ended with the carrier's own evidence (a
//! WebSocket close code, an HTTP status). It knows nothing of Noise, envelopes or bus
//! messages; the link decides, with its clocks, what a close means.
//!
//! Each carrier runs its own reader task and hands inbound messages over a channel, so the
//! receiving side ([`Inbound`]) and the sending side ([`Carrier`]) can live in different tasks.

pub mod https;
pub mod mqtt;
#[cfg(test)]
pub mod scripted;
pub mod wss;

use std::time::Duration;

use base64::Engine;
use tokio::sync::mpsc;

use crate::errors::{Error, Result};
use crate::identity::Identity;
use crate::noise_store::https_pin_id;
use crate::protocols::HubProtocol;

/// One message from the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A cleartext negotiation message.
    Text(String),
    /// A Noise transport message.
    Binary(Vec<u8>),
}

/// How a session ended: the carrier's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// What happened (never a credential).
    pub message: String,
    /// A WebSocket close code or an HTTP status; None when no close frame came.
    pub code: Option<u16>,
    /// True when the evidence is of the kind a hub uses to refuse credentials (WSS
    /// 1000/1005/1008, HTTPS 401/403).
    pub refusal_signal: bool,
    /// True when a send failed because the hub had already ended the session (a WebSocket
    /// send after the hub's close frame, or into a connection it closed): the send has no
    /// evidence of its own, and the end the reader received ([`Inbound`]'s last item) is the
    /// evidence. The link judges the failure on that (see [`crate::runtime::policy`]).
    pub after_end: bool,
}

impl Closed {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: None, refusal_signal: false, after_end: false }
    }

    /// A send that failed because the session had already ended (see [`Self::after_end`]).
    pub(crate) fn after_end(message: impl Into<String>) -> Self {
        Self { after_end: true, ..Self::new(message) }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first way a session ended, kept for every later caller.
#[derive(Debug, Default)]
pub(crate) struct FirstFailure(std::sync::Mutex<Option<Closed>>);

impl FirstFailure {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Closed>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record `closed` unless an earlier failure is already recorded.
    pub(crate) fn set(&self, closed: &Closed) {
        let mut slot = self.slot();
        if slot.is_none() {
            *slot = Some(closed.clone());
        }
    }

    /// The recorded failure.
    pub(crate) fn get(&self) -> Option<Closed> {
        self.slot().clone()
    }
}

/// Why a carrier did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The hub refused the carrier credential (HTTP 401 or 403).
    Refused(String),
    /// DNS, TCP, TLS, an unexpected status, a broker refusal.
    Failed(String),
    /// Not open within the timeout.
    Timeout,
}

/// The receiving side of a session: messages from the hub, in order, then the end.
pub type Inbound = mpsc::Receiver<std::result::Result<Incoming, Closed>>;

/// `base64("<useragent>:<access_key>")`, the carrier credential of WSS and HTTPS.
pub fn authorization_value(useragent: &str, access_key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{useragent}:{access_key}"))
}

/// The endpoint URL with any `authorization` query item replaced by this client's.
pub fn authorized_url(endpoint: &str, useragent: &str, access_key: &str) -> std::result::Result<url::Url, String> {
    let mut url = url::Url::parse(endpoint).map_err(|e| format!("invalid endpoint URL: {e}"))?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "authorization")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        query.append_pair("authorization", &authorization_value(useragent, access_key));
    }
    if url.path().is_empty() {
        url.set_path("/");
    }
    Ok(url)
}

/// One session with a hub over one transport; use a fresh one per connect attempt.
pub enum Carrier {
    /// WebSocket.
    Wss(wss::WssCarrier),
    /// HTTPS polling.
    Https(https::HttpsCarrier),
    /// MQTT.
    Mqtt(mqtt::MqttCarrier),
    /// The crate's tests only: a carrier whose hub is a script.
    #[cfg(test)]
    Scripted(scripted::ScriptedCarrier),
}

impl Carrier {
    /// A fresh carrier of `protocol` for `identity`; `ca_file` replaces the trust variables
    /// (see [`crate::tls`]).
    pub fn new(
        protocol: HubProtocol,
        identity: &Identity,
        useragent: &str,
        session_id: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self> {
        let tls = crate::tls::client_config_for(ca_file)?;
        Ok(match protocol {
            HubProtocol::Wss => {
                let endpoint = identity.endpoint_for(HubProtocol::Wss).ok_or_else(|| {
                    Error::UnsupportedProtocol("This identity has no WSS endpoint; it cannot use wss.".into())
                })?;
                Self::Wss(wss::WssCarrier::new(&endpoint, &identity.access_key, useragent, tls)?)
            }
            HubProtocol::Https => {
                Self::Https(https::HttpsCarrier::new(&identity.endpoint_base(), &identity.access_key, useragent, tls))
            }
            HubProtocol::Mqtt => {
                let settings = mqtt::MqttSettings::from_identity(identity)?;
                Self::Mqtt(mqtt::MqttCarrier::new(
                    settings,
                    https_pin_id(&identity.endpoint_base()),
                    &identity.site_id,
                    session_id,
                    tls,
                ))
            }
        })
    }

    /// The protocol.
    pub fn protocol(&self) -> HubProtocol {
        match self {
            Self::Wss(_) => HubProtocol::Wss,
            Self::Https(_) => HubProtocol::Https,
            Self::Mqtt(_) => HubProtocol::Mqtt,
            #[cfg(test)]
            Self::Scripted(_) => HubProtocol::Mqtt,
        }
    }

    /// True when the hub's channel to this client outlives the session and is shared with the
    /// identity's other sessions (MQTT's `<prefix>/out`): the negotiation then skips the hub's
    /// answers to another session. WSS and HTTPS sessions have a channel of their own.
    pub fn shared_inbound(&self) -> bool {
        match self {
            Self::Wss(_) | Self::Https(_) => false,
            Self::Mqtt(_) => mqtt::MqttCarrier::SHARED_INBOUND,
            #[cfg(test)]
            Self::Scripted(c) => c.shared_inbound,
        }
    }

    /// The endpoint id the hub's Noise key is pinned under (spec 1.8).
    pub fn pin_id(&self) -> Result<String> {
        match self {
            Self::Wss(c) => c.pin_id(),
            Self::Https(c) => Ok(c.pin_id()),
            Self::Mqtt(c) => Ok(c.pin_id()),
            #[cfg(test)]
            Self::Scripted(c) => Ok(c.endpoint()),
        }
    }

    /// The endpoint dialled, without credentials.
    pub fn endpoint(&self) -> String {
        match self {
            Self::Wss(c) => c.endpoint(),
            Self::Https(c) => c.endpoint(),
            Self::Mqtt(c) => c.endpoint(),
            #[cfg(test)]
            Self::Scripted(c) => c.endpoint(),
        }
    }

    /// Open the session within `timeout`; returns the receiving side.
    pub async fn open(&mut self, timeout: Duration) -> std::result::Result<Inbound, OpenError> {
        match self {
            Self::Wss(c) => c.open(timeout).await,
            Self::Https(c) => c.open(timeout).await,
            Self::Mqtt(c) => c.open(timeout).await,
            #[cfg(test)]
            Self::Scripted(c) => Ok(c.open()),
        }
    }

    /// Send one cleartext negotiation message.
    pub async fn send_text(&self, text: String) -> std::result::Result<(), Closed> {
        match self {
            Self::Wss(c) => c.send_text(text).await,
            Self::Https(c) => c.send_text(text).await,
            Self::Mqtt(c) => c.send(text.into_bytes(), false).await,
            #[cfg(test)]
            Self::Scripted(c) => c.send(crate::protocol::negotiation::Outgoing::Text(text)),
        }
    }

    /// Send one Noise transport message.
    pub async fn send_binary(&self, data: Vec<u8>) -> std::result::Result<(), Closed> {
        match self {
            Self::Wss(c) => c.send_binary(data).await,
            Self::Https(c) => c.send_binary(data).await,
            Self::Mqtt(c) => c.send(data, true).await,
            #[cfg(test)]
            Self::Scripted(c) => c.send(crate::protocol::negotiation::Outgoing::Binary(data)),
        }
    }

    /// True while the session is open and healthy.
    pub fn alive(&self) -> bool {
        match self {
            Self::Wss(c) => c.alive(),
            Self::Https(c) => c.alive(),
            Self::Mqtt(c) => c.alive(),
            #[cfg(test)]
            Self::Scripted(c) => c.alive(),
        }
    }

    /// Close normally (WSS 1000, HTTPS `/disconnect`, MQTT `offline` then DISCONNECT);
    /// idempotent, never fails.
    pub async fn close(&self) {
        match self {
            Self::Wss(c) => c.close().await,
            Self::Https(c) => c.close().await,
            Self::Mqtt(c) => c.close().await,
            #[cfg(test)]
            Self::Scripted(c) => c.close(),
        }
    }
}
