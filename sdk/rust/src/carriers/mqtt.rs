//! The MQTT carrier (spec 4.3): the negotiation and Noise messages as MQTT publishes, on
//! rumqttc over rustls.
//!
//! - MQTT 3.1.1, clean session, keepalive 60 s, no automatic reconnect, client id
//!   `thalovant-<32 hex>` (new on every connect), TCP_NODELAY;
//! - TLS is mandatory (the identity's `tls` flag or an `mqtts`/`ssl` scheme); port 8883 when
//!   the URL names none;
//! - topics `<prefix>/in` (client to hub), `<prefix>/out` (hub to client) and `<prefix>/status`
//!   (last will `offline`, `online` once authenticated, both QoS 1 and retained);
//! - opening is CONNECT (CONNACK), SUBSCRIBE `/out` at the identity's QoS (SUBACK), then the
//!   cleartext HELLO on `/in` (the same object as the encrypted HELLO of spec 3.10);
//! - every publish to `/in` uses the identity's QoS, no retain, and is awaited (PUBACK at
//!   QoS 1, within 8 s).
//!
//! `/out` is the identity's topic, not this session's: what the hub sends another session of
//! the same identity (an earlier process that left before reading the answers to its HELLO or
//! its message 1) reaches every session subscribed at that moment. Before this side's
//! handshake completes, a binary publish on it is such a late frame and is dropped here; a
//! cleartext one cannot be told from this session's, so the carrier says its inbound channel is
//! shared ([`MqttCarrier::SHARED_INBOUND`]) and the negotiation skips the hub's answers to
//! another session (see [`crate::protocol::ClientNegotiation::with_shared_channel`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing,
    Packet, QoS, SubscribeReasonCode, TlsConfiguration, Transport,
};
use serde_json::json;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Closed, FirstFailure, Inbound, Incoming, OpenError};
use crate::errors::{Error, Result};
use crate::identity::Identity;

/// Default broker port.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Keepalive.
pub const KEEPALIVE: Duration = Duration::from_secs(60);
/// How long a PUBACK may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the `offline` publish may take on close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Inbound queue bound; overflow ends the session.
pub const MAX_INBOUND: usize = 256;
const MAX_PACKET: usize = 256 * 1024;

/// The three topics of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTopics {
    /// `<prefix>/in`.
    pub inbound: String,
    /// `<prefix>/out`.
    pub outbound: String,
    /// `<prefix>/status`.
    pub status: String,
}

/// The topics of `prefix` (trimmed of whitespace and `/`); refuses an empty prefix or one
/// with `#`, `+` or control characters.
pub fn topics_for_prefix(prefix: Option<&str>) -> Result<MqttTopics> {
    let cleaned = prefix.unwrap_or_default().trim().trim_matches('/').trim();
    if cleaned.is_empty() {
        return Err(Error::UnsupportedProtocol(
            "The identity's MQTT block has no topic_prefix; MQTT needs one.".into(),
        ));
    }
    if cleaned.contains(['#', '+']) || cleaned.chars().any(char::is_control) {
        return Err(Error::UnsupportedProtocol(
            "The MQTT topic_prefix must not contain '#', '+' or control characters.".into(),
        ));
    }
    Ok(MqttTopics {
        inbound: format!("{cleaned}/in"),
        outbound: format!("{cleaned}/out"),
        status: format!("{cleaned}/status"),
    })
}

/// Validated broker settings of one identity.
#[derive(Clone)]
pub struct MqttSettings {
    host: String,
    port: u16,
    username: String,
    password: String,
    topics: MqttTopics,
    qos: QoS,
}

impl MqttSettings {
    /// Check an identity's MQTT block (present, mqtt/mqtts/tcp/ssl URL with a host, TLS, a
    /// usable topic prefix).
    pub fn from_identity(identity: &Identity) -> Result<Self> {
        let Some(credentials) = &identity.mqtt else {
            return Err(Error::UnsupportedProtocol(
                "This identity has no MQTT broker credentials; it cannot use mqtt.".into(),
            ));
        };
        let endpoint = credentials.endpoint.trim();
        let text = if endpoint.contains("://") { endpoint.to_string() } else { format!("mqtt://{endpoint}") };
        let url =
            url::Url::parse(&text).map_err(|_| Error::UnsupportedProtocol("The MQTT endpoint is not a URL.".into()))?;
        let scheme = url.scheme().to_ascii_lowercase();
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        if !["mqtt", "mqtts", "tcp", "ssl"].contains(&scheme.as_str()) || host.is_empty() {
            return Err(Error::UnsupportedProtocol(
                "The MQTT endpoint must be an mqtt://, mqtts://, tcp:// or ssl:// URL with a host.".into(),
            ));
        }
        if !(credentials.tls || scheme == "mqtts" || scheme == "ssl") {
            return Err(Error::UnsupportedProtocol("HiveMind MQTT requires a broker connection with TLS.".into()));
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(DEFAULT_TLS_PORT),
            username: credentials.username.clone(),
            password: credentials.password.clone(),
            topics: topics_for_prefix(credentials.topic_prefix.as_deref())?,
            qos: if credentials.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce },
        })
    }
}

/// The client HELLO of spec 3.10 as compact JSON (sent in cleartext on MQTT).
pub fn hello_text(session_id: &str, site_id: &str) -> String {
    json!({
        "msg_type": "hello",
        "payload": {"pubkey": "", "session": {"session_id": session_id}, "site_id": site_id},
        "metadata": {}, "route": [], "node": null, "target_site_id": null, "target_pubkey": null, "source_peer": null,
    })
    .to_string()
}

type Waiter = Option<oneshot::Sender<()>>;

#[derive(Default)]
struct Acks {
    /// one entry per publish handed to the event loop, in order
    queued: VecDeque<Waiter>,
    /// waiters of QoS 1 publishes by packet id
    by_pkid: HashMap<u16, oneshot::Sender<()>>,
}

struct Shared {
    client: AsyncClient,
    acks: StdMutex<Acks>,
    publish_lock: Mutex<()>,
    failed: FirstFailure,
    alive: AtomicBool,
    authenticated: AtomicBool,
}

impl Shared {
    fn acks(&self) -> std::sync::MutexGuard<'_, Acks> {
        self.acks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fail(&self, closed: Closed) {
        self.alive.store(false, Ordering::Release);
        self.failed.set(&closed);
        let mut acks = self.acks();
        acks.queued.clear();
        acks.by_pkid.clear();
    }

    fn failure(&self) -> Option<Closed> {
        self.failed.get()
    }

    /// Publish and, with `wait`, wait for the broker's acknowledgement.
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        wait: bool,
    ) -> std::result::Result<(), Closed> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.publish_lock.lock().await;
            self.acks().queued.push_back(wait.then_some(tx));
            if let Err(e) = self.client.publish(topic, qos, retain, payload).await {
                // the event loop is gone: how it ended, recorded before it went, is the evidence
                let closed = Closed::new(format!("Cannot publish to the broker: {e}"));
                self.fail(closed.clone());
                return Err(self.failure().unwrap_or(closed));
            }
        }
        if !wait {
            return Ok(());
        }
        match tokio::time::timeout(SEND_TIMEOUT, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.failure().unwrap_or_else(|| Closed::new("The MQTT session is closed."))),
            Err(_) => {
                let closed = Closed::new(format!(
                    "The broker did not acknowledge a publish within {} s.",
                    SEND_TIMEOUT.as_secs()
                ));
                self.fail(closed.clone());
                Err(closed)
            }
        }
    }
}

/// For tests: the cleartext HELLO of one [`MqttCarrier::open`], held back once `/out` is
/// subscribed (see [`MqttCarrier::hold_hello`]).
#[doc(hidden)]
pub struct HeldHello {
    held: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl HeldHello {
    /// Wait until the carrier subscribed to `/out` and holds its HELLO (false: the opening
    /// failed or ended first).
    pub async fn held(&mut self) -> bool {
        (&mut self.held).await.is_ok()
    }

    /// Let the HELLO go.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// The carrier's side of a [`HeldHello`].
struct HelloGate {
    held: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// One MQTT session with a hub through a broker.
pub struct MqttCarrier {
    settings: MqttSettings,
    pin_id: String,
    site_id: String,
    session_id: String,
    tls: Arc<rustls::ClientConfig>,
    shared: Option<Arc<Shared>>,
    task: Option<JoinHandle<()>>,
    closed: AtomicBool,
    hello_gate: Option<HelloGate>,
}

impl MqttCarrier {
    /// A carrier; `session_id` goes into the cleartext HELLO.
    pub fn new(
        settings: MqttSettings,
        pin_id: String,
        site_id: &str,
        session_id: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            settings,
            pin_id,
            site_id: site_id.to_string(),
            session_id: session_id.to_string(),
            tls,
            shared: None,
            task: None,
            closed: AtomicBool::new(false),
            hello_gate: None,
        }
    }

    /// The hub's channel to this client is `<prefix>/out`, one topic per identity: what the hub
    /// sent another session of the identity may arrive before the answers to this session's
    /// HELLO.
    pub const SHARED_INBOUND: bool = true;

    /// For tests: make [`Self::open`] hold its cleartext HELLO, once `/out` is subscribed, until
    /// the returned handle releases it (within the open timeout). A test uses the pause to have
    /// the hub's frames for another session of the identity reach this one first.
    #[doc(hidden)]
    pub fn hold_hello(&mut self) -> HeldHello {
        let (held_tx, held) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        self.hello_gate = Some(HelloGate { held: held_tx, release: release_rx });
        HeldHello { held, release }
    }

    /// The HTTPS pin id (MQTT shares it).
    pub fn pin_id(&self) -> String {
        self.pin_id.clone()
    }

    /// `mqtts://host:port`.
    pub fn endpoint(&self) -> String {
        let host = if self.settings.host.contains(':') {
            format!("[{}]", self.settings.host)
        } else {
            self.settings.host.clone()
        };
        format!("mqtts://{host}:{}", self.settings.port)
    }

    /// True while the broker connection and the session are up.
    pub fn alive(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.shared.as_ref().is_some_and(|s| s.alive.load(Ordering::Acquire))
    }

    /// CONNECT, SUBSCRIBE and the cleartext HELLO, within `timeout`.
    pub async fn open(&mut self, timeout: Duration) -> std::result::Result<Inbound, OpenError> {
        let tls = self.tls.clone();
        let client_id = format!("thalovant-{}", crate::control::random_hex(16));
        let mut options = MqttOptions::new(client_id, self.settings.host.clone(), self.settings.port);
        options
            .set_credentials(self.settings.username.clone(), self.settings.password.clone())
            .set_keep_alive(KEEPALIVE)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_last_will(LastWill::new(self.settings.topics.status.clone(), "offline", QoS::AtLeastOnce, true))
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(timeout.as_secs().max(1));
        eventloop.set_network_options(network);
        let shared = Arc::new(Shared {
            client,
            acks: StdMutex::new(Acks::default()),
            publish_lock: Mutex::new(()),
            failed: FirstFailure::default(),
            alive: AtomicBool::new(false),
            authenticated: AtomicBool::new(false),
        });
        self.shared = Some(shared.clone());
        let (tx, rx) = mpsc::channel(MAX_INBOUND);
        let (connack_tx, connack_rx) = oneshot::channel();
        let (suback_tx, suback_rx) = oneshot::channel();
        let gate = self.hello_gate.take();
        self.task = Some(tokio::spawn(event_loop(
            eventloop,
            shared.clone(),
            self.settings.topics.outbound.clone(),
            tx,
            connack_tx,
            suback_tx,
        )));
        let opening = async {
            match connack_rx.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(OpenError::Failed(message)),
                Err(_) => return Err(OpenError::Failed("The MQTT connection closed while opening.".into())),
            }
            shared
                .client
                .subscribe(self.settings.topics.outbound.clone(), self.settings.qos)
                .await
                .map_err(|e| OpenError::Failed(format!("Cannot subscribe to the hub's topic: {e}")))?;
            match suback_rx.await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(OpenError::Failed(
                        "The MQTT broker refused the subscription to the hub's topic.".into(),
                    ));
                }
                Err(_) => return Err(OpenError::Failed("The MQTT connection closed while subscribing.".into())),
            }
            shared.alive.store(true, Ordering::Release);
            if let Some(gate) = gate {
                let _ = gate.held.send(());
                let _ = gate.release.await;
            }
            let hello = hello_text(&self.session_id, &self.site_id).into_bytes();
            shared
                .publish(&self.settings.topics.inbound, hello, self.settings.qos, false, true)
                .await
                .map_err(|e| OpenError::Failed(e.message))
        };
        match tokio::time::timeout(timeout, opening).await {
            Ok(Ok(())) => Ok(rx),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(OpenError::Timeout),
        }
    }

    /// Publish one message to `/in`: negotiation text as UTF-8, Noise messages as raw bytes.
    /// The first binary message is followed by `online` on the status topic.
    pub async fn send(&self, payload: Vec<u8>, binary: bool) -> std::result::Result<(), Closed> {
        let shared = self.shared.as_ref().ok_or_else(|| Closed::new("The MQTT session is not open."))?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Closed::new("The MQTT session is closed."));
        }
        let first = binary && !shared.authenticated.swap(true, Ordering::AcqRel);
        shared.publish(&self.settings.topics.inbound, payload, self.settings.qos, false, true).await?;
        if first {
            shared.publish(&self.settings.topics.status, b"online".to_vec(), QoS::AtLeastOnce, true, false).await?;
        }
        Ok(())
    }

    /// Publish `offline` (retained), DISCONNECT, stop the event loop.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(shared) = &self.shared {
            if shared.alive.load(Ordering::Acquire) {
                let offline =
                    shared.publish(&self.settings.topics.status, b"offline".to_vec(), QoS::AtLeastOnce, true, true);
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, offline).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, shared.client.disconnect()).await;
                // let the event loop write the DISCONNECT before it stops
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    while shared.alive.load(Ordering::Acquire) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
            }
            shared.fail(Closed::new("The MQTT session is closed."));
        }
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Drop for MqttCarrier {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn event_loop(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    outbound: String,
    tx: mpsc::Sender<std::result::Result<Incoming, Closed>>,
    connack: oneshot::Sender<std::result::Result<(), String>>,
    suback: oneshot::Sender<bool>,
) {
    let mut connack = Some(connack);
    let mut suback = Some(suback);
    let end = loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if let Some(sender) = connack.take() {
                    let outcome = if ack.code == ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("The MQTT broker refused the connection: {:?}.", ack.code))
                    };
                    let _ = sender.send(outcome);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if let Some(sender) = suback.take() {
                    let _ = sender.send(ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))));
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if publish.topic != outbound {
                    continue;
                }
                let payload = publish.payload.to_vec();
                let text = !shared.authenticated.load(Ordering::Acquire)
                    && payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let item = match (text, String::from_utf8(payload)) {
                    (true, Ok(text)) => Incoming::Text(text),
                    // A binary publish before this side's handshake completed cannot be for this
                    // session (it has no keys yet): it is a late frame of the previous session on
                    // the same topic, so it is dropped rather than read as a protocol violation.
                    _ if !shared.authenticated.load(Ordering::Acquire) => continue,
                    (_, Ok(text)) => Incoming::Binary(text.into_bytes()),
                    (_, Err(e)) => Incoming::Binary(e.into_bytes()),
                };
                if tx.try_send(Ok(item)).is_err() {
                    break Closed::new(format!("More than {MAX_INBOUND} MQTT messages queued; disconnecting."));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(waiter) = shared.acks().by_pkid.remove(&ack.pkid) {
                    let _ = waiter.send(());
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut acks = shared.acks();
                if let Some(Some(waiter)) = acks.queued.pop_front() {
                    if pkid == 0 {
                        let _ = waiter.send(());
                    } else {
                        acks.by_pkid.insert(pkid, waiter);
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                break Closed::new("The MQTT session is closed.");
            }
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => {
                let message = format!("The MQTT broker refused the connection: {code:?}.");
                if let Some(sender) = connack.take() {
                    let _ = sender.send(Err(message.clone()));
                }
                break Closed::new(message);
            }
            Err(e) => {
                let message = format!("The MQTT broker connection was lost ({e}).");
                if let Some(sender) = connack.take() {
                    let _ = sender.send(Err(format!("Cannot reach the MQTT broker: {e}")));
                }
                break Closed::new(message);
            }
        }
    };
    shared.fail(end.clone());
    let _ = tx.send(Err(end)).await;
}
