//! Data-plane protocol names, protocol flags and endpoint normalisation (dataplane.md 1.1-1.3).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::errors::Error;

/// A data-plane carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HubProtocol {
    /// WebSocket (`wss://`, or `ws://` when the identity names it).
    Wss,
    /// HTTPS polling.
    Https,
    /// MQTT over TLS through a broker.
    Mqtt,
}

/// The order the SDK prefers carriers in when none is forced.
pub const DEFAULT_PROTOCOL_PREFERENCE: [HubProtocol; 3] = [HubProtocol::Wss, HubProtocol::Https, HubProtocol::Mqtt];

impl HubProtocol {
    /// `wss`, `https` or `mqtt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wss => "wss",
            Self::Https => "https",
            Self::Mqtt => "mqtt",
        }
    }

    /// The protocol for a name or alias (`ws`, `websocket`, `http`, `mqtts`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "wss" | "ws" | "websocket" => Some(Self::Wss),
            "https" | "http" => Some(Self::Https),
            "mqtt" | "mqtts" => Some(Self::Mqtt),
            _ => None,
        }
    }
}

impl fmt::Display for HubProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HubProtocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
            .ok_or_else(|| Error::UnsupportedProtocol(format!("Unknown protocol {s:?}; use one of wss, https, mqtt.")))
    }
}

const ENDPOINT_SCHEMES: [&str; 6] = ["http", "https", "ws", "wss", "mqtt", "mqtts"];

/// A protocol flag: a bool, a bool-string, or a mapping with `enabled`.
pub fn parse_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        },
        Value::Object(map) => map.get("enabled").and_then(parse_flag),
        _ => None,
    }
}

/// An endpoint URL trimmed of whitespace and trailing `/`; a mapping gives its `endpoint`,
/// `broker_url` or `brokerUrl`. A URL whose scheme is not http(s), ws(s) or mqtt(s), or that
/// has no host, is dropped.
pub fn normalize_endpoint(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => ["endpoint", "broker_url", "brokerUrl"]
            .iter()
            .find_map(|k| map.get(*k).filter(|v| v.is_string()))
            .and_then(normalize_endpoint),
        Value::String(raw) => {
            let raw = raw.trim();
            let text = raw.trim_end_matches('/');
            if text.is_empty() {
                return None;
            }
            if raw.contains("://") {
                let url = url::Url::parse(text).ok()?;
                if !ENDPOINT_SCHEMES.contains(&url.scheme()) || url.host_str().is_none_or(str::is_empty) {
                    return None;
                }
            }
            Some(text.to_string())
        }
        _ => None,
    }
}

/// Per-carrier endpoints of an identity or hub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// The WSS endpoint.
    pub wss: Option<String>,
    /// The HTTPS endpoint.
    pub https: Option<String>,
    /// The MQTT broker endpoint.
    pub mqtt: Option<String>,
}

impl Endpoints {
    /// The endpoint of `protocol`.
    pub fn get(&self, protocol: HubProtocol) -> Option<&str> {
        match protocol {
            HubProtocol::Wss => self.wss.as_deref(),
            HubProtocol::Https => self.https.as_deref(),
            HubProtocol::Mqtt => self.mqtt.as_deref(),
        }
    }

    /// Set the endpoint of `protocol`.
    pub fn set(&mut self, protocol: HubProtocol, value: String) {
        match protocol {
            HubProtocol::Wss => self.wss = Some(value),
            HubProtocol::Https => self.https = Some(value),
            HubProtocol::Mqtt => self.mqtt = Some(value),
        }
    }

    /// True when no endpoint is set.
    pub fn is_empty(&self) -> bool {
        self.wss.is_none() && self.https.is_none() && self.mqtt.is_none()
    }

    /// The endpoints as a JSON object (`https`, `wss`, `mqtt` keys).
    pub fn to_map(&self, strip: bool) -> Map<String, Value> {
        let mut map = Map::new();
        for protocol in [HubProtocol::Https, HubProtocol::Wss, HubProtocol::Mqtt] {
            if let Some(url) = self.get(protocol) {
                let url = if strip { strip_userinfo(url) } else { url.to_string() };
                map.insert(protocol.as_str().into(), Value::String(url));
            }
        }
        map
    }
}

/// The endpoints of a mapping: from its `data_plane_endpoints` (or `dataPlaneEndpoints`,
/// `endpoints`) mapping, else from its own top level.
pub fn read_endpoints(source: &Map<String, Value>) -> Endpoints {
    let container = ["data_plane_endpoints", "dataPlaneEndpoints", "endpoints"]
        .iter()
        .find_map(|k| source.get(*k).and_then(Value::as_object))
        .unwrap_or(source);
    let mut endpoints = Endpoints::default();
    for (protocol, keys) in [
        (HubProtocol::Https, ["https", "http"]),
        (HubProtocol::Wss, ["wss", "ws"]),
        (HubProtocol::Mqtt, ["mqtt", "mqtts"]),
    ] {
        if let Some(value) = keys.iter().find_map(|k| container.get(*k).filter(|v| !v.is_null()))
            && let Some(endpoint) = normalize_endpoint(value)
        {
            endpoints.set(protocol, endpoint);
        }
    }
    endpoints
}

/// The URL without `user:password@` in its authority.
pub fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match tail {
        Some(tail) => format!("{scheme}://{authority}/{tail}"),
        None => format!("{scheme}://{authority}"),
    }
}

/// Which carriers a hub (or an identity) enables. Defaults: wss on, http off, mqtt off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubProtocolSettings {
    /// WSS enabled.
    pub wss: bool,
    /// HTTPS polling enabled.
    pub http: bool,
    /// MQTT enabled.
    pub mqtt: bool,
}

impl Default for HubProtocolSettings {
    fn default() -> Self {
        Self { wss: true, http: false, mqtt: false }
    }
}

impl HubProtocolSettings {
    /// Read `spec.protocols` (else `spec.network`) when a `spec` mapping exists, else the
    /// top-level `protocols` (else `network`); a non-empty `protocols` wins.
    pub fn from_map(source: &Map<String, Value>) -> Self {
        let holder = source.get("spec").and_then(Value::as_object).unwrap_or(source);
        let Some(flags) = ["protocols", "network"]
            .iter()
            .find_map(|k| holder.get(*k).and_then(Value::as_object).filter(|m| !m.is_empty()))
        else {
            return Self::default();
        };
        let mut settings = Self::default();
        for (slot, keys) in [
            (&mut settings.wss, ["wss", "websocket"]),
            (&mut settings.http, ["http", "https"]),
            (&mut settings.mqtt, ["mqtt", "mqtt"]),
        ] {
            if let Some(value) = keys.iter().find_map(|k| flags.get(*k))
                && let Some(flag) = parse_flag(value)
            {
                *slot = flag;
            }
        }
        settings
    }

    /// The flag of `protocol`.
    pub fn is_enabled(&self, protocol: HubProtocol) -> bool {
        match protocol {
            HubProtocol::Wss => self.wss,
            HubProtocol::Https => self.http,
            HubProtocol::Mqtt => self.mqtt,
        }
    }

    /// The enabled protocols in the order wss, https, mqtt.
    pub fn enabled(&self) -> Vec<HubProtocol> {
        DEFAULT_PROTOCOL_PREFERENCE.into_iter().filter(|p| self.is_enabled(*p)).collect()
    }

    /// `{"wss":{"enabled":..},"http":{"enabled":..},"mqtt":{"enabled":..}}`.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"wss": {"enabled": self.wss}, "http": {"enabled": self.http}, "mqtt": {"enabled": self.mqtt}})
    }
}
