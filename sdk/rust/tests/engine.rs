//! The sans-I/O engine against a hub played by `snow` in the responder role, and property
//! tests (a bounded fuzz run) over the frame and envelope decoders: every input gives a value
//! or a typed error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use thalovant::protocol::channel::{Opener, Sealer};
use thalovant::protocol::envelope::{
    HiveMessage, bus_bytes, envelope_from_map, envelope_from_value, parse_json_object,
};
use thalovant::protocol::negotiation::Outgoing;
use thalovant::protocol::wire1::Wire1Payload;
use thalovant::protocol::{
    ClientNegotiation, KeyPair, ProtocolError, Reassembler, build_prologue, canonical_json, decode_frame,
    encode_binary, encode_json, parse_envelope, split_plaintext,
};

const PSK: [u8; 32] = [7u8; 32];

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// A hub for one handshake: HELLO, offer, then the Noise responder on `snow`.
struct Hub {
    key: KeyPair,
    hello: Map<String, Value>,
    offer: Map<String, Value>,
    state: Option<snow::HandshakeState>,
}

impl Hub {
    fn new(key: KeyPair, patterns: &[&str], suite: &str) -> Self {
        Self {
            key,
            hello: object(json!({"node_id": "node-alpha", "pubkey": "", "site_id": "hub"})),
            offer: object(json!({
                "handshake": true, "binarize": false, "encodings": ["JSON-B64", "JSON-HEX"],
                "noise": {"patterns": patterns, "suites": [suite]},
            })),
            state: None,
        }
    }

    fn opening(&self) -> [String; 2] {
        [
            json!({"msg_type": "hello", "payload": self.hello}).to_string(),
            json!({"msg_type": "shake", "payload": self.offer}).to_string(),
        ]
    }

    /// Read message 1 (with the pinned client key for KK); message 2 as text.
    fn message1(&mut self, text: &str, pinned_client: Option<&[u8; 32]>) -> String {
        let message: Value = serde_json::from_str(text).unwrap();
        let noise = &message["payload"]["noise"];
        let (pattern, suite) = (noise["pattern"].as_str().unwrap(), noise["suite"].as_str().unwrap());
        let name = format!("Noise_{pattern}_{suite}");
        let prologue = build_prologue(&self.hello, &self.offer, &name).unwrap();
        let location = if pattern == "KKpsk0" { 0 } else { 2 };
        let mut builder = snow::Builder::new(name.parse().unwrap())
            .local_private_key(self.key.private_bytes())
            .unwrap()
            .prologue(&prologue)
            .unwrap()
            .psk(location, &PSK)
            .unwrap();
        if let Some(client) = pinned_client {
            builder = builder.remote_public_key(client).unwrap();
        }
        let mut state = builder.build_responder().unwrap();
        let mut payload = vec![0u8; 65535];
        let n = state.read_message(&hex::decode(noise["msg"].as_str().unwrap()).unwrap(), &mut payload).unwrap();
        assert_eq!(&payload[..n], br#"{"binarize":false,"encodings":[]}"#);
        let mut out = vec![0u8; 65535];
        let n = state.write_message(br#"{"binarize":false}"#, &mut out).unwrap();
        self.state = Some(state);
        json!({"msg_type": "shake", "payload": {"noise": {"msg": hex::encode(&out[..n])}}}).to_string()
    }

    fn message3(&mut self, text: &str) {
        let message: Value = serde_json::from_str(text).unwrap();
        let mut payload = vec![0u8; 65535];
        let bytes = hex::decode(message["payload"]["noise"]["msg"].as_str().unwrap()).unwrap();
        self.state.as_mut().unwrap().read_message(&bytes, &mut payload).unwrap();
    }

    fn transport(&mut self) -> snow::TransportState {
        self.state.take().unwrap().into_transport_mode().unwrap()
    }
}

fn texts(outputs: &[Outgoing]) -> Vec<String> {
    outputs.iter().filter_map(|o| if let Outgoing::Text(t) = o { Some(t.clone()) } else { None }).collect()
}

fn binaries(outputs: &[Outgoing]) -> Vec<Vec<u8>> {
    outputs.iter().filter_map(|o| if let Outgoing::Binary(b) = o { Some(b.clone()) } else { None }).collect()
}

/// Run a client negotiation against `hub` up to the outputs that follow message 2.
fn negotiate(
    client: &mut ClientNegotiation,
    hub: &mut Hub,
    pinned_client: Option<&[u8; 32]>,
) -> Result<Vec<Outgoing>, ProtocolError> {
    for text in hub.opening() {
        assert!(client.receive_text(text.as_bytes())?.is_empty());
    }
    assert!(client.needs_psk());
    let message1 = client.start(&PSK)?;
    let message2 = hub.message1(&message1, pinned_client);
    client.receive_text(message2.as_bytes())
}

#[test]
fn xx_then_kk_against_a_snow_responder_in_both_suites() {
    for suite in ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"] {
        let hub_key = KeyPair::generate().unwrap();
        let client_key = KeyPair::generate().unwrap();

        let mut hub = Hub::new(hub_key.clone(), &["XXpsk2"], suite);
        let mut client = ClientNegotiation::new(client_key.clone(), "site", "session-1", None, false);
        let outputs = negotiate(&mut client, &mut hub, None).unwrap();
        assert_eq!(client.pattern, Some("XXpsk2"));
        hub.message3(&texts(&outputs)[0]);
        let mut hub_transport = hub.transport();
        let hello = &binaries(&outputs)[0];
        let mut plain = vec![0u8; 65535];
        let n = hub_transport.read_message(hello, &mut plain).unwrap();
        assert_eq!(plain[0], 0x00);
        let envelope = parse_envelope(&plain[1..n]).unwrap();
        assert_eq!(envelope.msg_type, "hello");
        assert_eq!(envelope.payload["session"]["session_id"], "session-1");
        assert_eq!(client.hub_static, Some(hub_key.public));

        // the hub answers on the channel; a large body comes back chunked and whole
        let (mut sealer, mut opener): (Sealer, Opener) = client.take_channel().unwrap();
        let big = vec![b'x'; 140_000];
        let body = serde_json::to_vec(&json!({"msg_type": "bus", "payload": {"type": "speak", "data": {"utterance": String::from_utf8(big).unwrap()}}})).unwrap();
        let mut frame = None;
        for part in split_plaintext(&body, false, 65000) {
            let mut out = vec![0u8; part.len() + 16];
            let n = hub_transport.write_message(&part, &mut out).unwrap();
            frame = opener.open(&out[..n]).unwrap();
        }
        let frame = frame.unwrap();
        assert_eq!(
            parse_envelope(&frame.body).unwrap().bus_message().data["utterance"].as_str().unwrap().len(),
            140_000
        );
        for part in sealer.seal_json(&body).unwrap() {
            assert!(part.len() <= 65535);
            hub_transport.read_message(&part, &mut vec![0u8; 65535]).unwrap();
        }

        // reconnect: the client holds a pin, the hub pinned the client key: KK, two messages
        let mut hub = Hub::new(hub_key.clone(), &["KKpsk0", "XXpsk2"], suite);
        let mut client = ClientNegotiation::new(client_key.clone(), "site", "session-2", Some(hub_key.public), false);
        let outputs = negotiate(&mut client, &mut hub, Some(&client_key.public)).unwrap();
        assert_eq!(client.pattern, Some("KKpsk0"));
        assert!(texts(&outputs).is_empty(), "KK has no message 3");
        assert_eq!(binaries(&outputs).len(), 1);
    }
}

#[test]
fn a_hub_with_another_key_is_kk_failed_then_hub_key_changed() {
    let pinned = KeyPair::generate().unwrap();
    let other = KeyPair::generate().unwrap();
    let client_key = KeyPair::generate().unwrap();
    // KK toward the pinned key: the impostor cannot even read message 1 with its own key, so
    // it answers garbage; the client reads KK failure and retries XX
    let mut client = ClientNegotiation::new(client_key.clone(), "site", "s", Some(pinned.public), false);
    let hub = Hub::new(other.clone(), &["KKpsk0", "XXpsk2"], "25519_ChaChaPoly_SHA256");
    for text in hub.opening() {
        client.receive_text(text.as_bytes()).unwrap();
    }
    client.start(&PSK).unwrap();
    let decoy = json!({"msg_type": "shake", "payload": {"noise": {"msg": hex::encode([9u8; 80])}}}).to_string();
    assert!(matches!(client.receive_text(decoy.as_bytes()), Err(ProtocolError::KkFailed(_))));
    // the XX retry completes, and the key differs from the pin
    let mut hub = Hub::new(other, &["KKpsk0", "XXpsk2"], "25519_ChaChaPoly_SHA256");
    let mut client = ClientNegotiation::new(client_key, "site", "s", Some(pinned.public), true);
    assert!(matches!(negotiate(&mut client, &mut hub, None), Err(ProtocolError::HubKeyChanged(_))));
}

#[test]
fn a_wrong_psk_fails_xx_message_2_as_a_decrypt_error() {
    let mut hub = Hub::new(KeyPair::generate().unwrap(), &["XXpsk2"], "25519_AESGCM_SHA256");
    let mut client = ClientNegotiation::new(KeyPair::generate().unwrap(), "site", "s", None, false);
    for text in hub.opening() {
        client.receive_text(text.as_bytes()).unwrap();
    }
    let message1 = client.start(&[8u8; 32]).unwrap();
    let message2 = hub.message1(&message1, None);
    assert!(matches!(client.receive_text(message2.as_bytes()), Err(ProtocolError::Decrypt(_))));
    // dead afterwards
    assert!(client.receive_text(b"{}").is_err());
}

#[test]
fn out_of_order_and_malformed_negotiation_is_a_negotiation_error() {
    let offer = json!({"msg_type": "shake", "payload": {"noise": {"patterns": ["XXpsk2"], "suites": ["25519_ChaChaPoly_SHA256"]}}}).to_string();
    let hello = json!({"msg_type": "hello", "payload": {"node_id": "n"}}).to_string();
    let cases: Vec<Vec<String>> = vec![
        vec![offer.clone()],
        vec![hello.clone(), hello.clone()],
        vec!["not json".into()],
        vec![hello.clone(), json!({"msg_type": "bus", "payload": {}}).to_string()],
        vec![hello.clone(), json!({"msg_type": "shake", "payload": {"ciphers": ["AES-GCM"]}}).to_string()],
        vec![hello.clone(), json!({"msg_type": "shake", "payload": {"noise": {"msg": "zz"}}}).to_string()],
        vec![
            hello,
            json!({"msg_type": "shake", "payload": {"noise": {"patterns": ["NNpsk0"], "suites": []}}}).to_string(),
        ],
    ];
    for case in cases {
        let mut client = ClientNegotiation::new(KeyPair::generate().unwrap(), "site", "s", None, false);
        let failed = case.iter().any(|text| client.receive_text(text.as_bytes()).is_err());
        assert!(failed, "{case:?}");
    }
}

/// A client negotiation on a channel shared across sessions (MQTT's `/out`).
fn shared() -> ClientNegotiation {
    ClientNegotiation::new(KeyPair::generate().unwrap(), "site", "sid", None, false).with_shared_channel(true)
}

/// A message 2 of another session's handshake.
fn stale_message2() -> String {
    json!({"msg_type": "shake", "payload": {"noise": {"msg": hex::encode([7u8; 96])}}}).to_string()
}

/// Message 1 to `hub`, its message 2 back: the handshake completes and the hub reads the
/// client's encrypted HELLO (so both built the handshake on the same HELLO and offer).
fn finish(hub: &mut Hub, client: &mut ClientNegotiation, message1: &str) {
    let outputs = client.receive_text(hub.message1(message1, None).as_bytes()).unwrap();
    assert!(client.complete());
    hub.message3(&texts(&outputs)[0]);
    let mut plain = vec![0u8; 65535];
    let n = hub.transport().read_message(&binaries(&outputs)[0], &mut plain).unwrap();
    assert_eq!(parse_envelope(&plain[1..n]).unwrap().msg_type, "hello");
}

const CHACHA: &str = "25519_ChaChaPoly_SHA256";
const AESGCM: &str = "25519_AESGCM_SHA256";

#[test]
fn shared_channel_skips_another_sessions_message_2_and_an_offer_without_its_hello() {
    let mut hub = Hub::new(KeyPair::generate().unwrap(), &["XXpsk2"], CHACHA);
    let [hello, offer] = hub.opening();
    let mut client = shared();
    assert!(client.receive_text(stale_message2().as_bytes()).unwrap().is_empty());
    assert!(client.receive_text(offer.as_bytes()).unwrap().is_empty());
    assert!(!client.needs_psk(), "an offer before any HELLO is another session's");
    client.receive_text(hello.as_bytes()).unwrap();
    assert!(client.receive_text(stale_message2().as_bytes()).unwrap().is_empty());
    client.receive_text(offer.as_bytes()).unwrap();
    assert!(client.receive_text(stale_message2().as_bytes()).unwrap().is_empty());
    assert!(client.needs_psk());
    let message1 = client.start(&PSK).unwrap();
    finish(&mut hub, &mut client, &message1);
}

#[test]
fn shared_channel_before_message_1_the_newest_hello_and_offer_win() {
    let key = KeyPair::generate().unwrap();
    // another session's hub state: another HELLO, and an offer of another suite
    let mut stale = Hub::new(key.clone(), &["XXpsk2"], AESGCM);
    stale.hello.insert("peer".into(), json!("an earlier session's hub state"));
    let mut hub = Hub::new(key, &["XXpsk2"], CHACHA);
    let mut client = shared();
    for text in stale.opening().iter().chain(hub.opening().iter()) {
        assert!(client.receive_text(text.as_bytes()).unwrap().is_empty());
    }
    assert_eq!(client.suite, Some(CHACHA));
    let message1 = client.start(&PSK).unwrap();
    finish(&mut hub, &mut client, &message1);

    // a newer offer after the HELLO, before message 1: the newest wins
    let mut hub = Hub::new(KeyPair::generate().unwrap(), &["XXpsk2"], CHACHA);
    let older = Hub::new(hub.key.clone(), &["XXpsk2"], AESGCM);
    let [hello, offer] = hub.opening();
    let mut client = shared();
    for text in [&hello, &older.opening()[1], &offer] {
        client.receive_text(text.as_bytes()).unwrap();
    }
    assert_eq!(client.suite, Some(CHACHA));
    let message1 = client.start(&PSK).unwrap();
    finish(&mut hub, &mut client, &message1);
}

#[test]
fn shared_channel_after_message_1_the_hubs_own_copies_of_its_pair_are_skipped() {
    let mut hub = Hub::new(KeyPair::generate().unwrap(), &["XXpsk2"], CHACHA);
    let mut client = shared();
    // another session's copies of the pair, then the hub's answer to our HELLO after message 1
    for text in hub.opening() {
        client.receive_text(text.as_bytes()).unwrap();
    }
    let message1 = client.start(&PSK).unwrap();
    for text in hub.opening() {
        assert!(client.receive_text(text.as_bytes()).unwrap().is_empty());
    }
    finish(&mut hub, &mut client, &message1);
}

#[test]
fn shared_channel_after_message_1_another_hello_or_offer_supersedes_the_negotiation() {
    let key = KeyPair::generate().unwrap();
    let stale = Hub::new(key.clone(), &["XXpsk2"], CHACHA);
    let mut other_hello = Hub::new(key.clone(), &["XXpsk2"], CHACHA);
    other_hello.hello.insert("peer".into(), json!("another"));
    let other_offer = Hub::new(key, &["KKpsk0", "XXpsk2"], CHACHA); // offers KK too
    for [hello, offer] in [other_hello.opening(), other_offer.opening()] {
        let mut client = shared();
        for text in stale.opening() {
            client.receive_text(text.as_bytes()).unwrap();
        }
        client.start(&PSK).unwrap();
        let outcome = client.receive_text(hello.as_bytes()).and_then(|_| client.receive_text(offer.as_bytes()));
        assert!(matches!(outcome, Err(ProtocolError::NegotiationSuperseded(_))), "{outcome:?}");
        // dead afterwards
        assert!(client.receive_text(stale_message2().as_bytes()).is_err());
    }
}

#[test]
fn off_by_default_a_second_hello_and_an_early_message_2_end_the_negotiation() {
    let hub = Hub::new(KeyPair::generate().unwrap(), &["XXpsk2"], CHACHA);
    let [hello, offer] = hub.opening();
    let mut strict = ClientNegotiation::new(KeyPair::generate().unwrap(), "site", "sid", None, false);
    strict.receive_text(hello.as_bytes()).unwrap();
    let error = strict.receive_text(stale_message2().as_bytes()).unwrap_err();
    assert_eq!(error.to_string(), "Out-of-order Noise negotiation");

    let mut strict = ClientNegotiation::new(KeyPair::generate().unwrap(), "site", "sid", None, false);
    strict.receive_text(hello.as_bytes()).unwrap();
    strict.receive_text(offer.as_bytes()).unwrap();
    let error = strict.receive_text(hello.as_bytes()).unwrap_err();
    assert_eq!(error.to_string(), "Missing node_id or duplicate Noise HELLO");

    // and the same with the shared channel explicitly off
    let mut strict =
        ClientNegotiation::new(KeyPair::generate().unwrap(), "site", "sid", None, false).with_shared_channel(false);
    assert!(strict.receive_text(offer.as_bytes()).is_err());
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn repeated_keys_and_edge_numbers_parse_as_serde_json_parses_them() {
    for text in [
        r#"{"a":1,"b":{"x":[1,{"y":2,"y":3}]},"a":{"z":null}}"#,
        r#"{"n":[18446744073709551615,-9223372036854775808,-0,0.1,1.5e300,-2.5E-300,1e-400]}"#,
        r#" {"t":true,"f":false,"s":"\u00e9\n\ud83d\ude00","e":{},"l":[]} "#,
    ] {
        let ours = parse_json_object(text.as_bytes(), "body").unwrap();
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap(), "{text}");
    }
    for text in [r#"{"n":1e400}"#, r#"{"a":1} x"#, r#"{"a":}"#, r#"[1]"#, ""] {
        assert!(parse_json_object(text.as_bytes(), "body").is_err(), "{text}");
    }
}

/// An object whose fields are absent, of the expected type or of any other: `fields` name them.
fn object_with(fields: &'static [&'static str], of: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let field = prop_oneof![Just(None), of.prop_map(Some), arbitrary_json().prop_map(Some)];
    (prop::collection::vec(field, fields.len()), arbitrary_json())
        .prop_map(move |(values, extra)| {
            let mut obj = Map::new();
            obj.insert("extra".into(), extra);
            for (name, value) in fields.iter().zip(values) {
                if let Some(value) = value {
                    obj.insert((*name).into(), value);
                }
            }
            Value::Object(obj)
        })
        .boxed()
}

/// Envelopes (bus, broadcast of a bus message, anything) with fields of every JSON type.
fn envelope_like() -> impl Strategy<Value = Value> {
    let bus = object_with(&["type", "data", "context"], arbitrary_json().boxed());
    let kind = prop_oneof![Just(json!("bus")), Just(json!("broadcast")), ".{0,6}".prop_map(Value::String)].boxed();
    let inner = object_with(&["msg_type", "payload", "target_site_id"], prop_oneof![kind.clone(), bus.clone()].boxed());
    let payload = prop_oneof![bus, inner];
    let fields =
        &["msg_type", "payload", "metadata", "route", "node", "target_site_id", "target_pubkey", "source_peer"];
    object_with(fields, prop_oneof![kind, payload].boxed())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn objects_parse_as_serde_json_parses_them(value in arbitrary_json(), noise in prop::collection::vec(any::<u8>(), 0..60)) {
        let object = serde_json::to_vec(&json!({"v": value, "w": [value]})).unwrap();
        let mut mangled = object.clone();
        for (i, byte) in noise.iter().enumerate() {
            let at = (usize::from(*byte) * 7 + i) % mangled.len();
            mangled[at] = noise[(i + 1) % noise.len()];
        }
        for body in [object, mangled, noise] {
            let ours = parse_json_object(&body, "body").ok();
            let theirs = std::str::from_utf8(&body).ok().and_then(|t| serde_json::from_str::<Value>(t).ok()).and_then(|v| v.as_object().cloned());
            prop_assert_eq!(ours.as_ref().map(|m| serde_json::to_string(m).unwrap()), theirs.as_ref().map(|m| serde_json::to_string(m).unwrap()));
        }
    }

    #[test]
    fn consuming_readers_and_the_direct_writer_match_their_copying_forms(value in envelope_like()) {
        let Ok(envelope) = envelope_from_value(&value) else {
            prop_assert!(parse_envelope(&serde_json::to_vec(&value).unwrap()).is_err());
            return Ok(());
        };
        prop_assert_eq!(&parse_envelope(&serde_json::to_vec(&value).unwrap()).unwrap(), &envelope);
        prop_assert_eq!(envelope.to_bytes(), serde_json::to_vec(&envelope.to_value()).unwrap());
        prop_assert_eq!(envelope.clone().into_bus_message(), envelope.bus_message());
        prop_assert_eq!(envelope.clone().into_inner(), envelope.inner());
    }

    #[test]
    fn envelopes_read_directly_match_the_map_they_would_build(
        value in envelope_like(),
        repeat in prop::sample::select(vec![
            ("msg_type", r#""bus""#), ("payload", r#"{"type":"speak"}"#), ("metadata", r#"{"m":1}"#), ("route", "[1]"),
            ("node", "2"), ("target_site_id", r#""s""#), ("target_pubkey", "[]"), ("source_peer", "{}"), ("extra", "1"),
        ]),
        again in arbitrary_json(),
        noise in prop::collection::vec(any::<u8>(), 0..12),
    ) {
        // a key repeated with a value of its type and any other value, in both orders (the last
        // value counts), random damage, and the envelope itself
        let plain = serde_json::to_vec(&value).unwrap();
        let (key, typed) = repeat;
        let repeated = |first: &str, last: &str| {
            let mut body = plain.clone();
            if body.len() > 2 {
                body.pop();
                body.extend(format!(r#","{key}":{first},"{key}":{last}}}"#).into_bytes());
            }
            body
        };
        let again = again.to_string();
        let mut mangled = plain.clone();
        for (i, byte) in noise.iter().enumerate() {
            let at = (usize::from(*byte) * 13 + i) % mangled.len();
            mangled[at] = noise[(i + 1) % noise.len()];
        }
        for body in [repeated(typed, &again), repeated(&again, typed), mangled, plain.clone()] {
            let general = parse_json_object(&body, "envelope").and_then(envelope_from_map);
            prop_assert_eq!(format!("{:?}", parse_envelope(&body)), format!("{general:?}"));
        }
    }

    #[test]
    fn a_bus_message_is_written_as_its_envelope_is(kind in ".{0,8}", data in arbitrary_json(), context in arbitrary_json()) {
        let data = data.as_object().cloned().unwrap_or_default();
        let context = context.as_object().cloned().unwrap_or_else(|| object(json!({"session": {"session_id": "s"}, "k": [1, 2.5, null]})));
        prop_assert_eq!(bus_bytes(&kind, &data, &context), HiveMessage::bus(&kind, data, context).to_bytes());
    }

    #[test]
    fn wire1_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_frame(&bytes);
    }

    #[test]
    fn wire1_headers_with_random_tails_never_panic(
        head in prop::sample::select(vec![0x80u8, 0xc0, 0x98, 0xd8, 0x0c, 0x01]),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut frame = vec![head];
        frame.extend(bytes);
        let _ = decode_frame(&frame);
    }

    #[test]
    fn wire1_bin_frames_round_trip(
        payload in prop::collection::vec(any::<u8>(), 0..400),
        bin_type in 0u8..16,
        utterance in "[a-z ]{0,300}",
    ) {
        let metadata = object(json!({"utterance": utterance, "lang": "en-us"}));
        let frame = encode_binary(&payload, bin_type, &metadata).unwrap();
        let decoded = decode_frame(&frame).unwrap();
        prop_assert_eq!(decoded.bin_type, Some(bin_type));
        prop_assert_eq!(decoded.payload, Wire1Payload::Binary(payload));
        prop_assert_eq!(decoded.metadata, metadata);
    }

    #[test]
    fn wire1_json_frames_round_trip(data in arbitrary_json(), long in "[a-z ]{0,300}") {
        let payload = object(json!({"type": "speak", "data": data}));
        let metadata = object(json!({"k": long}));
        let decoded = decode_frame(&encode_json("bus", &payload, &metadata).unwrap()).unwrap();
        prop_assert_eq!(decoded.msg_type, "bus");
        prop_assert_eq!(decoded.metadata, metadata);
        prop_assert_eq!(decoded.payload, Wire1Payload::Json(payload));
    }

    #[test]
    fn envelope_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_envelope(&bytes);
    }

    #[test]
    fn envelopes_of_any_json_are_values_or_typed_errors(value in arbitrary_json()) {
        let body = serde_json::to_vec(&value).unwrap();
        match parse_envelope(&body) {
            Ok(envelope) => {
                prop_assert!(value.get("msg_type").is_some_and(Value::is_string));
                let _ = envelope.inner();
                let _ = envelope.bus_message();
                prop_assert_eq!(envelope_from_value(&envelope.to_value()).unwrap(), envelope);
            }
            Err(error) => prop_assert!(matches!(error, ProtocolError::Envelope(_))),
        }
        let _ = canonical_json(&value);
    }

    #[test]
    fn reassembly_of_any_plaintexts_never_panics(parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..30)) {
        let mut reassembler = Reassembler::new();
        for part in parts {
            if reassembler.feed(part).is_err() {
                prop_assert!(reassembler.feed(vec![0]).is_err(), "a failed stream stays failed");
                break;
            }
        }
    }

    #[test]
    fn chunking_then_reassembly_gives_the_body_back(body in prop::collection::vec(any::<u8>(), 0..3000), chunk in 1usize..700, binary: bool) {
        let mut reassembler = Reassembler::new();
        let mut frames = Vec::new();
        for part in split_plaintext(&body, binary, chunk) {
            if let Some(frame) = reassembler.feed(part).unwrap() {
                frames.push(frame);
            }
        }
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(&frames[0].body, &body);
        prop_assert_eq!(frames[0].binary, binary);
    }

    #[test]
    fn negotiation_input_never_panics(texts in prop::collection::vec(prop_oneof![
        ".{0,80}",
        arbitrary_json().prop_map(|v| v.to_string()),
        Just(json!({"msg_type": "hello", "payload": {"node_id": "n"}}).to_string()),
        Just(json!({"msg_type": "shake", "payload": {"noise": {"patterns": ["XXpsk2"], "suites": [CHACHA]}}}).to_string()),
        Just(stale_message2()),
    ], 0..5), shared_channel: bool) {
        let mut client =
            ClientNegotiation::new(KeyPair::from_private([3u8; 32]), "site", "s", None, false).with_shared_channel(shared_channel);
        for text in texts {
            if client.receive_text(text.as_bytes()).is_err() {
                break;
            }
        }
    }
}
