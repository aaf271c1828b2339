//! The runtime client: connect to a hub, ask, emit, send inputs, listen for events.
//!
//! A [`Client`] owns at most one link at a time and is cheap to clone (clones share it);
//! [`crate::runtime::policy`] decides every failure.
//!
//! **With `auto_reconnect`** (the default), once a link has been up, every loss of it, however
//! noticed (the hub closed it, a send broke, a request found it dead), starts the one
//! supervised reconnect loop, which redials on the [`RetrySchedule`] (every 0.5-1 s during the
//! first minute of an outage, then backing off to 15-30 s) until the link is back or
//! [`next_step`] says stop (a changed or rejected key at once, a refusal after
//! [`crate::runtime::policy::REFUSAL_GIVE_UP`]). No request dials by itself: a request made
//! while the link is down (`ask`, `emit`, `send_utterance` / `send_action` / `send_code`, the
//! asks of a [`Conversation`]) waits for the loop to bring the link back, up to its own timeout
//! ([`RequestOptions::timeout`]; [`ClientOptions::send_timeout`] for sends without one), and is
//! then sent. It fails at once only with the error that stopped the loop, or with a refusal or a
//! key error of the loop's latest attempt ([`crate::runtime::policy::waiter_gives_up`]); past its
//! timeout it is a connection error "not back within". Once the loop has stopped, requests
//! fail at once with its error until [`Client::connect`] brings a link up again.
//!
//! A message already sent is never sent again, with one exception: when the hub closes the link
//! with WebSocket 1001 or 1012 (going away, restarting), an `ask` that has received nothing for
//! its request yet is sent again with the same request id once the link is back
//! ([`crate::runtime::policy::resend_unanswered`]); any other ask in flight fails with a
//! connection error (or returns the speech it already has).
//!
//! **Without `auto_reconnect`**, or before the first link was ever up (and after
//! [`Client::close`]), a request made while the link is down makes one connect attempt of its
//! own and fails with that attempt's error; asks in flight fail when the link drops.
//!
//! Every bus event the hub sends reaches the receivers of [`Transport::subscribe`].

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify, broadcast, watch};

use crate::carriers::Carrier;
use crate::errors::{Error, Result};
use crate::events::{EVENT_POLICY_DENIED, EVENT_UTTERANCE_HANDLED, Event};
use crate::identity::Identity;
use crate::models::{Health, Reply};
use crate::noise_store::NoiseStore;
use crate::protocol::HiveMessage;
use crate::protocol::envelope::{BusMessage, bus_body};
use crate::protocol::wire1::Wire1Frame;
use crate::protocols::HubProtocol;
use crate::runtime::ask::{EMPTY_REPLY_WAIT, ReplyCollector};
use crate::runtime::bus;
use crate::runtime::link::{Credentials, Link, LinkEvent, Timeouts, establish};
use crate::runtime::overlay::{Overlay, Part};
use crate::runtime::policy::{
    RetrySchedule, Step, Verdict, jitter_draw, next_step, resend_unanswered, verdict_of, waiter_gives_up,
};

/// The default user agent.
pub const DEFAULT_USERAGENT: &str = concat!("ThalovantRustSDK/", env!("CARGO_PKG_VERSION"));
/// How long after an ask a late `ovos.utterance.handled` still carries conversation state.
pub const CARRY_GRACE: Duration = Duration::from_secs(2);
/// A denial without request id is not attributed to an ask this soon after an untracked send.
pub const UNTRACKED_UTTERANCE_GRACE: Duration = Duration::from_secs(10);
/// The default [`ClientOptions::send_timeout`].
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(8);
/// The default [`RequestOptions::timeout`] of `ask`.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(12);
const EVENT_CAPACITY: usize = 1024;
const VERIFIED_PEER_KEY: &str = "hivemind_verified_source_peer";

/// How a client connects and collects replies.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Force a carrier; without it WSS, then HTTPS, then MQTT (spec 1.6).
    pub protocol: Option<HubProtocol>,
    /// Where the client's Noise key, hub pins and PSK cache live (default: spec 1.8).
    pub noise_state_dir: Option<PathBuf>,
    /// How long `ask` keeps collecting speech after the first sentence.
    pub reply_settle: Duration,
    /// How long a handled-without-speech or unmatched ask waits for a late speak.
    pub empty_reply_wait: Duration,
    /// Carrier open timeout.
    pub connect_timeout: Duration,
    /// Negotiation timeout.
    pub handshake_timeout: Duration,
    /// The user agent (carrier credential, `User-Agent`, default `source`).
    pub useragent: String,
    /// Redial a dropped link in the background, and let requests made while it is down wait
    /// for it (see the module doc). Off: a request made while the link is down dials once.
    pub auto_reconnect: bool,
    /// How long a send without a timeout of its own (`send_utterance`, `send_action`,
    /// `send_code`, `emit`) waits for a link that is down (default 8 s).
    pub send_timeout: Duration,
    /// A CA file trusted alone instead of the trust variables (see [`crate::tls`]).
    pub ca_file: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            protocol: None,
            noise_state_dir: None,
            reply_settle: Duration::from_millis(250),
            empty_reply_wait: EMPTY_REPLY_WAIT,
            connect_timeout: Duration::from_secs(4),
            handshake_timeout: Duration::from_secs(20),
            useragent: DEFAULT_USERAGENT.to_string(),
            auto_reconnect: true,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            ca_file: None,
        }
    }
}

/// Options of `ask` and `send_utterance`.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// The language (default `en-us`).
    pub lang: Option<String>,
    /// The session (default: the connection's).
    pub session_id: Option<String>,
    /// The request id (default: a new one).
    pub request_id: Option<String>,
    /// Extra context (see [`crate::build_client_context`]).
    pub context: Option<Map<String, Value>>,
    /// The overall deadline of `ask` (default 12 s), waiting for a link that is down included;
    /// for `send_utterance`, how long it waits for a link that is down (default
    /// [`ClientOptions::send_timeout`]).
    pub timeout: Option<Duration>,
}

/// Options of `send_action`.
#[derive(Debug, Clone, Default)]
pub struct ActionOptions {
    /// The button's title (default: the payload).
    pub title: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// Extra context.
    pub context: Option<Map<String, Value>>,
    /// The language.
    pub lang: Option<String>,
}

/// Options of `send_code`.
#[derive(Debug, Clone, Default)]
pub struct CodeOptions {
    /// What the value is (`invoice`, `qr`...; default `code`).
    pub kind: Option<String>,
    /// A label (default: the kind).
    pub label: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// Extra context.
    pub context: Option<Map<String, Value>>,
    /// The language.
    pub lang: Option<String>,
}

/// Options of `conversation`.
#[derive(Debug, Clone, Default)]
pub struct ConversationOptions {
    /// The language of every turn (default `en-us`).
    pub lang: Option<String>,
    /// The shared session (default: a new `thalovant-session-<hex>`).
    pub session_id: Option<String>,
}

/// The client's event stream. Receivers end (`RecvError::Closed`) when the client closes;
/// a receiver taken later gets the events of the next connection.
#[derive(Clone, Default)]
pub struct Transport {
    shared: Arc<TransportShared>,
}

#[derive(Default)]
struct TransportShared {
    events: StdMutex<Option<broadcast::Sender<Event>>>,
    binary: StdMutex<Option<broadcast::Sender<Wire1Frame>>>,
}

fn sender<T: Clone>(slot: &StdMutex<Option<broadcast::Sender<T>>>, capacity: usize) -> broadcast::Sender<T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(|| broadcast::channel(capacity).0)
        .clone()
}

impl Transport {
    /// A receiver of every bus event the hub sends from now on (context normalised as spec
    /// 7.3 says). A receiver that falls more than 1024 events behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        sender(&self.shared.events, EVENT_CAPACITY).subscribe()
    }

    /// A receiver of every WIRE-1 `bin` frame (TTS audio, files...).
    pub fn subscribe_binary(&self) -> broadcast::Receiver<Wire1Frame> {
        sender(&self.shared.binary, 64).subscribe()
    }

    /// The sender of bus events while a receiver is subscribed.
    fn event_sender(&self) -> Option<broadcast::Sender<Event>> {
        self.shared
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|s| s.receiver_count() > 0)
            .cloned()
    }

    fn publish_binary(&self, frame: Wire1Frame) {
        if let Some(binary) = self.shared.binary.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            let _ = binary.send(frame);
        }
    }

    /// End every receiver (after it has read what was already sent).
    fn close(&self) {
        self.shared.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        self.shared.binary.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }
}

/// What the client knows about its link, without asking the hub.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// `idle`, `connecting`, `ready`, `closed` or `error`.
    pub phase: String,
    /// The carrier.
    pub protocol: Option<HubProtocol>,
    /// The connection SID.
    pub session_id: Option<String>,
    /// `XXpsk2` or `KKpsk0`.
    pub noise_pattern: Option<String>,
    /// Milliseconds of the last connect.
    pub connect_ms: Option<f64>,
    /// Connect attempts of the last connect (2 after a KK retry).
    pub attempts: u32,
    /// Background reconnects so far.
    pub reconnects: u32,
    /// The last error, redacted.
    pub last_error: Option<String>,
}

enum AskInput {
    Event(Event),
    /// The link the request went out on ended; `resend`: send it again once the link is back.
    Lost {
        reason: String,
        resend: bool,
    },
}

/// What reaches one ask, in the order it was sent: a queue and a wakeup (one small allocation
/// per ask; the ask waits on it in a `select!`, so [`Self::recv`] must lose nothing when
/// cancelled).
#[derive(Default)]
struct Mailbox {
    queue: StdMutex<VecDeque<AskInput>>,
    ready: Notify,
}

impl Mailbox {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<AskInput>> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue `input` and wake the ask.
    fn send(&self, input: AskInput) {
        self.queue().push_back(input);
        self.ready.notify_one();
    }

    /// The oldest input, waiting for one if none is queued. Cancel-safe: an input is taken only
    /// by the call that returns it.
    async fn recv(&self) -> AskInput {
        loop {
            if let Some(input) = self.queue().pop_front() {
                return input;
            }
            // a send after the check above leaves a permit: this wait then ends at once
            self.ready.notified().await;
        }
    }
}

/// An ask waiting for its reply.
struct Collecting {
    tx: Arc<Mailbox>,
    /// The link its request went out on.
    link_id: u64,
    /// Something for its request arrived.
    heard: bool,
}

#[derive(Default)]
struct State {
    phase: &'static str,
    last_error: Option<String>,
    reconnects: u32,
    /// The current link's id, and whether its loss was already handled.
    link_id: u64,
    link_ended: bool,
    /// A link was up since the client was made or closed: losses are supervised.
    had_link: bool,
    /// How many times the client was closed (a waiter stops when this changes).
    closes: u64,
    /// The latest failed dial, until a link is up.
    last_failure: Option<Error>,
    /// The error that stopped the reconnect loop for good, until a link is up.
    stopped: Option<Error>,
    collectors: HashMap<String, Collecting>,
    carry_watch: HashMap<String, (String, Option<Instant>)>,
    /// When entries of `carry_watch` expire, in the order they were given an expiry (which is
    /// the order of their deadlines: every ask gets the same grace), oldest first.
    carry_expiry: VecDeque<(Instant, String)>,
    carried: HashMap<String, Map<String, Value>>,
    last_untracked: Option<Instant>,
}

impl State {
    /// Drops the `carry_watch` entries whose grace ended by `now`: amortised O(1) per ask (the
    /// expiry queue is in deadline order), however many asks ended within the grace.
    fn forget_expired_carry_watch(&mut self, now: Instant) {
        while let Some((expiry, _)) = self.carry_expiry.front() {
            if *expiry > now {
                break;
            }
            let Some((expiry, request_id)) = self.carry_expiry.pop_front() else { break };
            // an entry given a later expiry since (its request id reused) stays
            if self.carry_watch.get(&request_id).is_some_and(|(_, at)| *at == Some(expiry)) {
                self.carry_watch.remove(&request_id);
            }
        }
    }
}

struct Inner {
    identity: Identity,
    protocol: HubProtocol,
    options: ClientOptions,
    store: OnceLock<NoiseStore>,
    connect_lock: Mutex<()>,
    link: StdMutex<Option<Arc<Link>>>,
    state: StdMutex<State>,
    transport: Transport,
    closed: AtomicBool,
    reconnecting: AtomicBool,
    /// Bumped whenever a dial ends, the reconnect loop stops or the client closes.
    changes: watch::Sender<u64>,
}

/// A copy of `error` for a waiter (the typed errors a dial ends with keep their type).
fn copy_error(error: &Error) -> Error {
    match error {
        Error::HubKeyChanged(message) => Error::HubKeyChanged(message.clone()),
        Error::ClientKeyRejected { message, key_folder } => {
            Error::ClientKeyRejected { message: message.clone(), key_folder: key_folder.clone() }
        }
        Error::HubRefused(message) => Error::HubRefused(message.clone()),
        Error::Timeout(message) => Error::Timeout(message.clone()),
        other => Error::Connection(redact(&other.to_string())),
    }
}

/// Redact what follows `?` (URLs carry the credential in their query).
fn redact(message: &str) -> String {
    message.split('?').next().unwrap_or_default().to_string()
}

/// The carrier to use (spec 1.6): a forced one if the identity can use it; else WSS (flag on
/// and an endpoint), then HTTPS, then MQTT with broker credentials.
pub fn select_protocol(identity: &Identity, forced: Option<HubProtocol>) -> Result<HubProtocol> {
    if let Some(protocol) = forced {
        if protocol == HubProtocol::Wss && identity.endpoint_for(HubProtocol::Wss).is_none() {
            return Err(Error::UnsupportedProtocol("This identity has no WSS endpoint; it cannot use wss.".into()));
        }
        if protocol == HubProtocol::Mqtt && identity.mqtt.is_none() {
            return Err(Error::UnsupportedProtocol(
                "This identity has no MQTT broker credentials; it cannot use mqtt.".into(),
            ));
        }
        return Ok(protocol);
    }
    if identity.supports_protocol(HubProtocol::Wss) && identity.endpoint_for(HubProtocol::Wss).is_some() {
        return Ok(HubProtocol::Wss);
    }
    if identity.supports_protocol(HubProtocol::Https) {
        return Ok(HubProtocol::Https);
    }
    if identity.supports_protocol(HubProtocol::Mqtt) && identity.mqtt.is_some() {
        return Ok(HubProtocol::Mqtt);
    }
    Ok(HubProtocol::Https)
}

/// The runtime client of one hub identity.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The event stream: `client.transport.subscribe()`.
    pub transport: Transport,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client(protocol={}, identity={:?})", self.inner.protocol, self.inner.identity)
    }
}

impl Client {
    /// A client for `identity`, choosing the carrier as spec 1.6 says.
    pub fn new(identity: Identity) -> Result<Self> {
        Self::with_options(identity, ClientOptions::default())
    }

    /// A client that uses `protocol`.
    pub fn with_protocol(identity: Identity, protocol: HubProtocol) -> Result<Self> {
        Self::with_options(identity, ClientOptions { protocol: Some(protocol), ..ClientOptions::default() })
    }

    /// A client with explicit options.
    pub fn with_options(identity: Identity, options: ClientOptions) -> Result<Self> {
        let protocol = select_protocol(&identity, options.protocol)?;
        // fail now, not at connect, on a carrier this identity cannot use
        Carrier::new(protocol, &identity, &options.useragent, "check", options.ca_file.as_deref())?;
        let transport = Transport::default();
        let inner = Arc::new(Inner {
            identity,
            protocol,
            options,
            store: OnceLock::new(),
            connect_lock: Mutex::new(()),
            link: StdMutex::new(None),
            state: StdMutex::new(State { phase: "idle", ..State::default() }),
            transport: transport.clone(),
            closed: AtomicBool::new(false),
            reconnecting: AtomicBool::new(false),
            changes: watch::channel(0).0,
        });
        Ok(Self { inner, transport })
    }

    /// A client for the identity of a profile of `~/.config/thalovant/config.yaml`.
    pub fn from_config(profile: Option<&str>) -> Result<Self> {
        Self::new(Identity::from_config(profile)?)
    }

    /// A client for an identity file (0600).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::new(Identity::from_file(path)?)
    }

    /// A client for the identity in the `THALOVANT_*` environment variables.
    pub fn from_env() -> Result<Self> {
        Self::new(Identity::from_env()?)
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The carrier in use.
    pub fn protocol(&self) -> HubProtocol {
        self.inner.protocol
    }

    /// The Noise state store of this client (spec 1.8).
    pub fn noise_store(&self) -> &NoiseStore {
        self.inner.store()
    }

    /// True while the link is up.
    pub fn connected(&self) -> bool {
        self.inner.current_link().is_some_and(|l| l.alive())
    }

    /// Connect and authenticate, unless already connected. Errors: refused, key changed,
    /// client key rejected, timeout, connection.
    pub async fn connect(&self) -> Result<()> {
        self.inner.closed.store(false, Ordering::Release);
        Inner::connect(&self.inner, false).await.map(|_| ())
    }

    /// Close the link (normal close) and stop reconnecting; asks in flight and requests
    /// waiting for the link fail with a connection error. Idempotent. A later request dials
    /// again.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        let collectors: Vec<_> = {
            let mut state = self.inner.state();
            state.had_link = false;
            state.closes += 1;
            state.collectors.drain().collect()
        };
        self.inner.changed();
        for (_, collecting) in collectors {
            collecting.tx.send(AskInput::Lost { reason: "The client was closed.".into(), resend: false });
        }
        let link = self.inner.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(link) = link {
            link.close().await;
        }
        self.inner.state().phase = "closed";
        self.transport.close();
        Ok(())
    }

    /// Connect if needed, then report the link state (no network round trip). While losses
    /// are supervised (see the module doc) it does not dial: a link that is down is left to the
    /// reconnect loop (started if it does not run) and reported down.
    pub async fn healthcheck(&self) -> Health {
        let mut error = None;
        if !self.connected() {
            if self.inner.supervised() {
                match self.inner.current_link() {
                    Some(link) => self.inner.notice_loss(&link),
                    None => self.inner.supervise(),
                }
            } else if let Err(e) = self.connect().await {
                error = Some(redact(&e.to_string()));
            }
        }
        let link = self.inner.current_link();
        let alive = link.as_ref().is_some_and(|l| l.alive());
        Health {
            connected: link.is_some() && !self.inner.closed.load(Ordering::Acquire),
            handshake_complete: link.is_some(),
            transport_alive: alive,
            last_error: error.or_else(|| if alive { None } else { self.inner.state().last_error.clone() }),
            protocol: Some(self.inner.protocol),
            endpoint: self.inner.new_carrier("info").ok().map(|c| c.endpoint()),
            noise_pattern: link.map(|l| l.pattern.to_string()),
        }
    }

    /// A snapshot of the link (nothing is sent).
    pub fn connection_info(&self) -> ConnectionInfo {
        let link = self.inner.current_link();
        let state = self.inner.state();
        let phase =
            if state.phase == "ready" && !link.as_ref().is_some_and(|l| l.alive()) { "error" } else { state.phase };
        ConnectionInfo {
            phase: phase.to_string(),
            protocol: Some(self.inner.protocol),
            session_id: link.as_ref().map(|l| l.session_id.clone()),
            noise_pattern: link.as_ref().map(|l| l.pattern.to_string()),
            connect_ms: link.as_ref().map(|l| l.timings.connect_ms),
            attempts: link.as_ref().map_or(0, |l| l.timings.attempts),
            reconnects: state.reconnects,
            last_error: state.last_error.clone(),
        }
    }

    /// Send an utterance and collect the hub's spoken reply (spec 6.3), within
    /// [`RequestOptions::timeout`] (default 12 s) from the call, waiting for a link that is down
    /// included (see the module doc for when it waits and when it is sent again).
    pub async fn ask(&self, text: &str, options: RequestOptions) -> Result<Reply> {
        let timeout = options.timeout.unwrap_or(DEFAULT_ASK_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        let tx = Arc::new(Mailbox::default());
        let sent = self.inner.send_utterance(text, &options, None, None, Some(tx.clone()), (deadline, timeout)).await?;
        let _guard = AskGuard { inner: Arc::downgrade(&self.inner), request_id: sent.request_id.clone() };
        let mut collector = ReplyCollector::new(
            &sent.request_id,
            Some(&sent.session_id),
            self.inner.options.reply_settle,
            self.inner.options.empty_reply_wait,
        );
        let again = RequestOptions { request_id: Some(sent.request_id.clone()), ..options };
        loop {
            let timer = collector.deadline().map(tokio::time::Instant::from_std);
            tokio::select! {
                input = tx.recv() => match input {
                    AskInput::Event(event) => {
                        if let Some(outcome) = collector.feed(event, Instant::now()) {
                            return outcome;
                        }
                    }
                    AskInput::Lost { resend: true, .. } => {
                        // the hub restarted before answering: the same request again on the next link
                        if let Err(error) = self.inner.send_utterance(text, &again, None, None, Some(tx.clone()), (deadline, timeout)).await {
                            return collector.abort(error);
                        }
                    }
                    AskInput::Lost { reason, resend: false } => {
                        return collector.abort(Error::Connection(format!("The hub connection dropped before the reply: {reason}")));
                    }
                },
                () = async { match timer { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    if let Some(outcome) = collector.on_timer(Instant::now()) {
                        return outcome;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return collector.on_deadline(timeout),
            }
        }
    }

    /// Send speech or chat text without waiting for a reply; returns the request id. A link
    /// that is down is waited for up to [`RequestOptions::timeout`] (default
    /// [`ClientOptions::send_timeout`]).
    pub async fn send_utterance(&self, text: &str, options: RequestOptions) -> Result<String> {
        let wait = self.inner.send_wait(options.timeout);
        Ok(self.inner.send_utterance(text, &options, None, None, None, wait).await?.request_id)
    }

    /// Send a button / menu pick / command (`context.input.kind = "action"`); a link that is
    /// down is waited for up to [`ClientOptions::send_timeout`].
    pub async fn send_action(&self, payload: &str, options: ActionOptions) -> Result<String> {
        let action = serde_json::json!({"kind": "action", "title": options.title.clone().unwrap_or_else(|| payload.to_string()), "payload": payload});
        let request = RequestOptions {
            lang: options.lang,
            session_id: options.session_id,
            context: options.context,
            ..RequestOptions::default()
        };
        let wait = self.inner.send_wait(None);
        Ok(self.inner.send_utterance(payload, &request, None, Some(("input", &action)), None, wait).await?.request_id)
    }

    /// Send an exact value (QR, barcode, serial): `input = {kind, label, value, exact}`; a link
    /// that is down is waited for up to [`ClientOptions::send_timeout`].
    pub async fn send_code(&self, value: &str, options: CodeOptions) -> Result<String> {
        let kind = options.kind.clone().unwrap_or_else(|| "code".into());
        let code = serde_json::json!({"kind": kind, "label": options.label.clone().unwrap_or_else(|| kind.clone()), "value": value, "exact": true});
        let request = RequestOptions {
            lang: options.lang,
            session_id: options.session_id,
            context: options.context,
            ..RequestOptions::default()
        };
        let wait = self.inner.send_wait(None);
        Ok(self
            .inner
            .send_utterance(value, &request, Some(("input", &code)), Some(("input", &code)), None, wait)
            .await?
            .request_id)
    }

    /// Send a raw bus event `name` with `data` and the runtime context (spec 6.7); a link
    /// that is down is waited for up to [`ClientOptions::send_timeout`].
    pub async fn emit(&self, name: &str, data: Map<String, Value>, context: Map<String, Value>) -> Result<()> {
        if name.trim().is_empty() {
            return Err(Error::InvalidArgument("An event name is a non-empty string.".into()));
        }
        let wait = self.inner.send_wait(None);
        loop {
            let link = self.inner.link_for_request(wait).await?;
            let body = {
                let mut context = Overlay::new(Some(&context));
                self.inner.apply_runtime_context(&mut context, &link);
                bus_body(name, &data, &context)
            };
            match link.send_body(&body).await {
                Ok(()) => return Ok(()),
                Err(error) => self.inner.after_send_failure(&link, error)?,
            }
        }
    }

    /// Related turns sharing one session (spec 6.6).
    pub fn conversation(&self, options: ConversationOptions) -> Conversation {
        Conversation {
            client: self.clone(),
            lang: options.lang.unwrap_or_else(|| "en-us".into()),
            session_id: options.session_id.unwrap_or_else(bus::new_conversation_session_id),
        }
    }
}

/// Turns that share one session id: `ask` carries the conversation state (spec 6.6).
#[derive(Clone)]
pub struct Conversation {
    client: Client,
    /// The language of every turn.
    pub lang: String,
    /// The shared session id.
    pub session_id: String,
}

impl Conversation {
    fn fill(&self, mut options: RequestOptions) -> RequestOptions {
        options.lang = options.lang.or_else(|| Some(self.lang.clone()));
        options.session_id = Some(self.session_id.clone());
        options
    }

    /// Ask within the conversation (as [`Client::ask`]: a link that is down is waited for).
    pub async fn ask(&self, text: &str, options: RequestOptions) -> Result<Reply> {
        self.client.ask(text, self.fill(options)).await
    }

    /// Send an utterance within the conversation.
    pub async fn send_utterance(&self, text: &str, options: RequestOptions) -> Result<String> {
        self.client.send_utterance(text, self.fill(options)).await
    }

    /// Drop the carried conversation state of this session.
    pub fn forget(&self) {
        self.client.inner.state().carried.remove(&self.session_id);
    }
}

/// Unregisters an ask's collector however the ask ends (also when its future is dropped).
struct AskGuard {
    inner: Weak<Inner>,
    request_id: String,
}

impl Drop for AskGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut state = inner.state();
            state.collectors.remove(&self.request_id);
            if let Some(entry) = state.carry_watch.get_mut(&self.request_id) {
                let expiry = Instant::now() + CARRY_GRACE;
                entry.1 = Some(expiry);
                state.carry_expiry.push_back((expiry, self.request_id.clone()));
            }
        }
    }
}

struct Sent {
    request_id: String,
    session_id: String,
}

/// How long a request waits for a link that is down: its deadline, and its timeout (for the
/// error message).
type Wait = (tokio::time::Instant, Duration);

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store(&self) -> &NoiseStore {
        self.store.get_or_init(|| {
            let host = self
                .identity
                .endpoint_for(self.protocol)
                .and_then(|e| url::Url::parse(&e).ok())
                .and_then(|u| u.host_str().map(str::to_string));
            NoiseStore::for_identity(
                self.options.noise_state_dir.as_deref(),
                self.identity.source_path.as_deref(),
                host.as_deref(),
            )
        })
    }

    fn current_link(&self) -> Option<Arc<Link>> {
        self.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn new_carrier(&self, session_id: &str) -> Result<Carrier> {
        Carrier::new(
            self.protocol,
            &self.identity,
            &self.options.useragent,
            session_id,
            self.options.ca_file.as_deref(),
        )
    }

    /// Dial once unless the link is up; `reconnect` counts a new link as a background reconnect
    /// (under the connect lock, so a caller that waited for this dial sees the count).
    async fn connect(self: &Arc<Self>, reconnect: bool) -> Result<Arc<Link>> {
        let _guard = self.connect_lock.lock().await;
        if let Some(link) = self.current_link().filter(|l| l.alive()) {
            return Ok(link);
        }
        let old = self.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(old) = old {
            // its reader may not have told yet: its asks fail now, not at their deadline
            self.end_link(old.id, "The hub connection dropped.", None);
            old.close().await;
        }
        self.state().phase = "connecting";
        let credentials = Credentials {
            access_key: self.identity.access_key.clone(),
            password: self.identity.password.clone(),
            site_id: self.identity.site_id.clone(),
        };
        let session_id = bus::connection_session_id();
        let timeouts = Timeouts { connect: self.options.connect_timeout, handshake: self.options.handshake_timeout };
        let make = || self.new_carrier(&session_id);
        let link = match establish(&make, self.store(), &credentials, &session_id, timeouts).await {
            Ok(link) => Arc::new(link),
            Err(error) => {
                {
                    let mut state = self.state();
                    state.phase = "error";
                    state.last_error = Some(redact(&error.to_string()));
                    state.last_failure = Some(copy_error(&error));
                }
                self.changed();
                return Err(error);
            }
        };
        let weak = Arc::downgrade(self);
        let link_id = link.id;
        {
            let mut state = self.state();
            state.link_id = link_id;
            state.link_ended = false;
            // before the reader starts: a loss it sees at once is supervised too
            state.had_link = true;
        }
        link.start(Arc::new(move |event| {
            if let Some(inner) = weak.upgrade() {
                inner.on_link_event(link_id, event);
            }
        }));
        *self.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(link.clone());
        {
            let mut state = self.state();
            state.phase = "ready";
            state.last_error = None;
            state.last_failure = None;
            state.stopped = None;
            if reconnect {
                state.reconnects += 1;
            }
        }
        self.changed();
        Ok(link)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Losses are supervised: `auto_reconnect` is on and a link was up since the client was
    /// made or closed.
    fn supervised(&self) -> bool {
        self.options.auto_reconnect && self.state().had_link
    }

    /// Start the reconnect loop unless it runs, the client is closed or losses are not
    /// supervised.
    fn supervise(self: &Arc<Self>) {
        if self.supervised() && !self.closed.load(Ordering::Acquire) && !self.reconnecting.swap(true, Ordering::AcqRel)
        {
            let weak = Arc::downgrade(self);
            tokio::spawn(reconnect_loop(weak, Instant::now()));
        }
    }

    /// The reconnect loop ends; a loss it may have missed while ending starts the next one.
    fn end_supervision(self: &Arc<Self>) {
        self.reconnecting.store(false, Ordering::Release);
        if !self.current_link().is_some_and(|l| l.alive()) {
            self.supervise();
        }
    }

    /// The wait of a send with `timeout` (None: [`ClientOptions::send_timeout`]).
    fn send_wait(&self, timeout: Option<Duration>) -> Wait {
        let timeout = timeout.unwrap_or(self.options.send_timeout);
        (tokio::time::Instant::now() + timeout, timeout)
    }

    /// The first loss of link `link_id`, however noticed: its asks get [`AskInput::Lost`]
    /// (with a resend for the unanswered ones when [`resend_unanswered`] says so and losses are
    /// supervised). False when this link's loss was already handled or it is not the current
    /// link.
    fn end_link(&self, link_id: u64, reason: &str, close_code: Option<u16>) -> bool {
        let resend = resend_unanswered(close_code) && self.options.auto_reconnect;
        let mut state = self.state();
        if state.link_id != link_id || state.link_ended {
            return false;
        }
        state.link_ended = true;
        state.phase = "error";
        state.last_error = Some(reason.to_string());
        let resend = resend && state.had_link;
        for collecting in state.collectors.values().filter(|c| c.link_id == link_id) {
            collecting.tx.send(AskInput::Lost { reason: reason.to_string(), resend: resend && !collecting.heard });
        }
        true
    }

    /// A link that is down, noticed by a request: the same handling as a loss the reader saw.
    fn notice_loss(self: &Arc<Self>, link: &Link) {
        self.end_link(link.id, "The hub connection dropped.", None);
        self.supervise();
    }

    /// After a failed send on `link`: Ok to try again (the link was lost and losses are
    /// supervised), else the error.
    fn after_send_failure(self: &Arc<Self>, link: &Link, error: Error) -> Result<()> {
        if link.alive() || !self.supervised() {
            return Err(error);
        }
        self.notice_loss(link);
        Ok(())
    }

    /// The link a request goes out on. Up: at once. Down and supervised: wait for the reconnect
    /// loop, up to the deadline of `wait`, failing at once with the error that stopped the loop
    /// or a refusal / key error of its latest attempt ([`waiter_gives_up`]), or when the client
    /// is closed. Down and not supervised: one connect attempt.
    async fn link_for_request(self: &Arc<Self>, wait: Wait) -> Result<Arc<Link>> {
        let (deadline, timeout) = wait;
        let mut changes = self.changes.subscribe();
        let closes = self.state().closes;
        loop {
            let link = self.current_link();
            if let Some(link) = link.as_ref().filter(|l| l.alive()) {
                return Ok(link.clone());
            }
            if self.state().closes != closes {
                return Err(Error::Connection("The client was closed.".into()));
            }
            if !self.supervised() {
                self.closed.store(false, Ordering::Release);
                return self.connect(false).await;
            }
            {
                let state = self.state();
                if let Some(error) = &state.stopped {
                    return Err(copy_error(error));
                }
                if let Some(error) = state.last_failure.as_ref().filter(|e| waiter_gives_up(e)) {
                    return Err(copy_error(error));
                }
            }
            match link {
                Some(link) => self.notice_loss(&link),
                None => self.supervise(),
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                let last = self
                    .state()
                    .last_failure
                    .as_ref()
                    .map(|e| format!(": {}", redact(&e.to_string())))
                    .unwrap_or_default();
                return Err(Error::Connection(format!(
                    "The hub connection was not back within {} s{last}",
                    timeout.as_secs_f64()
                )));
            }
        }
    }

    /// The runtime context of `link` (spec 6.1) set on `context`.
    fn apply_runtime_context<'a>(&'a self, context: &mut Overlay<'a>, link: &'a Link) {
        bus::apply_runtime_context(
            context,
            &self.options.useragent,
            &link.session_id,
            &self.identity.site_id,
            &self.identity.metadata,
        );
    }

    async fn send_utterance(
        self: &Arc<Self>,
        text: &str,
        options: &RequestOptions,
        data_extra: Option<(&str, &Value)>,
        context_extra: Option<(&str, &Value)>,
        collector: Option<Arc<Mailbox>>,
        wait: Wait,
    ) -> Result<Sent> {
        if text.trim().is_empty() {
            return Err(Error::InvalidArgument("An utterance is a non-empty string.".into()));
        }
        loop {
            let link = self.link_for_request(wait).await?;
            match self.send_utterance_on(&link, text, options, data_extra, context_extra, collector.clone()).await {
                Ok(sent) => return Ok(sent),
                Err(error) => self.after_send_failure(&link, error)?,
            }
        }
    }

    async fn send_utterance_on(
        self: &Arc<Self>,
        link: &Link,
        text: &str,
        options: &RequestOptions,
        data_extra: Option<(&str, &Value)>,
        context_extra: Option<(&str, &Value)>,
        collector: Option<Arc<Mailbox>>,
    ) -> Result<Sent> {
        let effective_sid = options
            .session_id
            .clone()
            .or_else(|| bus::context_session_id(options.context.as_ref()))
            .unwrap_or_else(|| link.session_id.clone());
        let tracked = collector.is_some();
        let request_id = options.request_id.clone().unwrap_or_else(bus::new_request_id);
        let lang = options.lang.as_deref().unwrap_or("en-us");
        let utterances = bus::utterances(text);
        let body = {
            let mut state = self.state();
            let body = {
                // the message is written from the carried fields in place (nothing is copied)
                let carried = if tracked { state.carried.get(&effective_sid) } else { None };
                let mut data = bus::utterance_data(&utterances, lang);
                if let Some((key, value)) = data_extra {
                    data.insert(key, Part::Json(value));
                }
                let mut context = bus::utterance_context(
                    lang,
                    options.session_id.as_deref(),
                    &request_id,
                    options.context.as_ref(),
                    &self.identity.site_id,
                    carried,
                );
                if let Some((key, value)) = context_extra {
                    context.insert(key, Part::Json(value));
                }
                self.apply_runtime_context(&mut context, link);
                bus_body(bus::UTTERANCE, &data, &context)
            };
            match collector {
                Some(tx) => {
                    state.forget_expired_carry_watch(Instant::now());
                    state.collectors.insert(request_id.clone(), Collecting { tx, link_id: link.id, heard: false });
                    state.carry_watch.insert(request_id.clone(), (effective_sid.clone(), None));
                }
                None => state.last_untracked = Some(Instant::now()),
            }
            body
        };
        if let Err(error) = link.send_body(&body).await {
            let mut state = self.state();
            state.collectors.remove(&request_id);
            state.carry_watch.remove(&request_id);
            return Err(error);
        }
        Ok(Sent { request_id, session_id: effective_sid })
    }

    fn on_link_event(self: &Arc<Self>, link_id: u64, event: LinkEvent) {
        match event {
            LinkEvent::Envelope(envelope) => {
                if let Some(bus) = bus_of(*envelope, &self.identity.site_id) {
                    self.on_bus(bus_event(bus));
                }
            }
            LinkEvent::Binary(frame) => {
                self.transport.publish_binary(*frame);
            }
            LinkEvent::Lost { error, close_code } => {
                if self.end_link(link_id, &redact(&error.to_string()), close_code) {
                    self.supervise();
                }
            }
        }
    }

    fn on_bus(&self, event: Event) {
        // a subscriber gets the event as it is; an ask a copy only when a subscriber takes it too
        let subscribers = self.transport.event_sender();
        let mut guard = self.state();
        let state = &mut *guard;
        let collecting = if let Some(rid) = event.request_id() {
            if event.name == EVENT_UTTERANCE_HANDLED {
                let now = Instant::now();
                let watched = state
                    .carry_watch
                    .get(rid)
                    .filter(|(_, expiry)| expiry.is_none_or(|at| at > now))
                    .map(|(sid, _)| sid.clone());
                if let Some(request_session) = watched {
                    remember_conversation(state, &request_session, &event);
                }
            }
            state.collectors.get_mut(rid)
        } else if event.name == EVENT_POLICY_DENIED {
            // a denial without request id goes to the only ask in flight, unless an
            // untracked utterance went out in the last 10 s (spec 6.5)
            let recent_untracked = state.last_untracked.is_some_and(|at| at.elapsed() < UNTRACKED_UTTERANCE_GRACE);
            let is_utterance = event.data.get("denied_type").and_then(Value::as_str) == Some(bus::UTTERANCE);
            if is_utterance && state.collectors.len() == 1 && !recent_untracked {
                state.collectors.values_mut().next()
            } else {
                None
            }
        } else {
            None
        };
        let event = match collecting {
            Some(collecting) => {
                collecting.heard = true;
                match subscribers {
                    Some(_) => {
                        collecting.tx.send(AskInput::Event(event.clone()));
                        event
                    }
                    None => {
                        collecting.tx.send(AskInput::Event(event));
                        return;
                    }
                }
            }
            None => event,
        };
        drop(guard);
        if let Some(subscribers) = subscribers {
            let _ = subscribers.send(event);
        }
    }
}

/// Redial the link lost at `down_since` until it is back, the client is closed or dropped, or
/// the policy says stop (then the stopping error is kept for waiters); each wait comes from the
/// [`RetrySchedule`]. Every failed attempt is published to the waiters by [`Inner::connect`].
async fn reconnect_loop(weak: Weak<Inner>, down_since: Instant) {
    let schedule = RetrySchedule::default();
    let mut late_retries = 0u32;
    let mut refused_since: Option<Instant> = None;
    loop {
        let down_for = down_since.elapsed();
        tokio::time::sleep(schedule.delay(late_retries, down_for, jitter_draw())).await;
        if schedule.is_late(down_for) {
            late_retries = late_retries.saturating_add(1);
        }
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) || inner.current_link().is_some_and(|l| l.alive()) {
            inner.end_supervision();
            return;
        }
        match inner.connect(true).await {
            Ok(_) => {
                inner.end_supervision();
                return;
            }
            Err(error) => {
                refused_since = if verdict_of(&error) == Verdict::Refused {
                    refused_since.or_else(|| Some(Instant::now()))
                } else {
                    None
                };
                let refused_for = refused_since.map_or(Duration::ZERO, |since| since.elapsed());
                if next_step(&error, refused_for) == Step::Stop {
                    inner.state().stopped = Some(copy_error(&error));
                    inner.reconnecting.store(false, Ordering::Release);
                    inner.changed();
                    return;
                }
            }
        }
    }
}

fn remember_conversation(state: &mut State, request_session: &str, event: &Event) {
    let session = event.context.get("session").and_then(Value::as_object);
    let fields = session.map(bus::carried_fields).unwrap_or_default();
    let answered = session.and_then(|s| s.get("session_id")).and_then(Value::as_str).filter(|s| !s.is_empty());
    if fields.is_empty() {
        state.carried.remove(request_session);
        if let Some(answered) = answered {
            state.carried.remove(answered);
        }
        return;
    }
    if let Some(answered) = answered.filter(|a| *a != request_session) {
        carry(&mut state.carried, answered, fields.clone());
    }
    carry(&mut state.carried, request_session, fields);
}

/// `fields` become what session `key` carries.
fn carry(carried: &mut HashMap<String, Map<String, Value>>, key: &str, fields: Map<String, Value>) {
    match carried.get_mut(key) {
        Some(slot) => *slot = fields,
        None => {
            carried.insert(key.to_string(), fields);
        }
    }
}

/// The context as the client sees it (spec 7.3): `hivemind_verified_source_peer` dropped,
/// `destination` renamed `source`.
fn normalise_context(mut context: Map<String, Value>) -> Map<String, Value> {
    context.remove(VERIFIED_PEER_KEY);
    if let Some(destination) = context.remove("destination") {
        context.insert("source".into(), destination);
    }
    context
}

fn bus_event(bus: BusMessage) -> Event {
    Event { name: bus.kind, data: bus.data, context: normalise_context(bus.context) }
}

/// The bus message an inbound envelope delivers to this client, if any (spec 5.1).
fn bus_of(envelope: HiveMessage, site_id: &str) -> Option<BusMessage> {
    match envelope.msg_type.as_str() {
        "bus" => Some(envelope.into_bus_message()),
        "broadcast" => {
            if envelope.target_site_id.as_str() != Some(site_id) {
                return None;
            }
            let inner = envelope.into_inner()?;
            (inner.msg_type == "bus").then(|| inner.into_bus_message())
        }
        _ => None,
    }
}

#[cfg(test)]
mod carry_watch_tests {
    use serde_json::json;

    use super::*;

    fn handled(session: Value) -> Event {
        Event {
            name: EVENT_UTTERANCE_HANDLED.into(),
            data: Map::new(),
            context: json!({"session": session}).as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_handled_session_is_carried_under_the_asked_and_the_answered_session() {
        let mut state = State::default();
        remember_conversation(
            &mut state,
            "asked",
            &handled(json!({"session_id": "answered", "active_skills": ["a"], "lang": "en"})),
        );
        let carried = json!({"active_skills": ["a"]});
        assert_eq!(state.carried.len(), 2);
        assert_eq!(Value::Object(state.carried["asked"].clone()), carried);
        assert_eq!(Value::Object(state.carried["answered"].clone()), carried);
        remember_conversation(&mut state, "asked", &handled(json!({"session_id": "asked", "context": {"k": 1}})));
        assert_eq!(Value::Object(state.carried["asked"].clone()), json!({"context": {"k": 1}}));
        assert_eq!(Value::Object(state.carried["answered"].clone()), carried, "another session keeps its own");
        remember_conversation(&mut state, "asked", &handled(json!({"session_id": "answered", "active_skills": []})));
        assert!(state.carried.is_empty(), "nothing truthy to carry: both forget");
    }

    #[test]
    fn only_entries_whose_grace_ended_are_forgotten() {
        let start = Instant::now();
        let mut state = State::default();
        for (rid, expiry) in [("a", Some(start)), ("b", Some(start + CARRY_GRACE)), ("in-flight", None)] {
            state.carry_watch.insert(rid.into(), ("session".into(), expiry));
            if let Some(at) = expiry {
                state.carry_expiry.push_back((at, rid.into()));
            }
        }
        // "a" was asked again meanwhile and got a later grace: its first expiry must not drop it
        state.carry_watch.insert("a".into(), ("session".into(), Some(start + CARRY_GRACE * 2)));
        state.carry_expiry.push_back((start + CARRY_GRACE * 2, "a".into()));

        state.forget_expired_carry_watch(start + CARRY_GRACE / 2);
        assert_eq!(state.carry_watch.len(), 3);
        state.forget_expired_carry_watch(start + CARRY_GRACE);
        assert!(!state.carry_watch.contains_key("b"));
        assert!(state.carry_watch.contains_key("a") && state.carry_watch.contains_key("in-flight"));
        state.forget_expired_carry_watch(start + CARRY_GRACE * 3);
        assert_eq!(state.carry_watch.keys().collect::<Vec<_>>(), vec!["in-flight"]);
        assert!(state.carry_expiry.is_empty());
    }
}

#[cfg(test)]
mod mailbox_tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn lost(reason: &str) -> AskInput {
        AskInput::Lost { reason: reason.into(), resend: false }
    }

    fn reason(input: AskInput) -> String {
        match input {
            AskInput::Lost { reason, .. } => reason,
            AskInput::Event(event) => event.name,
        }
    }

    #[tokio::test]
    async fn inputs_arrive_in_order_and_a_waiting_ask_is_woken() {
        let mailbox = Arc::new(Mailbox::default());
        mailbox.send(lost("first"));
        mailbox.send(AskInput::Event(Event { name: "speak".into(), ..Event::default() }));
        assert_eq!(reason(mailbox.recv().await), "first");
        assert_eq!(reason(mailbox.recv().await), "speak");
        let sender = mailbox.clone();
        let later = tokio::spawn(async move {
            tokio::task::yield_now().await;
            sender.send(lost("later"));
        });
        assert_eq!(reason(mailbox.recv().await), "later");
        later.await.unwrap();
    }

    #[test]
    fn a_receive_given_up_while_waiting_loses_nothing() {
        let mailbox = Mailbox::default();
        let mut context = Context::from_waker(Waker::noop());
        {
            let mut waiting = pin!(mailbox.recv());
            assert!(waiting.as_mut().poll(&mut context).is_pending());
            mailbox.send(lost("kept"));
            // dropped after the wakeup, before taking anything
        }
        let mut next = pin!(mailbox.recv());
        match next.as_mut().poll(&mut context) {
            Poll::Ready(input) => assert_eq!(reason(input), "kept"),
            Poll::Pending => panic!("the input sent to a cancelled receive was lost"),
        }
    }
}
