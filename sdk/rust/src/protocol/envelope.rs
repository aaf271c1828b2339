//! The HiveMind JSON envelope (spec 5.1) and the OVOS bus message it carries.
//!
//! Parsing is lenient where the spec is: only `msg_type` is required; every other field
//! defaults when missing or of the wrong JSON type. Anything that is not a UTF-8 JSON object
//! with a string `msg_type` is a [`ProtocolError::Envelope`].

use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::errors::{ProtocolError, Result};

/// Kinds whose `payload` is a whole inner envelope.
pub const NESTED_TYPES: [&str; 8] =
    ["broadcast", "propagate", "escalate", "intercom", "rendezvous", "query", "cascade", "shared_bus"];

const MESSAGE_TYPES: [&str; 13] = [
    "shake",
    "bus",
    "shared_bus",
    "broadcast",
    "propagate",
    "escalate",
    "hello",
    "query",
    "cascade",
    "ping",
    "rendezvous",
    "3rdparty",
    "bin",
];

/// The message type of a wire number; unknown numbers read as `3rdparty`.
pub fn message_type_name(number: u8) -> &'static str {
    MESSAGE_TYPES.get(usize::from(number)).copied().unwrap_or("3rdparty")
}

/// The wire number of a message type (`handshake` is `shake`); `None` for `intercom` and
/// unknown names.
pub fn message_type_number(name: &str) -> Option<u8> {
    if name == "handshake" {
        return Some(0);
    }
    MESSAGE_TYPES.iter().position(|n| *n == name).and_then(|i| u8::try_from(i).ok())
}

/// An OVOS bus message: `type`, `data` and `context`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BusMessage {
    /// The bus type (`speak`, `recognizer_loop:utterance`, ...).
    pub kind: String,
    /// The message data.
    pub data: Map<String, Value>,
    /// The message context.
    pub context: Map<String, Value>,
}

impl BusMessage {
    /// Read a bus message leniently: missing `type` is `""`, non-object data/context `{}`.
    pub fn from_value(value: &Value) -> Self {
        value.as_object().map_or_else(Self::default, |obj| Self::from_map(obj.clone()))
    }

    /// [`Self::from_value`] of an object, consuming it (nothing is copied).
    pub fn from_map(obj: Map<String, Value>) -> Self {
        let mut message = Self::default();
        for (key, value) in obj {
            match (key.as_str(), value) {
                ("type", Value::String(kind)) => message.kind = kind,
                ("data", Value::Object(data)) => message.data = data,
                ("context", Value::Object(context)) => message.context = context,
                _ => {}
            }
        }
        message
    }
}

/// The eight fields of an envelope in wire order, borrowed: [`HiveMessage::to_bytes`] and
/// [`bus_bytes`] write them without building a [`Value`] first.
#[derive(Serialize)]
struct WireEnvelope<'a, P> {
    msg_type: &'a str,
    payload: &'a P,
    metadata: &'a Map<String, Value>,
    route: &'a [Value],
    node: &'a Value,
    target_site_id: &'a Value,
    target_pubkey: &'a Value,
    source_peer: &'a Value,
}

/// One HiveMind envelope with its eight fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HiveMessage {
    /// The message type.
    pub msg_type: String,
    /// The payload object.
    pub payload: Map<String, Value>,
    /// The metadata object.
    pub metadata: Map<String, Value>,
    /// Mesh routing stamps.
    pub route: Vec<Value>,
    /// Usually null.
    pub node: Value,
    /// The site a broadcast aims at.
    pub target_site_id: Value,
    /// The public key a message aims at.
    pub target_pubkey: Value,
    /// The peer a message came from.
    pub source_peer: Value,
}

impl HiveMessage {
    /// An envelope of `msg_type` carrying `payload`.
    pub fn new(msg_type: &str, payload: Map<String, Value>) -> Self {
        Self { msg_type: msg_type.to_string(), payload, ..Self::default() }
    }

    /// A `bus` envelope carrying `{type, data, context}`.
    pub fn bus(kind: &str, data: Map<String, Value>, context: Map<String, Value>) -> Self {
        let mut payload = Map::new();
        payload.insert("type".into(), Value::String(kind.to_string()));
        payload.insert("data".into(), Value::Object(data));
        payload.insert("context".into(), Value::Object(context));
        Self::new("bus", payload)
    }

    /// The payload read as a bus message.
    pub fn bus_message(&self) -> BusMessage {
        BusMessage::from_map(self.payload.clone())
    }

    /// [`Self::bus_message`], consuming the envelope (nothing is copied).
    pub fn into_bus_message(self) -> BusMessage {
        BusMessage::from_map(self.payload)
    }

    /// The inner envelope of a nesting kind whose payload has a string `msg_type`.
    pub fn inner(&self) -> Option<HiveMessage> {
        if self.nests() { envelope_from_map(self.payload.clone()).ok() } else { None }
    }

    /// [`Self::inner`], consuming the envelope (nothing is copied).
    pub fn into_inner(self) -> Option<HiveMessage> {
        if self.nests() { envelope_from_map(self.payload).ok() } else { None }
    }

    /// Whether the payload is a whole inner envelope: a nesting kind whose payload has a string
    /// `msg_type`.
    fn nests(&self) -> bool {
        NESTED_TYPES.contains(&self.msg_type.as_str()) && self.payload.get("msg_type").is_some_and(Value::is_string)
    }

    /// The envelope as a JSON value with all eight fields.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("msg_type".into(), Value::String(self.msg_type.clone()));
        obj.insert("payload".into(), Value::Object(self.payload.clone()));
        obj.insert("metadata".into(), Value::Object(self.metadata.clone()));
        obj.insert("route".into(), Value::Array(self.route.clone()));
        obj.insert("node".into(), self.node.clone());
        obj.insert("target_site_id".into(), self.target_site_id.clone());
        obj.insert("target_pubkey".into(), self.target_pubkey.clone());
        obj.insert("source_peer".into(), self.source_peer.clone());
        Value::Object(obj)
    }

    /// Compact UTF-8 JSON of all eight fields: the bytes of [`Self::to_value`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            msg_type: &self.msg_type,
            payload: &self.payload,
            metadata: &self.metadata,
            route: &self.route,
            node: &self.node,
            target_site_id: &self.target_site_id,
            target_pubkey: &self.target_pubkey,
            source_peer: &self.source_peer,
        };
        wire_bytes(&wire)
    }
}

/// The payload of a `bus` envelope, borrowed, in the order [`HiveMessage::bus`] gives it.
#[derive(Serialize)]
struct WireBus<'a, D, C> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a D,
    context: &'a C,
}

/// Compact UTF-8 JSON of a `bus` envelope carrying `{type, data, context}`: the bytes of
/// `HiveMessage::bus(kind, data, context).to_bytes()`.
pub fn bus_bytes(kind: &str, data: &Map<String, Value>, context: &Map<String, Value>) -> Vec<u8> {
    bus_body(kind, data, context)
}

/// [`bus_bytes`] of data and context given as anything that serialises to a JSON object.
pub(crate) fn bus_body<D: Serialize, C: Serialize>(kind: &str, data: &D, context: &C) -> Vec<u8> {
    let wire = WireEnvelope {
        msg_type: "bus",
        payload: &WireBus { kind, data, context },
        metadata: &Map::new(),
        route: &[],
        node: &Value::Null,
        target_site_id: &Value::Null,
        target_pubkey: &Value::Null,
        source_peer: &Value::Null,
    };
    wire_bytes(&wire)
}

fn wire_bytes<P: Serialize>(wire: &WireEnvelope<'_, P>) -> Vec<u8> {
    // room for a typical bus message (serde_json starts at 128 bytes and doubles)
    let mut bytes = Vec::with_capacity(1024);
    // string keys and JSON values: serialising cannot fail
    match serde_json::to_writer(&mut bytes, wire) {
        Ok(()) => bytes,
        Err(_) => Vec::new(),
    }
}

/// Build an envelope from a parsed JSON value.
pub fn envelope_from_value(value: &Value) -> Result<HiveMessage> {
    let obj = value.as_object().ok_or_else(|| ProtocolError::Envelope("not a JSON object".into()))?;
    envelope_from_map(obj.clone())
}

/// [`envelope_from_value`] of an object, consuming it (nothing is copied).
pub fn envelope_from_map(obj: Map<String, Value>) -> Result<HiveMessage> {
    // one pass over the entries: no key is looked up (a map's keys are unique)
    let mut fields = EnvelopeBuilder::default();
    for (key, value) in obj {
        fields.set(Field::of(&key), value);
    }
    fields.finish().ok_or_else(|| ProtocolError::Envelope("no string msg_type".into()))
}

/// Decode UTF-8 JSON that must be an object.
pub fn parse_json_object(body: &[u8], what: &str) -> Result<Map<String, Value>> {
    json_object(body, what, &mut Vec::with_capacity(ENTRIES))
}

/// [`parse_json_object`] with `entries` as the scratch buffer of [`parse_value`].
fn json_object(body: &[u8], what: &str, entries: &mut Vec<(String, Value)>) -> Result<Map<String, Value>> {
    let text = std::str::from_utf8(body).map_err(|_| ProtocolError::Envelope(format!("{what} is not valid UTF-8")))?;
    match parse_value(text, entries) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProtocolError::Envelope(format!("{what} is not a JSON object"))),
        Err(_) => Err(ProtocolError::Envelope(format!("{what} is not valid JSON"))),
    }
}

/// Parse one JSON frame body into an envelope: `envelope_from_map(parse_json_object(body,
/// "envelope")?)`, envelope for envelope and error for error.
pub fn parse_envelope(body: &[u8]) -> Result<HiveMessage> {
    EnvelopeReader::default().parse(body)
}

/// Room for the entries of the objects open at once in a typical envelope: no regrowth.
const ENTRIES: usize = 32;
/// A reader keeps at most this many entries' room between parses.
const KEPT_ENTRIES: usize = 1024;

/// [`parse_envelope`] for a stream of bodies: the scratch buffer that gathers each object's
/// entries is kept from one body to the next (up to [`KEPT_ENTRIES`]) instead of being
/// allocated for each one.
#[derive(Debug)]
pub(crate) struct EnvelopeReader {
    entries: Vec<(String, Value)>,
}

impl Default for EnvelopeReader {
    fn default() -> Self {
        Self { entries: Vec::with_capacity(ENTRIES) }
    }
}

impl EnvelopeReader {
    /// [`parse_envelope`] of `body`.
    pub(crate) fn parse(&mut self, body: &[u8]) -> Result<HiveMessage> {
        // a failed parse may leave entries behind
        self.entries.clear();
        // the fields are read straight into the envelope (no map of them is built); any body that
        // is not a well-formed envelope takes the general path, which words the error
        let direct = std::str::from_utf8(body).ok().and_then(|text| read_envelope(text, &mut self.entries));
        let message = match direct {
            Some(message) => Ok(message),
            None => {
                self.entries.clear();
                json_object(body, "envelope", &mut self.entries).and_then(envelope_from_map)
            }
        };
        if self.entries.capacity() > KEPT_ENTRIES {
            self.entries = Vec::with_capacity(ENTRIES);
        }
        message
    }
}

/// A JSON object with a string `msg_type` read straight into an envelope; `None` for anything
/// else. Each field takes its last value, as a map built from the object would hold it.
fn read_envelope(text: &str, entries: &mut Vec<(String, Value)>) -> Option<HiveMessage> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let message = deserializer.deserialize_map(EnvelopeFields { entries }).ok()?;
    deserializer.end().ok()?;
    message
}

/// The fields of an envelope, by key.
enum Field {
    MsgType,
    Payload,
    Metadata,
    Route,
    Node,
    TargetSiteId,
    TargetPubkey,
    SourcePeer,
    Other,
}

impl Field {
    fn of(key: &str) -> Field {
        match key {
            "msg_type" => Field::MsgType,
            "payload" => Field::Payload,
            "metadata" => Field::Metadata,
            "route" => Field::Route,
            "node" => Field::Node,
            "target_site_id" => Field::TargetSiteId,
            "target_pubkey" => Field::TargetPubkey,
            "source_peer" => Field::SourcePeer,
            _ => Field::Other,
        }
    }
}

/// An envelope built field by field. Each field takes the last value it is given; a value of
/// the wrong JSON type leaves the field at its default (a missing or non-string `msg_type`
/// makes no envelope).
#[derive(Default)]
struct EnvelopeBuilder {
    msg_type: Option<String>,
    message: HiveMessage,
}

impl EnvelopeBuilder {
    fn set(&mut self, field: Field, value: Value) {
        let message = &mut self.message;
        match field {
            Field::MsgType => self.msg_type = if let Value::String(kind) = value { Some(kind) } else { None },
            Field::Payload => message.payload = if let Value::Object(payload) = value { payload } else { Map::new() },
            Field::Metadata => {
                message.metadata = if let Value::Object(metadata) = value { metadata } else { Map::new() }
            }
            Field::Route => message.route = if let Value::Array(route) = value { route } else { Vec::new() },
            Field::Node => message.node = value,
            Field::TargetSiteId => message.target_site_id = value,
            Field::TargetPubkey => message.target_pubkey = value,
            Field::SourcePeer => message.source_peer = value,
            Field::Other => {}
        }
    }

    fn finish(self) -> Option<HiveMessage> {
        let EnvelopeBuilder { msg_type, message } = self;
        msg_type.map(|kind| HiveMessage { msg_type: kind, ..message })
    }
}

/// Reads an object key as a [`Field`] (the key is not allocated).
struct FieldKey;

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Field, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldKey {
    type Value = Field;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> std::result::Result<Field, E> {
        Ok(Field::of(key))
    }
}

/// [`read_envelope`]'s visitor: `None` when `msg_type` (its last value) is no string.
struct EnvelopeFields<'a> {
    entries: &'a mut Vec<(String, Value)>,
}

impl<'de> Visitor<'de> for EnvelopeFields<'_> {
    type Value = Option<HiveMessage>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Option<HiveMessage>, A::Error> {
        let mut fields = EnvelopeBuilder::default();
        while let Some(field) = map.next_key_seed(FieldKey)? {
            fields.set(field, map.next_value_seed(Gather { entries: &mut *self.entries })?);
        }
        Ok(fields.finish())
    }
}

/// `serde_json::from_str::<Value>`, value for value and error for error, with each object's
/// map allocated once at its final size: entries are gathered in `entries` (empty; shared by the
/// whole parse), then moved into the map.
fn parse_value(text: &str, entries: &mut Vec<(String, Value)>) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Gather { entries }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// One JSON value of [`parse_value`]; an object's entries go on top of `entries` and leave it
/// as the object's map.
struct Gather<'a> {
    entries: &'a mut Vec<(String, Value)>,
}

impl<'de> DeserializeSeed<'de> for Gather<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Gather<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> std::result::Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> std::result::Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> std::result::Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> std::result::Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Gather { entries: &mut *self.entries })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let start = self.entries.len();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Gather { entries: &mut *self.entries })?;
            self.entries.push((key, value));
        }
        // a repeated key keeps its first place and takes its last value, as Map::insert does
        Ok(Value::Object(self.entries.drain(start..).collect()))
    }
}
