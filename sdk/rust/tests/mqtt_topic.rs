//! MQTT's hub-to-client topic `<prefix>/out` belongs to the identity, not to one session: what
//! the hub sends another session of the same identity (an earlier process that left before
//! reading the answers to its HELLO or its message 1) reaches every session subscribed at that
//! moment, and the hub's HELLO and offer read the same for every session. These tests make that
//! happen on purpose against the testbed's `serve --demo`: a second broker connection with the
//! identity's credentials plays the other session (the identity may publish only to `/in`, so
//! it sends a HELLO or a message 1 there and the hub publishes the stale answers on `/out`),
//! and the SDK's own MQTT carrier holds its cleartext HELLO, once subscribed to `/out`, until
//! the other session's answers have been published there. Each step waits for the broker event
//! it needs; nothing sleeps.
//!
//! The hub publishes on `/out` in order, so answers it published before it read our HELLO reach
//! our subscription before its answers to that HELLO: the other session seeing them on `/out`
//! is enough to know they are queued ahead of ours.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration, Transport,
};
use serde_json::{Map, Value};
use support::*;
use thalovant::carriers::Carrier;
use thalovant::carriers::mqtt::{MqttTopics, hello_text, topics_for_prefix};
use thalovant::noise_store::NoiseStore;
use thalovant::protocol::{ClientNegotiation, HiveMessage, KeyPair};
use thalovant::runtime::bus;
use thalovant::runtime::link::{Credentials, Link, LinkEvent, Timeouts, establish};
use thalovant::{HubProtocol, Identity};
use tokio::sync::{mpsc, watch};

/// Bounds each wait against hanging (a slow, shared CI machine); not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// What a hub publish on `/out` is, read the way a test can without keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hello,
    Offer,
    Message2,
    Binary,
}

fn kind_of(payload: &[u8]) -> Kind {
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(payload) else {
        return Kind::Binary;
    };
    if message.get("msg_type").and_then(Value::as_str) == Some("hello") {
        return Kind::Hello;
    }
    if message.get("payload").and_then(|p| p.get("noise")).and_then(|n| n.get("msg")).is_some_and(Value::is_string) {
        Kind::Message2
    } else {
        Kind::Offer
    }
}

/// What the other session's broker connection has seen.
#[derive(Debug, Default, Clone)]
struct Seen {
    connected: bool,
    subscribed: bool,
    /// Every publish on `/out`, in order: its kind, and its text unless binary.
    out: Vec<(Kind, String)>,
    failed: Option<String>,
}

impl Seen {
    fn kinds(&self) -> Vec<Kind> {
        self.out.iter().map(|(kind, _)| *kind).collect()
    }

    fn has(&self, kind: Kind) -> bool {
        self.out.iter().any(|(k, _)| *k == kind)
    }
}

/// Another broker session with the identity's credentials: an earlier process of the same
/// client. It subscribes to `/out` and records what the hub publishes there.
struct OtherSession {
    client: AsyncClient,
    topics: MqttTopics,
    seen: watch::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl OtherSession {
    async fn connect(identity: &Identity) -> Self {
        let mqtt = identity.mqtt.as_ref().expect("the demo hub enables MQTT");
        let topics = topics_for_prefix(mqtt.topic_prefix.as_deref()).unwrap();
        let client_id = format!("thalovant-test-{}", unique("other"));
        let mut options = MqttOptions::new(client_id, mqtt.host.clone(), mqtt.port);
        options
            .set_credentials(mqtt.username.clone(), mqtt.password.clone())
            .set_keep_alive(Duration::from_secs(60))
            .set_clean_session(true)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                thalovant::tls::client_config().unwrap(),
            )));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, seen) = watch::channel(Seen::default());
        let outbound = topics.outbound.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {
                        tx.send_modify(|s| s.connected = true);
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let granted = ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                        tx.send_modify(|s| {
                            if granted { s.subscribed = true } else { s.failed = Some("subscription refused".into()) }
                        });
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == outbound => {
                        let kind = kind_of(&publish.payload);
                        let text = if kind == Kind::Binary {
                            String::new()
                        } else {
                            String::from_utf8_lossy(&publish.payload).into_owned()
                        };
                        tx.send_modify(|s| s.out.push((kind, text)));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tx.send_modify(|s| s.failed = Some(error.to_string()));
                        break;
                    }
                }
            }
        });
        let other = Self { client, topics, seen, task };
        other.wait_for("CONNACK", |s| s.connected).await;
        other.client.subscribe(other.topics.outbound.clone(), QoS::AtLeastOnce).await.unwrap();
        other.wait_for("SUBACK", |s| s.subscribed).await;
        other
    }

    /// Wait until `ready` holds for what this session has seen; what it has seen then.
    async fn wait_for(&self, what: &str, ready: impl Fn(&Seen) -> bool) -> Seen {
        let mut seen = self.seen.clone();
        let waited = tokio::time::timeout(PATIENCE, seen.wait_for(|s| s.failed.is_some() || ready(s))).await;
        let seen = waited
            .unwrap_or_else(|_| panic!("the other session saw no {what}"))
            .expect("the other session's loop runs")
            .clone();
        assert!(seen.failed.is_none(), "the other session failed waiting for {what}: {seen:?}");
        seen
    }

    /// Publish `text` to `/in`, as the other process's carrier would.
    async fn send(&self, text: String) {
        self.client.publish(self.topics.inbound.clone(), QoS::AtLeastOnce, false, text.into_bytes()).await.unwrap();
    }

    async fn end(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// One client of the identity, its first MQTT session's cleartext HELLO held.
struct OurClient {
    identity: Identity,
    store: NoiseStore,
    session_id: String,
}

impl OurClient {
    fn new(identity: &Identity, scratch: &Scratch) -> Self {
        Self {
            identity: identity.clone(),
            store: NoiseStore::new(scratch.path().join("state")),
            session_id: bus::connection_session_id(),
        }
    }

    /// Establish a link over MQTT; `meanwhile` runs while the first session holds its HELLO
    /// (subscribed to `/out`), and the HELLO goes once it returns.
    async fn establish_while_held(&self, meanwhile: impl Future<Output = ()>) -> thalovant::Result<Link> {
        let (held_tx, mut held_rx) = mpsc::unbounded_channel();
        let first = AtomicBool::new(true);
        let make = || {
            let mut carrier =
                Carrier::new(HubProtocol::Mqtt, &self.identity, "thalovant-rust-test", &self.session_id, None)?;
            if let Carrier::Mqtt(mqtt) = &mut carrier
                && first.swap(false, Ordering::AcqRel)
            {
                let _ = held_tx.send(mqtt.hold_hello());
            }
            Ok(carrier)
        };
        let credentials = Credentials {
            access_key: self.identity.access_key.clone(),
            password: self.identity.password.clone(),
            site_id: self.identity.site_id.clone(),
        };
        // the hold is part of opening: give it time beyond the default 4 s
        let timeouts = Timeouts { connect: PATIENCE, handshake: PATIENCE };
        let connecting = establish(&make, &self.store, &credentials, &self.session_id, timeouts);
        let holding = async {
            let mut hold = held_rx.recv().await.expect("the first carrier was made");
            assert!(hold.held().await, "the carrier subscribed to /out and holds its HELLO");
            meanwhile.await;
            hold.release();
        };
        let (link, ()) = tokio::join!(connecting, holding);
        link
    }

    /// Ask over `link` (started here) and return the first speech.
    async fn ask(&self, link: &Link, question: &str) -> String {
        let (tx, mut events) = mpsc::unbounded_channel();
        link.start(std::sync::Arc::new(move |event| {
            let _ = tx.send(event);
        }));
        let (_, data, context) =
            bus::utterance_message(question, "en-us", None, None, None, &self.identity.site_id, None);
        let context = bus::runtime_context(
            Some(&context),
            "thalovant-rust-test",
            &link.session_id,
            &self.identity.site_id,
            &Map::new(),
        );
        link.send_envelope(&HiveMessage::bus(bus::UTTERANCE, data, context)).await.unwrap();
        let spoken = async {
            while let Some(event) = events.recv().await {
                match event {
                    LinkEvent::Envelope(message) => {
                        let bus = message.bus_message();
                        if bus.kind == "speak"
                            && let Some(said) = bus.data.get("utterance").and_then(Value::as_str)
                        {
                            return said.to_string();
                        }
                    }
                    LinkEvent::Binary(_) => {}
                    LinkEvent::Lost { error, .. } => panic!("the link was lost: {error:?}"),
                }
            }
            panic!("the link's events ended");
        };
        tokio::time::timeout(PATIENCE, spoken).await.expect("the hub answered")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_and_offer_the_hub_sent_another_session_first_do_not_start_a_second_negotiation() {
    let scratch = Scratch::new("mqtt-topic-hello");
    let (identity, _) = provision_in(scratch.path(), "identity.json", "rust-mqtt-topic").await;
    let ours = OurClient::new(&identity, &scratch);
    let other = OtherSession::connect(&identity).await;
    let link = ours
        .establish_while_held(async {
            // the other session's HELLO: the hub answers with its HELLO and offer on /out
            other.send(hello_text("thalovant-rust-mqtt-other", &identity.site_id)).await;
            other.wait_for("offer", |s| s.has(Kind::Offer)).await;
        })
        .await
        .unwrap_or_else(|e| panic!("the stale HELLO and offer ended the negotiation: {e:?}"));
    // message 1 was built on the other session's copies, equal to the hub's own: no retry
    assert_eq!((link.timings.attempts, link.pattern), (1, "XXpsk2"));
    let seen = other.wait_for("message 2", |s| s.has(Kind::Message2)).await;
    assert_eq!(seen.kinds()[..5], [Kind::Hello, Kind::Offer, Kind::Hello, Kind::Offer, Kind::Message2]);
    assert_eq!(seen.out[0].1, seen.out[2].1, "the hub's HELLO reads the same for every session");
    assert_eq!(seen.out[1].1, seen.out[3].1, "the hub's offer reads the same for every session");
    assert_eq!(ours.ask(&link, "What can this hub do?").await, CAPABILITIES);
    link.close().await;
    other.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_2_the_hub_sent_another_session_before_answering_our_hello_is_not_ours() {
    let scratch = Scratch::new("mqtt-topic-message2");
    let (identity, _) = provision_in(scratch.path(), "identity.json", "rust-mqtt-topic").await;
    let ours = OurClient::new(&identity, &scratch);
    // the other session: HELLO, the hub's HELLO and offer (before we subscribe), then message 1
    let other = OtherSession::connect(&identity).await;
    other.send(hello_text("thalovant-rust-mqtt-other", &identity.site_id)).await;
    let seen = other.wait_for("offer", |s| s.has(Kind::Offer)).await;
    let mut negotiation = ClientNegotiation::new(KeyPair::generate().unwrap(), &identity.site_id, "other", None, true);
    for (_, text) in &seen.out {
        negotiation.receive_text(text.as_bytes()).unwrap();
    }
    // XXpsk2 message 1 does not use the PSK yet: any key gets the hub's message 2
    let message1 = negotiation.start(&[0u8; 32]).unwrap();
    let link = ours
        .establish_while_held(async {
            other.send(message1).await;
            other.wait_for("message 2", |s| s.has(Kind::Message2)).await;
        })
        .await
        .unwrap_or_else(|e| panic!("the stale message 2 ended the negotiation: {e:?}"));
    assert_eq!((link.timings.attempts, link.pattern), (1, "XXpsk2"));
    let seen = other
        .wait_for("the answer to our HELLO", |s| s.kinds().iter().filter(|k| **k == Kind::Message2).count() == 2)
        .await;
    assert_eq!(seen.kinds()[..6], [Kind::Hello, Kind::Offer, Kind::Message2, Kind::Hello, Kind::Offer, Kind::Message2]);
    assert_eq!(ours.ask(&link, "What can this hub do?").await, CAPABILITIES);
    link.close().await;
    other.end().await;
}
