//! The HiveMind v3 negotiation, client (initiator) side, as a sans-I/O state machine
//! (spec 3.1-3.10).
//!
//! ```text
//! AwaitHello --HELLO--> AwaitOffer --offer--> NeedsPsk --start(psk)--> AwaitMsg2
//! AwaitMsg2 --message 2--> Complete   (returns message 3 for XX, then the encrypted HELLO)
//! ```
//!
//! Feed every cleartext hub message to [`ClientNegotiation::receive_text`]. After the offer
//! [`ClientNegotiation::needs_psk`] is true and `node_id` known: derive the PSK off the async
//! workers and call [`ClientNegotiation::start`] for message 1. Any error moves the machine to
//! `Dead`; every later call fails again.
//!
//! On a channel the hub's messages to this client share with other sessions of the same
//! identity (MQTT's `<prefix>/out`), [`ClientNegotiation::with_shared_channel`] makes the
//! machine skip what the hub sent those sessions (see [`ClientNegotiation::receive_text`]).
//!
//! Errors: [`ProtocolError::KkFailed`] (retry at once with `force_xx` on a fresh carrier
//! session), [`ProtocolError::HubKeyChanged`], [`ProtocolError::Decrypt`] for an XX message 2
//! that does not authenticate (a refusal: wrong password or tampered negotiation),
//! [`ProtocolError::NegotiationSuperseded`] (shared channel only: retry at once on a fresh
//! carrier session) and [`ProtocolError::Negotiation`] for everything malformed or out of
//! order.

use serde_json::{Map, Value, json};

use super::canonical::{build_prologue, canonical_json};
use super::channel::{Opener, Sealer, split};
use super::envelope::{HiveMessage, parse_json_object};
use super::errors::{ProtocolError, Result};
use super::framing::MAX_TRANSPORT_MESSAGE;
use super::noise::{DHLEN, Handshake, KeyPair, protocol_name};

const XX: &str = "XXpsk2";
const KK: &str = "KKpsk0";
/// The client's suite preference; the hub's order is ignored (spec 3.4).
pub const CLIENT_PREFERRED_SUITES: [&str; 2] = ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"];
/// Longest hex string a handshake envelope may carry (65535 bytes).
pub const MAX_HANDSHAKE_HEX: usize = 2 * MAX_TRANSPORT_MESSAGE;
/// The payload of message 1.
pub const MESSAGE1_PAYLOAD: &[u8] = br#"{"binarize":false,"encodings":[]}"#;

const MALFORMED: &str = "Malformed HiveMind negotiation";
const MALFORMED_SHAKE: &str = "Malformed Noise handshake envelope";
const OUT_OF_ORDER: &str = "Out-of-order Noise negotiation";
const NO_MATCH: &str = "No supported Noise pattern and cipher suite.";
const SUPERSEDED: &str =
    "The hub restarted the negotiation with another HELLO or offer than the one message 1 was built on.";

/// Pick `(pattern, suite)` from an offer's `noise` object (spec 3.4): the first of
/// ChaChaPoly, AESGCM that the hub offers; KKpsk0 when the client holds a pin, the hub offers
/// it and this is not an XX retry, else XXpsk2 if offered.
pub fn select_noise(noise: &Map<String, Value>, pinned: bool, force_xx: bool) -> Result<(&'static str, &'static str)> {
    let strings = |key: &str| -> Vec<String> {
        noise
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let patterns = strings("patterns");
    let suites = strings("suites");
    let suite = CLIENT_PREFERRED_SUITES.iter().copied().find(|s| suites.iter().any(|o| o == s));
    let pattern = if pinned && !force_xx && patterns.iter().any(|p| p == KK) {
        Some(KK)
    } else if patterns.iter().any(|p| p == XX) {
        Some(XX)
    } else {
        None
    };
    match (pattern, suite) {
        (Some(pattern), Some(suite)) => Ok((pattern, suite)),
        _ => Err(ProtocolError::Negotiation(NO_MATCH.into())),
    }
}

/// Something the client must send, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A cleartext negotiation message.
    Text(String),
    /// A Noise transport message.
    Binary(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitOffer,
    NeedsPsk,
    AwaitMsg2,
    Complete,
    Dead,
}

/// Which of the hub's messages message 1 was built on.
#[derive(Debug, Clone, Copy)]
enum Built {
    Hello,
    Offer,
}

/// The client side of one negotiation attempt.
pub struct ClientNegotiation {
    static_key: KeyPair,
    site_id: String,
    session_id: String,
    hub_pin: Option<[u8; DHLEN]>,
    force_xx: bool,
    shared_channel: bool,
    state: State,
    handshake: Option<Handshake>,
    channel: Option<(Sealer, Opener)>,
    /// The hub's node id (after its HELLO).
    pub node_id: Option<String>,
    hello_payload: Option<Map<String, Value>>,
    offer_payload: Option<Map<String, Value>>,
    /// The chosen pattern (after the offer).
    pub pattern: Option<&'static str>,
    /// The chosen suite (after the offer).
    pub suite: Option<&'static str>,
    /// The hub's static key (after completion).
    pub hub_static: Option<[u8; DHLEN]>,
}

impl ClientNegotiation {
    /// A negotiation for this client key, site and session; `hub_pin` is the key pinned for
    /// this endpoint; `force_xx` makes it an XX retry.
    pub fn new(
        static_key: KeyPair,
        site_id: &str,
        session_id: &str,
        hub_pin: Option<[u8; DHLEN]>,
        force_xx: bool,
    ) -> Self {
        Self {
            static_key,
            site_id: site_id.to_string(),
            session_id: session_id.to_string(),
            hub_pin,
            force_xx,
            shared_channel: false,
            state: State::AwaitHello,
            handshake: None,
            channel: None,
            node_id: None,
            hello_payload: None,
            offer_payload: None,
            pattern: None,
            suite: None,
            hub_static: None,
        }
    }

    /// Mark the hub's channel to this client as shared with other sessions of the same
    /// identity (MQTT's `<prefix>/out`): what the hub sent those sessions may arrive before the
    /// answers to this session's HELLO, and is skipped (see [`Self::receive_text`]). Off by
    /// default: every other carrier's channel is its session's own.
    #[must_use]
    pub fn with_shared_channel(mut self, shared: bool) -> Self {
        self.shared_channel = shared;
        self
    }

    /// True between the offer and [`Self::start`].
    pub fn needs_psk(&self) -> bool {
        self.state == State::NeedsPsk
    }

    /// True once the handshake finished and the encrypted HELLO was produced.
    pub fn complete(&self) -> bool {
        self.state == State::Complete
    }

    fn die<T>(&mut self, error: ProtocolError) -> Result<T> {
        self.state = State::Dead;
        self.handshake = None;
        Err(error)
    }

    fn check_alive(&self) -> Result<()> {
        if self.state == State::Dead {
            return Err(ProtocolError::Negotiation("the negotiation already ended".into()));
        }
        Ok(())
    }

    /// Handle one cleartext hub message; what to send back (after message 2 only).
    ///
    /// On a shared channel ([`Self::with_shared_channel`]) the hub's answers to another session
    /// of the same identity may come first, and nothing in the hub's HELLO or offer names the
    /// session it answers (they read the same for every session). All of that arrives before
    /// the hub's answer to this session's HELLO: the hub answers an identity's messages in order
    /// and stops answering a session at a newer HELLO. So, instead of ending the negotiation:
    ///
    /// - before message 1 goes out, the newest HELLO and offer win; an offer without a HELLO
    ///   before it is skipped (its HELLO went to an earlier subscriber), and so is a message 2
    ///   (none of ours is out to be answered);
    /// - after message 1, a HELLO or offer equal to the one it was built on is skipped: message
    ///   1 was built on another session's copy, and the hub reads it against its own, which is
    ///   the same; one that differs ends the negotiation with
    ///   [`ProtocolError::NegotiationSuperseded`].
    pub fn receive_text(&mut self, text: &[u8]) -> Result<Vec<Outgoing>> {
        self.check_alive()?;
        if self.state == State::Complete {
            return self.die(ProtocolError::Negotiation("Plaintext received after Noise authentication".into()));
        }
        let Ok(obj) = parse_json_object(text, "negotiation message") else {
            return self.die(ProtocolError::Negotiation(MALFORMED.into()));
        };
        let Some(payload) = obj.get("payload").and_then(Value::as_object).cloned() else {
            return self.die(ProtocolError::Negotiation(MALFORMED.into()));
        };
        let msg_type = obj.get("msg_type").and_then(Value::as_str).unwrap_or_default();
        if msg_type == "hello" {
            if self.shared_channel && self.state != State::AwaitHello {
                self.repeated_hello(payload)?;
            } else {
                self.hello(payload)?;
            }
            return Ok(Vec::new());
        }
        if msg_type != "shake" && msg_type != "handshake" {
            let shown: String =
                obj.get("msg_type").map(Value::to_string).unwrap_or_default().chars().take(40).collect();
            return self
                .die(ProtocolError::Negotiation(format!("Unexpected {shown} message before Noise authentication")));
        }
        let Some(noise) = payload.get("noise").and_then(Value::as_object).cloned() else {
            return self.die(ProtocolError::Negotiation("The hub did not offer HiveMind v3 Noise.".into()));
        };
        if !noise.contains_key("msg") {
            if self.shared_channel && self.state != State::AwaitOffer {
                self.repeated_offer(payload, &noise)?;
            } else {
                self.offer(payload, &noise)?;
            }
            return Ok(Vec::new());
        }
        if self.state != State::AwaitMsg2 {
            if self.shared_channel {
                // another session's: no message 1 of ours is out to be answered yet
                return Ok(Vec::new());
            }
            return self.die(ProtocolError::Negotiation(OUT_OF_ORDER.into()));
        }
        self.message2(&noise)
    }

    /// Before authentication: an error. After it, callers use the channel instead.
    pub fn receive_binary(&mut self) -> Result<()> {
        self.die(ProtocolError::Negotiation("Application traffic received before Noise authentication".into()))
    }

    fn hello(&mut self, payload: Map<String, Value>) -> Result<()> {
        let node_id = payload.get("node_id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let Some(node_id) = node_id.filter(|_| self.state == State::AwaitHello) else {
            return self.die(ProtocolError::Negotiation("Missing node_id or duplicate Noise HELLO".into()));
        };
        self.check_canonical(&payload)?;
        self.node_id = Some(node_id);
        self.hello_payload = Some(payload);
        self.state = State::AwaitOffer;
        Ok(())
    }

    fn offer(&mut self, payload: Map<String, Value>, noise: &Map<String, Value>) -> Result<()> {
        if self.state != State::AwaitOffer {
            return self.die(ProtocolError::Negotiation(OUT_OF_ORDER.into()));
        }
        self.check_canonical(&payload)?;
        match select_noise(noise, self.hub_pin.is_some(), self.force_xx) {
            Ok((pattern, suite)) => {
                self.pattern = Some(pattern);
                self.suite = Some(suite);
            }
            Err(error) => return self.die(error),
        }
        self.offer_payload = Some(payload);
        self.state = State::NeedsPsk;
        Ok(())
    }

    /// Shared channel: a HELLO after the first one (see [`Self::receive_text`]).
    fn repeated_hello(&mut self, payload: Map<String, Value>) -> Result<()> {
        if self.state == State::AwaitMsg2 {
            return self.check_built_on(&payload, Built::Hello);
        }
        // before message 1 (awaiting the offer, or holding one): start over from the newest HELLO
        self.offer_payload = None;
        self.pattern = None;
        self.suite = None;
        self.state = State::AwaitHello;
        self.hello(payload)
    }

    /// Shared channel: an offer that does not follow a HELLO of this negotiation at once.
    fn repeated_offer(&mut self, payload: Map<String, Value>, noise: &Map<String, Value>) -> Result<()> {
        match self.state {
            // its HELLO went to an earlier subscriber
            State::AwaitHello => Ok(()),
            // message 1 is not out yet: the newest offer wins
            State::NeedsPsk => {
                self.state = State::AwaitOffer;
                self.offer(payload, noise)
            }
            _ => self.check_built_on(&payload, Built::Offer),
        }
    }

    /// After message 1: `received` must equal the HELLO or offer message 1 was built on.
    fn check_built_on(&mut self, received: &Map<String, Value>, which: Built) -> Result<()> {
        let Ok(received) = canonical_json(&Value::Object(received.clone())) else {
            return self.die(ProtocolError::Negotiation(MALFORMED.into()));
        };
        let used = match which {
            Built::Hello => self.hello_payload.as_ref(),
            Built::Offer => self.offer_payload.as_ref(),
        };
        let same =
            used.is_some_and(|used| canonical_json(&Value::Object(used.clone())).is_ok_and(|used| used == received));
        if !same {
            return self.die(ProtocolError::NegotiationSuperseded(SUPERSEDED.into()));
        }
        Ok(())
    }

    fn check_canonical(&mut self, payload: &Map<String, Value>) -> Result<()> {
        if canonical_json(&Value::Object(payload.clone())).is_err() {
            return self.die(ProtocolError::Negotiation(MALFORMED.into()));
        }
        Ok(())
    }

    /// Message 1, once the PSK for `node_id` is derived.
    pub fn start(&mut self, psk: &[u8; 32]) -> Result<String> {
        self.check_alive()?;
        if self.state != State::NeedsPsk {
            return self.die(ProtocolError::Negotiation("start() needs a received offer and may run once".into()));
        }
        let (Some(pattern), Some(suite), Some(hello), Some(offer)) =
            (self.pattern, self.suite, self.hello_payload.as_ref(), self.offer_payload.as_ref())
        else {
            return self.die(ProtocolError::Negotiation(OUT_OF_ORDER.into()));
        };
        let attempt = protocol_name(pattern, suite)
            .and_then(|name| build_prologue(hello, offer, &name))
            .and_then(|prologue| {
                let remote = if pattern == KK { self.hub_pin.as_ref() } else { None };
                Handshake::initiator(pattern, suite, &prologue, psk, &self.static_key, remote)
            })
            .and_then(|mut handshake| handshake.write_message(MESSAGE1_PAYLOAD).map(|message| (handshake, message)));
        let (handshake, message) = match attempt {
            Ok(done) => done,
            Err(error) => return self.die(error),
        };
        self.handshake = Some(handshake);
        self.state = State::AwaitMsg2;
        Ok(format!(
            r#"{{"msg_type": "shake", "payload": {{"noise": {{"pattern": "{pattern}", "suite": "{suite}", "msg": "{}"}}}}, "metadata": {{}}, "route": []}}"#,
            hex::encode(message)
        ))
    }

    fn message2(&mut self, noise: &Map<String, Value>) -> Result<Vec<Outgoing>> {
        let message = match handshake_bytes(noise) {
            Ok(message) => message,
            Err(error) => return self.die(error),
        };
        let Some(mut handshake) = self.handshake.take() else {
            return self.die(ProtocolError::Negotiation(OUT_OF_ORDER.into()));
        };
        if let Err(error) = handshake.read_message(&message) {
            if self.pattern == Some(KK) {
                return self.die(ProtocolError::KkFailed(format!("KKpsk0 message 2 failed: {error}")));
            }
            return self.die(error);
        }
        let mut out = Vec::new();
        if !handshake.finished() {
            match handshake.write_message(b"") {
                Ok(message3) => out.push(Outgoing::Text(format!(
                    r#"{{"msg_type": "shake", "payload": {{"noise": {{"msg": "{}"}}}}, "metadata": {{}}, "route": []}}"#,
                    hex::encode(message3)
                ))),
                Err(error) => return self.die(error),
            }
        }
        let Some(hub_key) = handshake.remote_static() else {
            return self.die(ProtocolError::Handshake("the hub sent no static key".into()));
        };
        if self.hub_pin.is_some_and(|pin| pin != hub_key) {
            return self.die(ProtocolError::HubKeyChanged("Trusted Noise server key changed".into()));
        }
        self.hub_static = Some(hub_key);
        let transport = match handshake.into_transport() {
            Ok(transport) => transport,
            Err(error) => return self.die(error),
        };
        let (mut sealer, opener) = split(transport);
        match sealer.seal_json(&self.encrypted_hello_body()) {
            Ok(parts) => out.extend(parts.into_iter().map(Outgoing::Binary)),
            Err(error) => return self.die(error),
        }
        self.channel = Some((sealer, opener));
        self.state = State::Complete;
        Ok(out)
    }

    /// The JSON body of the client's encrypted HELLO (spec 3.10).
    pub fn encrypted_hello_body(&self) -> Vec<u8> {
        let payload = json!({"pubkey": "", "session": {"session_id": self.session_id}, "site_id": self.site_id});
        let payload = payload.as_object().cloned().unwrap_or_default();
        HiveMessage::new("hello", payload).to_bytes()
    }

    /// The session's secure channel, once complete (taken once).
    pub fn take_channel(&mut self) -> Option<(Sealer, Opener)> {
        if self.state == State::Complete { self.channel.take() } else { None }
    }
}

fn handshake_bytes(noise: &Map<String, Value>) -> Result<Vec<u8>> {
    let msg = noise
        .get("msg")
        .and_then(Value::as_str)
        .filter(|m| m.len() <= MAX_HANDSHAKE_HEX)
        .ok_or_else(|| ProtocolError::Negotiation(MALFORMED_SHAKE.into()))?;
    hex::decode(msg).map_err(|_| ProtocolError::Negotiation(MALFORMED_SHAKE.into()))
}
