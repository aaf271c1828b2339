//! Establishing and running one authenticated session with a hub (spec 2, 3, 4, 7.1).
//!
//! [`establish`] drives the sans-I/O [`ClientNegotiation`] over a fresh carrier: it opens the
//! carrier, answers the hub's HELLO and offer, derives (or reuses) the PSK off the async
//! workers, runs the Noise handshake, pins the hub key on first use and sends the encrypted
//! HELLO. A KK attempt the hub cannot read is retried at once with XX on a fresh carrier,
//! inside the same call. On a carrier whose channel from the hub is shared with the identity's
//! other sessions (MQTT), the negotiation skips the hub's answers to another session; an
//! attempt whose message 1 was built on another session's HELLO and offer, when the hub's own
//! differ, is retried once the same way. After an XX handshake it waits up to 750 ms for the
//! hub's first authenticated frame: a refusal close in that window means the hub refused this
//! client's key.
//!
//! [`Link`] is the established session: it seals and sends envelopes (one lock keeps nonces
//! and send order together) and its reader task decrypts, reassembles and parses what the hub
//! sends. This module turns a carrier's evidence into a [`Stage`] and an [`Evidence`];
//! [`crate::runtime::policy::judge`] alone decides what they mean.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;

use crate::carriers::{Carrier, Closed, Inbound, Incoming, OpenError};
use crate::errors::{Error, Result};
use crate::noise_store::NoiseStore;
use crate::protocol::channel::{Opener, Sealer};
use crate::protocol::envelope::EnvelopeReader;
use crate::protocol::negotiation::Outgoing;
use crate::protocol::wire1::{Wire1Frame, decode_frame};
use crate::protocol::{ClientNegotiation, Frame, HiveMessage, ProtocolError, derive_psk};
use crate::runtime::policy::{Evidence, Stage, Verdict, judge};

/// A refusal-code close this soon after an XX handshake means the hub refused our static key.
pub const REFUSAL_SETTLE: Duration = Duration::from_millis(750);
const KK: &str = "KKpsk0";

/// The id of the next link of this process.
static NEXT_LINK_ID: AtomicU64 = AtomicU64::new(1);

/// argon2id takes 64 MiB per derivation: at most this many run at once in one process.
static DERIVATIONS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get)));

/// What the negotiation needs from the identity.
#[derive(Clone)]
pub struct Credentials {
    /// The access key.
    pub access_key: String,
    /// The password.
    pub password: String,
    /// The site id.
    pub site_id: String,
}

/// What one session delivers to its owner.
#[derive(Debug)]
pub enum LinkEvent {
    /// A JSON envelope (or a non-`bin` WIRE-1 frame read as one).
    Envelope(Box<HiveMessage>),
    /// A WIRE-1 `bin` frame.
    Binary(Box<Wire1Frame>),
    /// The session ended (not by [`Link::close`]).
    Lost {
        /// What ended it.
        error: Error,
        /// The WebSocket close code the hub sent (None: no close frame, or another carrier),
        /// for [`crate::runtime::policy::resend_unanswered`].
        close_code: Option<u16>,
    },
}

/// How the session was set up.
#[derive(Debug, Clone, Default)]
pub struct LinkTimings {
    /// Milliseconds to open the carrier.
    pub transport_open_ms: f64,
    /// Milliseconds of the handshake.
    pub handshake_ms: f64,
    /// Milliseconds of the whole connect (KK retry included).
    pub connect_ms: f64,
    /// Connect attempts (2 after a KK retry or a superseded negotiation, 3 after both).
    pub attempts: u32,
}

/// An established session: the carrier's sending side and this side's cipher.
pub struct Link {
    /// Unique among this process's links: tells one link's events from the next one's.
    pub id: u64,
    carrier: Arc<Carrier>,
    sealer: Mutex<Sealer>,
    /// `XXpsk2` or `KKpsk0`.
    pub pattern: &'static str,
    /// The connection SID (the default session of this link's messages).
    pub session_id: String,
    /// The hub's static key.
    pub hub_static: Option<[u8; 32]>,
    /// Setup timings.
    pub timings: LinkTimings,
    pending: StdMutex<Option<(Inbound, Opener, Vec<Frame>)>>,
    reader: StdMutex<Option<JoinHandle<()>>>,
    lost: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
}

impl Link {
    /// Seal and send one envelope. A carrier that breaks while sending marks the link lost
    /// ([`Self::alive`] is false from then on).
    pub async fn send_envelope(&self, message: &HiveMessage) -> Result<()> {
        self.send_body(&message.to_bytes()).await
    }

    /// Seal and send one JSON envelope body ([`Self::send_envelope`] of the envelope it is).
    pub(crate) async fn send_body(&self, body: &[u8]) -> Result<()> {
        let mut sealer = self.sealer.lock().await;
        if self.closing.load(Ordering::Acquire) || self.lost.load(Ordering::Acquire) {
            return Err(Error::Connection("The hub connection is closed.".into()));
        }
        let parts = sealer.seal_json(body).map_err(|e| Error::Connection(format!("Cannot seal the message: {e}")))?;
        for part in parts {
            if let Err(e) = self.carrier.send_binary(part).await {
                self.lost.store(true, Ordering::Release);
                return Err(Error::Connection(e.message));
            }
        }
        Ok(())
    }

    /// Deliver the frames read during the settle window, then start the reader task, which
    /// hands every envelope, binary frame and the end of the session to `deliver`.
    pub fn start(&self, deliver: Arc<dyn Fn(LinkEvent) + Send + Sync>) {
        let Some((inbound, opener, early)) =
            self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        else {
            return;
        };
        let lost = self.lost.clone();
        let closing = self.closing.clone();
        let carrier = self.carrier.clone();
        let task = tokio::spawn(async move {
            let (error, close_code) = read_loop(inbound, opener, early, deliver.as_ref()).await;
            lost.store(true, Ordering::Release);
            if !closing.load(Ordering::Acquire) {
                carrier.close().await;
                deliver(LinkEvent::Lost { error, close_code });
            }
        });
        *self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    /// True while the session is usable.
    pub fn alive(&self) -> bool {
        !self.closing.load(Ordering::Acquire) && !self.lost.load(Ordering::Acquire) && self.carrier.alive()
    }

    /// Close normally; no [`LinkEvent::Lost`] follows.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let reader = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(reader) = reader {
            reader.abort();
        }
        self.carrier.close().await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // dropping the reader drops its carrier handle: the transport closes with the last one
        let reader = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(reader) = reader {
            reader.abort();
        }
    }
}

fn dispatch(
    frame: Frame,
    reader: &mut EnvelopeReader,
    deliver: &(dyn Fn(LinkEvent) + Send + Sync),
) -> std::result::Result<(), ProtocolError> {
    if frame.binary {
        let decoded = decode_frame(&frame.body)?;
        if decoded.msg_type == "bin" {
            deliver(LinkEvent::Binary(Box::new(decoded)));
        } else {
            deliver(LinkEvent::Envelope(Box::new(decoded.to_envelope()?)));
        }
    } else {
        deliver(LinkEvent::Envelope(Box::new(reader.parse(&frame.body)?)));
    }
    Ok(())
}

/// Read until the session ends: what ended it, and the hub's close code if it sent one.
async fn read_loop(
    mut inbound: Inbound,
    mut opener: Opener,
    early: Vec<Frame>,
    deliver: &(dyn Fn(LinkEvent) + Send + Sync),
) -> (Error, Option<u16>) {
    let malformed = |e: ProtocolError| (Error::Connection(format!("Malformed data from the hub: {e}")), None);
    let mut reader = EnvelopeReader::default();
    for frame in early {
        if let Err(e) = dispatch(frame, &mut reader, deliver) {
            return malformed(e);
        }
    }
    loop {
        match inbound.recv().await {
            Some(Ok(Incoming::Binary(message))) => match opener.open(&message) {
                Ok(Some(frame)) => {
                    if let Err(e) = dispatch(frame, &mut reader, deliver) {
                        return malformed(e);
                    }
                }
                Ok(None) => {}
                Err(e) => return malformed(e),
            },
            Some(Ok(Incoming::Text(_))) => {
                return (Error::Connection("Plaintext received after Noise authentication.".into()), None);
            }
            Some(Err(closed)) => {
                return (Error::Connection(format!("Connection to the hub dropped: {closed}")), closed.code);
            }
            None => return (Error::Connection("Connection to the hub dropped.".into()), None),
        }
    }
}

/// Timeouts of one connect.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Carrier open.
    pub connect: Duration,
    /// The negotiation, from the carrier's opening.
    pub handshake: Duration,
}

enum Attempt {
    Done(Box<Link>),
    /// [`Verdict::RetryWithXx`].
    RetryWithXx,
    /// [`Verdict::RetryFresh`]: on a shared channel, message 1 answered another session's HELLO
    /// and offer, and the hub's own differ.
    RetryFresh,
}

/// Open a carrier and negotiate; retry at once, on a fresh carrier, when the policy says so
/// (with XX after a failed KK; once after a superseded negotiation). Returns the typed errors of
/// dataplane.md 12.
pub async fn establish(
    make_carrier: &(dyn Fn() -> Result<Carrier> + Send + Sync),
    store: &NoiseStore,
    credentials: &Credentials,
    session_id: &str,
    timeouts: Timeouts,
) -> Result<Link> {
    let started = Instant::now();
    let mut force_xx = false;
    let mut retried_fresh = false;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt(make_carrier()?, store, credentials, session_id, timeouts, force_xx, retried_fresh).await? {
            Attempt::Done(mut link) => {
                link.timings.attempts = attempts;
                link.timings.connect_ms = started.elapsed().as_secs_f64() * 1000.0;
                return Ok(*link);
            }
            Attempt::RetryWithXx if !force_xx => force_xx = true,
            Attempt::RetryWithXx => return Err(refused("The hub refused the XX handshake.".into())),
            // the policy judges a second superseded attempt of this connect Dropped
            Attempt::RetryFresh => retried_fresh = true,
        }
    }
}

fn refused(message: String) -> Error {
    Error::HubRefused(message)
}

/// The typed error of `verdict` (dataplane.md 12). For [`Verdict::KeyRejected`] `message` says
/// when the hub refused the key; an XX retry that reaches here is a refusal, a fresh retry a
/// drop.
fn typed_error(verdict: Verdict, message: String, store: &NoiseStore) -> Error {
    match verdict {
        Verdict::RetryWithXx | Verdict::Refused => refused(message),
        Verdict::KeyRejected => key_rejected(store, &message),
        Verdict::KeyChanged => Error::HubKeyChanged(message),
        Verdict::TimedOut => Error::Timeout(message),
        Verdict::RetryFresh | Verdict::Dropped => Error::Connection(message),
    }
}

fn key_rejected(store: &NoiseStore, when: &str) -> Error {
    Error::ClientKeyRejected {
        message: format!(
            "The hub refused this client's Noise key {when}. The hub has another key pinned for this access key; the key in use is in {}.",
            store.directory.display()
        ),
        key_folder: Some(store.directory.clone()),
    }
}

async fn send_all(carrier: &Carrier, outputs: Vec<Outgoing>) -> std::result::Result<(), Closed> {
    for out in outputs {
        match out {
            Outgoing::Text(text) => carrier.send_text(text).await?,
            Outgoing::Binary(data) => carrier.send_binary(data).await?,
        }
    }
    Ok(())
}

/// What a failed send of a connect attempt is judged on (policy, section 1): a send that failed
/// because the hub had already ended the session ([`Closed::after_end`]) has no evidence of its
/// own, so the end the reader received (the hub's close frame) is the evidence, exactly as if
/// the read had reported it first. What the reader queued before that end is dropped: the
/// attempt failed. A reader that reports no end before `deadline` leaves the send's failure.
async fn end_seen_by_reader(failed: Closed, inbound: &mut Inbound, deadline: Instant) -> Closed {
    if !failed.after_end {
        return failed;
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, inbound.recv()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(end))) => return end,
            Ok(None) | Err(_) => return failed,
        }
    }
}

async fn psk_for(store: &NoiseStore, credentials: &Credentials, node_id: &str) -> Result<([u8; 32], bool)> {
    if let Some(psk) = store.cached_psk(&credentials.access_key, node_id) {
        return Ok((psk, true));
    }
    let _permit = DERIVATIONS.acquire().await.map_err(|_| Error::Connection("PSK derivation stopped.".into()))?;
    let password = credentials.password.clone();
    let node = node_id.to_string();
    let psk = tokio::task::spawn_blocking(move || derive_psk(&password, &node))
        .await
        .map_err(|e| Error::Connection(format!("PSK derivation failed: {e}")))?
        .map_err(|e| Error::Connection(format!("PSK derivation failed: {e}")))?;
    Ok((psk, false))
}

/// What ended the handshake loop early, before it is read as an SDK error.
enum Failure {
    Protocol(ProtocolError),
    Closed(Closed),
    Timeout,
    Sdk(Error),
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<Closed> for Failure {
    fn from(e: Closed) -> Self {
        Self::Closed(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Sdk(e)
    }
}

struct Handshaking<'a> {
    store: &'a NoiseStore,
    credentials: &'a Credentials,
    negotiation: ClientNegotiation,
    psk: Option<([u8; 32], bool)>,
}

impl Handshaking<'_> {
    async fn run(
        &mut self,
        carrier: &Carrier,
        inbound: &mut Inbound,
        deadline: Instant,
    ) -> std::result::Result<(), Failure> {
        while !self.negotiation.complete() {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, inbound.recv()).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(None) => return Err(Failure::Closed(Closed::new("The carrier closed."))),
                Ok(Some(Err(closed))) => return Err(Failure::Closed(closed)),
                Ok(Some(Ok(message))) => message,
            };
            let text = match message {
                Incoming::Text(text) => text,
                Incoming::Binary(_) => {
                    return Err(Failure::Sdk(Error::Connection(
                        "Application traffic received before Noise authentication.".into(),
                    )));
                }
            };
            let mut outputs = self.negotiation.receive_text(text.as_bytes())?;
            if self.negotiation.needs_psk() {
                let node_id = self.negotiation.node_id.clone().unwrap_or_default();
                let psk = psk_for(self.store, self.credentials, &node_id).await?;
                self.psk = Some(psk);
                outputs.insert(0, Outgoing::Text(self.negotiation.start(&psk.0)?));
            }
            if let Err(failed) = send_all(carrier, outputs).await {
                return Err(Failure::Closed(end_seen_by_reader(failed, inbound, deadline).await));
            }
        }
        Ok(())
    }

    fn forget_psk(&self) {
        if let Some(node_id) = &self.negotiation.node_id {
            let _ = self.store.forget_psk(&self.credentials.access_key, node_id);
        }
    }
}

async fn attempt(
    mut carrier: Carrier,
    store: &NoiseStore,
    credentials: &Credentials,
    session_id: &str,
    timeouts: Timeouts,
    force_xx: bool,
    retried_fresh: bool,
) -> Result<Attempt> {
    let protocol = carrier.protocol();
    let opened_at = Instant::now();
    let opened = tokio::time::timeout(timeouts.connect, carrier.open(timeouts.connect)).await;
    let mut inbound = match opened {
        Ok(Ok(inbound)) => inbound,
        failed => {
            carrier.close().await;
            let (evidence, message) = match failed {
                Ok(Err(OpenError::Refused(message))) => {
                    (Evidence::Refusal, format!("The hub refused this client's credentials: {message}"))
                }
                Ok(Err(OpenError::Failed(message))) => (Evidence::Closed, message),
                _ => (
                    Evidence::Timeout,
                    format!("Could not open the {protocol} connection within {} s.", timeouts.connect.as_secs_f64()),
                ),
            };
            return Err(typed_error(judge(Stage::Opening, evidence, false, retried_fresh).verdict, message, store));
        }
    };
    let carrier = Arc::new(carrier);
    let handshake_start = Instant::now();
    let prepared = carrier.pin_id().and_then(|pin_id| Ok((store.hub_pin(&pin_id)?, store.static_key()?, pin_id)));
    let (hub_pin, static_key, pin_id) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            carrier.close().await;
            return Err(error);
        }
    };
    let mut state = Handshaking {
        store,
        credentials,
        negotiation: ClientNegotiation::new(static_key, &credentials.site_id, session_id, hub_pin, force_xx)
            .with_shared_channel(carrier.shared_inbound()),
        psk: None,
    };
    let outcome = state.run(&carrier, &mut inbound, handshake_start + timeouts.handshake).await;
    if let Err(failure) = outcome {
        carrier.close().await;
        let kk = state.negotiation.pattern == Some(KK) && !force_xx;
        let stage = if state.negotiation.complete() {
            Stage::Finishing
        } else if state.psk.is_some() {
            Stage::Handshake
        } else {
            Stage::Negotiating
        };
        let (evidence, detail) = match failure {
            Failure::Sdk(error) => return Err(error),
            Failure::Timeout => (
                Evidence::Timeout,
                format!("The hub did not complete the handshake within {} s.", timeouts.handshake.as_secs_f64()),
            ),
            Failure::Protocol(ProtocolError::HubKeyChanged(_)) => (
                Evidence::KeyChanged,
                format!(
                    "Trusted Noise server key changed for {pin_id}: the hub's key differs from the one pinned in {}. Stop and check; remove that pin only if you trust the new key.",
                    store.store_path().display()
                ),
            ),
            Failure::Protocol(
                error @ (ProtocolError::KkFailed(_) | ProtocolError::Decrypt(_) | ProtocolError::Handshake(_)),
            ) => (
                Evidence::AuthFailed,
                format!("The hub refused this client (wrong password or tampered negotiation): {error}"),
            ),
            Failure::Protocol(error @ ProtocolError::NegotiationSuperseded(_)) => {
                (Evidence::Superseded, format!("Malformed HiveMind negotiation: {error}"))
            }
            Failure::Protocol(error) => (Evidence::Malformed, format!("Malformed HiveMind negotiation: {error}")),
            Failure::Closed(closed) if closed.refusal_signal => (
                Evidence::Refusal,
                match stage {
                    Stage::Finishing => format!("as the handshake completed ({closed})"),
                    Stage::Handshake => format!("The hub refused this client: {closed}"),
                    _ => format!("The hub refused this client's credentials: {closed}"),
                },
            ),
            Failure::Closed(closed) => {
                (Evidence::Closed, format!("The hub closed the connection before the handshake completed: {closed}"))
            }
        };
        let judgement = judge(stage, evidence, kk, retried_fresh);
        if judgement.forget_psk {
            state.forget_psk();
        }
        return match judgement.verdict {
            Verdict::RetryWithXx => Ok(Attempt::RetryWithXx),
            Verdict::RetryFresh => Ok(Attempt::RetryFresh),
            verdict => Err(typed_error(verdict, detail, store)),
        };
    }
    let negotiation = &mut state.negotiation;
    let pattern = negotiation.pattern.unwrap_or("XXpsk2");
    let hub_static = negotiation.hub_static;
    let Some((sealer, mut opener)) = negotiation.take_channel() else {
        carrier.close().await;
        return Err(Error::Connection("The handshake ended without a secure channel.".into()));
    };
    let handshake_ms = handshake_start.elapsed().as_secs_f64() * 1000.0;
    let stored = (|| -> Result<()> {
        if let (Some((psk, false)), Some(node_id)) = (state.psk, &state.negotiation.node_id) {
            store.store_psk(&credentials.access_key, node_id, &psk)?;
        }
        if let (None, Some(key)) = (hub_pin, hub_static) {
            store.pin_hub(&pin_id, &key)?;
        }
        Ok(())
    })();
    if let Err(error) = stored {
        carrier.close().await;
        return Err(error);
    }
    let mut early = Vec::new();
    if pattern != KK
        && let Err(error) = settle_after_xx(&mut inbound, &mut opener, &mut early, store).await
    {
        carrier.close().await;
        return Err(error);
    }
    Ok(Attempt::Done(Box::new(Link {
        id: NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed),
        carrier,
        sealer: Mutex::new(sealer),
        pattern,
        session_id: session_id.to_string(),
        hub_static,
        timings: LinkTimings {
            transport_open_ms: (handshake_start - opened_at).as_secs_f64() * 1000.0,
            handshake_ms,
            connect_ms: 0.0,
            attempts: 0,
        },
        pending: StdMutex::new(Some((inbound, opener, early))),
        reader: StdMutex::new(None),
        lost: Arc::new(AtomicBool::new(false)),
        closing: Arc::new(AtomicBool::new(false)),
    })))
}

/// The error of a failure in the settle window after XX (never KK, so never an XX retry).
fn settling(evidence: Evidence, message: String, store: &NoiseStore) -> Error {
    typed_error(judge(Stage::Settling, evidence, false, false).verdict, message, store)
}

/// Wait up to 750 ms for the first authenticated frame after an XX handshake; a refusal close
/// in that window means the hub refused this client's static key.
async fn settle_after_xx(
    inbound: &mut Inbound,
    opener: &mut Opener,
    early: &mut Vec<Frame>,
    store: &NoiseStore,
) -> Result<()> {
    let deadline = Instant::now() + REFUSAL_SETTLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, inbound.recv()).await {
            Err(_) => return Ok(()),
            Ok(None) => {
                return Err(settling(
                    Evidence::Closed,
                    "The hub closed the connection after the handshake.".into(),
                    store,
                ));
            }
            Ok(Some(Err(closed))) if closed.refusal_signal => {
                return Err(settling(Evidence::Refusal, format!("right after the handshake ({closed})"), store));
            }
            Ok(Some(Err(closed))) => {
                return Err(settling(
                    Evidence::Closed,
                    format!("The hub closed the connection after the handshake: {closed}"),
                    store,
                ));
            }
            Ok(Some(Ok(Incoming::Text(_)))) => {
                return Err(settling(
                    Evidence::Malformed,
                    "Plaintext received after Noise authentication.".into(),
                    store,
                ));
            }
            Ok(Some(Ok(Incoming::Binary(message)))) => message,
        };
        match opener.open(&message) {
            Ok(Some(frame)) => {
                early.push(frame);
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => return Err(settling(Evidence::Malformed, format!("Malformed data from the hub: {e}"), store)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::AtomicU32;

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::carriers::scripted::{Script, ScriptedCarrier};
    use crate::protocol::channel::split;
    use crate::protocol::{KeyPair, build_prologue};

    const PSK: [u8; 32] = [5u8; 32];
    const NODE: &str = "node-alpha";
    const ACCESS_KEY: &str = "access";

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    /// What a hub says before the handshake: its HELLO and offer.
    #[derive(Clone)]
    struct HubState {
        key: KeyPair,
        hello: Map<String, Value>,
        offer: Map<String, Value>,
    }

    impl HubState {
        /// `peer`: an extra HELLO field, so that the pair differs from another state's.
        fn new(key: KeyPair, peer: Option<&str>) -> Self {
            let mut hello = object(json!({"node_id": NODE, "pubkey": "", "site_id": "hub"}));
            if let Some(peer) = peer {
                hello.insert("peer".into(), Value::String(peer.into()));
            }
            let offer = object(json!({
                "handshake": true, "binarize": false, "encodings": ["JSON-B64", "JSON-HEX"],
                "noise": {"patterns": ["XXpsk2"], "suites": ["25519_ChaChaPoly_SHA256"]},
            }));
            Self { key, hello, offer }
        }

        fn opening(&self) -> Vec<Incoming> {
            vec![
                Incoming::Text(json!({"msg_type": "hello", "payload": self.hello}).to_string()),
                Incoming::Text(json!({"msg_type": "shake", "payload": self.offer}).to_string()),
            ]
        }
    }

    /// One carrier session's hub. Unclean: the session opens on `stale`'s HELLO and offer
    /// (another session's copies, unlike the hub's own when `stale` is another hub state), and
    /// the hub's own come after message 1. Clean: it opens on the hub's own.
    struct Session {
        stale: HubState,
        hub: HubState,
        clean: bool,
        responder: Option<snow::HandshakeState>,
        channel: Option<(Sealer, Opener)>,
    }

    impl Session {
        fn message1(&mut self, text: &str) -> Option<Incoming> {
            let message: Value = serde_json::from_str(text).unwrap();
            let noise = &message["payload"]["noise"];
            let name = format!("Noise_{}_{}", noise["pattern"].as_str()?, noise["suite"].as_str()?);
            let prologue = build_prologue(&self.hub.hello, &self.hub.offer, &name).unwrap();
            let mut responder = snow::Builder::new(name.parse().ok()?)
                .local_private_key(self.hub.key.private_bytes())
                .ok()?
                .prologue(&prologue)
                .ok()?
                .psk(2, &PSK)
                .ok()?
                .build_responder()
                .ok()?;
            let mut buffer = vec![0u8; 65535];
            responder.read_message(&hex::decode(noise["msg"].as_str()?).ok()?, &mut buffer).ok()?;
            let size = responder.write_message(br#"{"binarize":false}"#, &mut buffer).ok()?;
            self.responder = Some(responder);
            Some(Incoming::Text(
                json!({"msg_type": "shake", "payload": {"noise": {"msg": hex::encode(&buffer[..size])}}}).to_string(),
            ))
        }

        fn message3(&mut self, text: &str) {
            let message: Value = serde_json::from_str(text).unwrap();
            let bytes = hex::decode(message["payload"]["noise"]["msg"].as_str().unwrap()).unwrap();
            let mut responder = self.responder.take().unwrap();
            responder.read_message(&bytes, &mut vec![0u8; 65535]).unwrap();
            self.channel = Some(split(responder.into_stateless_transport_mode().unwrap()));
        }
    }

    impl Script for Session {
        fn opened(&mut self) -> Vec<Incoming> {
            if self.clean { self.hub.opening() } else { self.stale.opening() }
        }

        fn sent(&mut self, message: Outgoing) -> Vec<Incoming> {
            match message {
                Outgoing::Text(text) if text.contains(r#""pattern""#) => {
                    // unclean: the hub's answer to our HELLO arrives after our message 1
                    let mut answer = if self.clean { Vec::new() } else { self.hub.opening() };
                    answer.extend(self.message1(&text));
                    answer
                }
                Outgoing::Text(text) => {
                    self.message3(&text);
                    Vec::new()
                }
                Outgoing::Binary(data) => {
                    // the encrypted HELLO: the hub reads it and says it is ready
                    let (sealer, opener) = self.channel.as_mut().unwrap();
                    let frame = opener.open(&data).unwrap().unwrap();
                    assert_eq!(crate::protocol::parse_envelope(&frame.body).unwrap().msg_type, "hello");
                    let ready = HiveMessage::bus("ready", Map::new(), Map::new());
                    sealer.seal_json(&ready.to_bytes()).unwrap().into_iter().map(Incoming::Binary).collect()
                }
            }
        }
    }

    /// A Noise store in a scratch folder, its PSK for the hub's node cached (no derivation).
    struct Scratch(NoiseStore);

    impl Scratch {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!("thalovant-link-{}", crate::control::random_hex(8)));
            let store = NoiseStore::new(path);
            store.store_psk(ACCESS_KEY, NODE, &PSK).unwrap();
            Self(store)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0.directory);
        }
    }

    /// Establish over scripted sessions (`shared`: their channel is shared); sessions from
    /// `clean_from` on are clean. The link or the error, and how many sessions were opened.
    async fn establish_over(stale: &HubState, hub: &HubState, clean_from: u32, shared: bool) -> (Result<Link>, u32) {
        let scratch = Scratch::new();
        let made = AtomicU32::new(0);
        let make = || {
            let n = made.fetch_add(1, Ordering::Relaxed) + 1;
            let session = Session {
                stale: stale.clone(),
                hub: hub.clone(),
                clean: n >= clean_from,
                responder: None,
                channel: None,
            };
            Ok(Carrier::Scripted(ScriptedCarrier::new(shared, session)))
        };
        let credentials =
            Credentials { access_key: ACCESS_KEY.into(), password: "secret".into(), site_id: "site".into() };
        let timeouts = Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(5) };
        let result = establish(&make, &scratch.0, &credentials, "sid", timeouts).await;
        (result, made.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_message_1_built_on_another_sessions_pair_is_retried_at_once_once() {
        let key = KeyPair::generate().unwrap();
        let stale = HubState::new(key.clone(), Some("an earlier session's hub state"));
        let hub = HubState::new(key, None);

        let (link, made) = establish_over(&stale, &hub, 2, true).await;
        let link = link.unwrap();
        assert_eq!((made, link.timings.attempts, link.pattern), (2, 2, "XXpsk2"));
        link.close().await;

        // superseded again on the fresh session: a connection error, no third attempt
        let (error, made) = establish_over(&stale, &hub, 3, true).await;
        match error {
            Err(Error::Connection(message)) => assert!(message.contains("restarted the negotiation"), "{message}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("established on a superseded negotiation"),
        }
        assert_eq!(made, 2);
    }

    #[tokio::test]
    async fn a_copy_equal_to_the_hubs_own_pair_needs_no_retry() {
        let hub = HubState::new(KeyPair::generate().unwrap(), None);
        let (link, made) = establish_over(&hub, &hub, 2, true).await;
        let link = link.unwrap();
        assert_eq!((made, link.timings.attempts), (1, 1));
        link.close().await;
    }

    /// A WebSocket hub on 127.0.0.1 that refuses this client's key as the handshake completes:
    /// it sends message 2 and, in the same write, a close without status (1005, a refusal
    /// code), then reads until the client is gone. The client's reader takes both frames from
    /// one read and handles the close before the handshake task sends message 3 (one thread
    /// runs both tasks, the reader first), so the send finds the WebSocket closed by the hub:
    /// the race of the live test, every time.
    async fn refusing_wss_hub(hub: HubState) -> (String, tokio::task::JoinHandle<()>) {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("ws://{}/hub", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            for opening in hub.opening() {
                let Incoming::Text(text) = opening else { unreachable!() };
                ws.send(Message::text(text)).await.unwrap();
            }
            let message1 = match ws.next().await {
                Some(Ok(Message::Text(text))) => text.as_str().to_string(),
                other => panic!("no message 1: {other:?}"),
            };
            let mut session = Session { stale: hub.clone(), hub, clean: true, responder: None, channel: None };
            let Some(Incoming::Text(message2)) = session.message1(&message1) else {
                panic!("message 1 did not authenticate")
            };
            ws.feed(Message::text(message2)).await.unwrap();
            ws.feed(Message::Close(None)).await.unwrap();
            ws.flush().await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        });
        (endpoint, task)
    }

    #[tokio::test]
    async fn a_send_after_the_hubs_refusal_close_is_judged_on_that_close() {
        let hub = HubState::new(KeyPair::generate().unwrap(), None);
        let (endpoint, server) = refusing_wss_hub(hub).await;
        let scratch = Scratch::new();
        let tls = crate::tls::client_config_for(None).unwrap();
        let make = || {
            Ok(Carrier::Wss(crate::carriers::wss::WssCarrier::new(
                &endpoint,
                ACCESS_KEY,
                "thalovant-test",
                tls.clone(),
            )?))
        };
        let credentials =
            Credentials { access_key: ACCESS_KEY.into(), password: "secret".into(), site_id: "site".into() };
        let timeouts = Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(5) };
        match establish(&make, &scratch.0, &credentials, "sid", timeouts).await {
            Err(Error::ClientKeyRejected { key_folder, .. }) => {
                assert_eq!(key_folder.as_deref(), Some(scratch.0.directory.as_path()))
            }
            Err(other) => panic!("the hub's refusal close was not the verdict: {other:?}"),
            Ok(_) => panic!("established with a hub that refused"),
        }
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_carrier_with_a_channel_of_its_own_stays_strict() {
        let hub = HubState::new(KeyPair::generate().unwrap(), None);
        let (error, made) = establish_over(&hub, &hub, 2, false).await;
        match error {
            Err(Error::Connection(message)) => assert!(message.contains("duplicate Noise HELLO"), "{message}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a second HELLO was accepted on a channel of its own"),
        }
        assert_eq!(made, 1);
    }
}
