//! Client identity material (dataplane.md 1.1-1.5): what a client needs to reach its hub.
//!
//! Load it with [`Identity::from_value`], [`Identity::from_file`], [`Identity::from_config`]
//! or [`Identity::from_env`]; write it with [`Identity::save`] (0600, atomic). `Debug` and
//! [`Identity::as_value`]`(false)` hide every secret.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{default_config_path, load_config_document, read_private_text, select_identity_mapping};
use crate::errors::{Error, Result};
use crate::protocols::{
    Endpoints, HubProtocol, HubProtocolSettings, normalize_endpoint, parse_flag, read_endpoints, strip_userinfo,
};

/// The port an identity without `default_port` gets.
pub const DEFAULT_PORT: u16 = 5679;
const REDACTED: &str = "<redacted>";
const SECRET_WORDS: [&str; 11] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "authorization",
    "cryptokey",
    "initialidentify",
];

/// True for a key name that looks like it holds a secret (`apiKey`, `db_password`...);
/// reference keys (`apiKeyRef`) are not secrets.
pub fn is_secret_key(name: &str) -> bool {
    let normalised = name.to_lowercase().replace(['_', '-'], "");
    if normalised.ends_with("ref") || normalised.ends_with("refs") {
        return false;
    }
    SECRET_WORDS.iter().any(|word| normalised.contains(word))
}

/// A deep copy of `value` with the values of secret-looking keys replaced by `<redacted>`.
pub fn redact_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    (k.clone(), if is_secret_key(k) { Value::String(REDACTED.into()) } else { redact_secrets(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_secrets).collect()),
        other => other.clone(),
    }
}

fn first<'a>(source: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| source.get(*k).filter(|v| !v.is_null()))
}

fn required_text(source: &Map<String, Value>, keys: &[&str], what: &str, strip: bool) -> Result<String> {
    let Some(value) = first(source, keys) else {
        let aliases =
            if keys.len() > 1 { format!(" (also accepted: {})", keys[1..].join(", ")) } else { String::new() };
        return Err(Error::Identity(format!("The identity is missing {}{aliases}.", keys[0])));
    };
    let Some(text) = value.as_str() else {
        return Err(Error::Identity(format!("The identity's {what} must be a string.")));
    };
    let text = if strip { text.trim() } else { text };
    if text.is_empty() {
        return Err(Error::Identity(format!("The identity's {what} is empty.")));
    }
    Ok(text.to_string())
}

fn port_of(value: &Value) -> Result<u16> {
    let bad = || Error::Identity(format!("The identity's default_port must be an integer, got {value}."));
    let number: i64 = match value {
        Value::Bool(_) => {
            return Err(Error::Identity("The identity's default_port must be an integer, not a boolean.".into()));
        }
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)).ok_or_else(bad)?
        }
        Value::String(s) => s.trim().parse().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    u16::try_from(number)
        .map_err(|_| Error::Identity(format!("The identity's default_port must be between 0 and 65535, got {number}.")))
}

fn normalise_path(value: Option<&Value>) -> Result<String> {
    match value {
        None => Ok(String::new()),
        Some(Value::String(path)) => {
            let parts: Vec<&str> = path.trim().split('/').filter(|p| !p.is_empty()).collect();
            Ok(if parts.is_empty() { String::new() } else { format!("/{}", parts.join("/")) })
        }
        Some(_) => Err(Error::Identity("The identity's default_path must be a string.".into())),
    }
}

fn authority_has_port(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.contains(':')
}

fn with_port(url: &str, port: u16) -> String {
    if authority_has_port(url) {
        return url.to_string();
    }
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let joined = match tail {
        Some(tail) => format!("{authority}:{port}/{tail}"),
        None => format!("{authority}:{port}"),
    };
    if scheme.is_empty() { joined } else { format!("{scheme}://{joined}") }
}

/// Client-scoped MQTT broker credentials (dataplane.md 1.4). `host` and `port` come from the
/// endpoint URL (port 8883 for TLS, else 1883, when the URL names none). `Debug` hides the
/// username and password.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttBrokerCredentials {
    /// The broker URL (`mqtts://host:port`).
    pub endpoint: String,
    /// The broker host.
    pub host: String,
    /// The broker port.
    pub port: u16,
    /// The broker username.
    pub username: String,
    /// The broker password.
    pub password: String,
    /// The client's topic prefix.
    pub topic_prefix: Option<String>,
    /// 0 or 1.
    pub qos: u8,
    /// TLS to the broker.
    pub tls: bool,
}

impl fmt::Debug for MqttBrokerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MqttBrokerCredentials(endpoint={:?}, tls={}, qos={})",
            strip_userinfo(&self.endpoint),
            self.tls,
            self.qos
        )
    }
}

impl MqttBrokerCredentials {
    /// The block, or None when endpoint, username or password is missing.
    pub fn from_value(source: &Value) -> Option<Self> {
        let map = source.as_object()?;
        let endpoint = first(map, &["endpoint", "broker_url", "brokerUrl"]).and_then(normalize_endpoint)?;
        let username =
            first(map, &["username", "broker_username", "brokerUsername"])?.as_str().filter(|s| !s.is_empty())?;
        let password =
            first(map, &["password", "broker_password", "brokerPassword"])?.as_str().filter(|s| !s.is_empty())?;
        let prefix = first(map, &["topic_prefix", "topicPrefix"])
            .and_then(Value::as_str)
            .map(|p| p.trim().trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty());
        let qos = match map.get("qos") {
            Some(Value::Number(n)) if n.as_u64() == Some(0) => 0,
            Some(Value::String(s)) if s.trim() == "0" => 0,
            _ => 1,
        };
        let tls = map
            .get("tls")
            .and_then(parse_flag)
            .unwrap_or_else(|| endpoint.to_ascii_lowercase().starts_with("mqtts://"));
        let parsed = url::Url::parse(
            if endpoint.contains("://") { endpoint.clone() } else { format!("mqtt://{endpoint}") }.as_str(),
        )
        .ok();
        let host = parsed
            .as_ref()
            .and_then(|u| u.host_str())
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .unwrap_or_default();
        let scheme_tls = parsed.as_ref().is_some_and(|u| u.scheme() == "mqtts");
        let port = parsed.as_ref().and_then(url::Url::port).unwrap_or(if tls || scheme_tls { 8883 } else { 1883 });
        Some(Self {
            endpoint,
            host,
            port,
            username: username.to_string(),
            password: password.to_string(),
            topic_prefix: prefix,
            qos,
            tls,
        })
    }

    /// The identity-file form; without secrets only `endpoint` (no userinfo) and `tls`.
    pub fn as_value(&self, include_secrets: bool) -> Value {
        let mut map = Map::new();
        if !include_secrets {
            map.insert("endpoint".into(), Value::String(strip_userinfo(&self.endpoint)));
            map.insert("tls".into(), Value::Bool(self.tls));
            return Value::Object(map);
        }
        map.insert("endpoint".into(), Value::String(self.endpoint.clone()));
        map.insert("tls".into(), Value::Bool(self.tls));
        map.insert("username".into(), Value::String(self.username.clone()));
        map.insert("password".into(), Value::String(self.password.clone()));
        if let Some(prefix) = &self.topic_prefix {
            map.insert("topic_prefix".into(), Value::String(prefix.clone()));
        }
        if self.qos != 1 {
            map.insert("qos".into(), Value::from(self.qos));
        }
        Value::Object(map)
    }
}

/// A client's identity on one hub (dataplane.md 1.1). `Debug` hides the secrets.
#[derive(Clone, PartialEq)]
pub struct Identity {
    /// The access key.
    pub access_key: String,
    /// The password the PSK is derived from.
    pub password: String,
    /// The site id sent in every session.
    pub site_id: String,
    /// The hub's address.
    pub default_master: String,
    /// The port added to endpoints that name none.
    pub default_port: u16,
    /// The path appended to `default_master`.
    pub default_path: String,
    /// Endpoints per carrier.
    pub data_plane_endpoints: Endpoints,
    /// Which carriers are enabled.
    pub protocols: HubProtocolSettings,
    /// MQTT broker credentials.
    pub mqtt: Option<MqttBrokerCredentials>,
    /// Merged into the `context.metadata` of every outgoing bus message.
    pub metadata: Map<String, Value>,
    /// The file this identity was read from (it decides where the Noise state lives).
    pub source_path: Option<PathBuf>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity(site_id={:?}, default_master={:?}, default_port={}, endpoints={:?}, protocols={:?}, mqtt={}, access_key=<redacted>, password=<redacted>)",
            self.site_id,
            strip_userinfo(&self.default_master),
            self.default_port,
            self.data_plane_endpoints.to_map(true),
            self.enabled_protocols(),
            if self.mqtt.is_some() { "yes" } else { "no" }
        )
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn expand_user(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => crate::config::home_dir().join(rest),
        Err(_) => path.to_path_buf(),
    }
}

impl Identity {
    /// Build an identity from a JSON object, accepting the aliases of dataplane.md 1.1.
    pub fn from_value(data: &Value, source_path: Option<&Path>) -> Result<Self> {
        let Some(map) = data.as_object() else {
            return Err(Error::Identity("Identity material must be a JSON object (a mapping).".into()));
        };
        let access_key = required_text(map, &["access_key", "key", "api_key", "apiKey"], "access key", true)?;
        let password = required_text(map, &["password"], "password", false)?;
        let master = required_text(
            map,
            &["default_master", "defaultMaster", "host", "hub_http_host", "hubHttpHost", "master"],
            "default_master",
            true,
        )?
        .trim_end_matches('/')
        .to_string();
        if master.is_empty() {
            return Err(Error::Identity("The identity's default_master is empty.".into()));
        }
        let site_id = required_text(map, &["site_id", "siteId", "site", "client_id", "clientId"], "site id", true)?;
        let default_port = match first(map, &["default_port", "port", "hub_http_port"]) {
            None => DEFAULT_PORT,
            Some(value) => port_of(value)?,
        };
        let default_path =
            normalise_path(first(map, &["default_path", "defaultPath", "hub_http_path", "path", "uri_path"]))?;
        let metadata = match map.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(Error::Identity("The identity's metadata must be a mapping.".into())),
        };
        Ok(Self {
            access_key,
            password,
            site_id,
            default_master: master,
            default_port,
            default_path,
            data_plane_endpoints: read_endpoints(map),
            protocols: HubProtocolSettings::from_map(map),
            mqtt: map.get("mqtt").and_then(MqttBrokerCredentials::from_value),
            metadata,
            source_path: source_path.map(absolute),
        })
    }

    /// Parse identity JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::Identity(format!("Identity JSON is not valid: {e}.")))?;
        Self::from_value(&value, None)
    }

    /// Read an identity JSON file; it must be private (0600), see dataplane.md 1.5.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let target = expand_user(path.as_ref());
        let text = read_private_text(&target)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Identity(format!("{} is not valid JSON ({e}).", target.display())))?;
        if !value.is_object() {
            return Err(Error::Identity(format!("{} must hold a JSON object.", target.display())));
        }
        Self::from_value(&value, Some(&target))
    }

    /// The identity of a profile of the default config file (`~/.config/thalovant/config.yaml`).
    pub fn from_config(profile: Option<&str>) -> Result<Self> {
        Self::from_config_file(default_config_path(), profile)
    }

    /// The identity of a profile of a given config file.
    pub fn from_config_file(path: impl AsRef<Path>, profile: Option<&str>) -> Result<Self> {
        let target = expand_user(path.as_ref());
        if !target.exists() {
            return Err(Error::Identity(format!(
                "No Thalovant config file at {}. Create it (mode 0600) or pass a path.",
                target.display()
            )));
        }
        let document = load_config_document(&target, true)?;
        let mapping = select_identity_mapping(&document, profile, &format!("config file {}", target.display()))?;
        Self::from_value(&Value::Object(mapping), Some(&target))
    }

    /// An identity from the `THALOVANT_*` environment variables (dataplane.md 1.5).
    pub fn from_env() -> Result<Self> {
        Self::from_env_prefix("THALOVANT_")
    }

    /// An identity from `<prefix>*` environment variables.
    pub fn from_env_prefix(prefix: &str) -> Result<Self> {
        Self::from_env_map(prefix, |name| std::env::var(name).ok())
    }

    pub(crate) fn from_env_map(prefix: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |names: &[&str]| -> Option<String> {
            names
                .iter()
                .find_map(|n| env(&format!("{prefix}{n}")).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
        };
        let mut data = Map::new();
        for (key, names) in [
            ("access_key", &["ACCESS_KEY"][..]),
            ("password", &["PASSWORD"][..]),
            ("site_id", &["SITE_ID"][..]),
            ("default_master", &["HUB_HTTP_HOST", "DEFAULT_MASTER"][..]),
            ("default_port", &["HUB_HTTP_PORT", "DEFAULT_PORT"][..]),
            ("default_path", &["HUB_HTTP_PATH", "DEFAULT_PATH"][..]),
        ] {
            if let Some(value) = get(names) {
                data.insert(key.into(), Value::String(value));
            }
        }
        let missing: Vec<String> = [
            ("access_key", "ACCESS_KEY"),
            ("password", "PASSWORD"),
            ("site_id", "SITE_ID"),
            ("default_master", "HUB_HTTP_HOST"),
        ]
        .iter()
        .filter(|(key, _)| !data.contains_key(*key))
        .map(|(_, name)| format!("{prefix}{name}"))
        .collect();
        if !missing.is_empty() {
            return Err(Error::Identity(format!(
                "No identity in the environment: set {} (or pass an identity file).",
                missing.join(", ")
            )));
        }
        let mut endpoints = Map::new();
        for (key, names) in [
            ("https", &["HUB_HTTPS_HOST", "HUB_HTTP_HOST"][..]),
            ("wss", &["HUB_WSS_HOST", "HUB_WEBSOCKET_HOST"][..]),
            ("mqtt", &["HUB_MQTT_HOST"][..]),
        ] {
            if let Some(value) = get(names) {
                endpoints.insert(key.into(), Value::String(value));
            }
        }
        if !endpoints.is_empty() {
            data.insert("data_plane_endpoints".into(), Value::Object(endpoints));
        }
        let mut mqtt = Map::new();
        for (key, names) in [
            ("endpoint", &["MQTT_ENDPOINT", "HUB_MQTT_HOST"][..]),
            ("username", &["MQTT_USERNAME"][..]),
            ("password", &["MQTT_PASSWORD"][..]),
            ("topic_prefix", &["MQTT_TOPIC_PREFIX"][..]),
            ("qos", &["MQTT_QOS"][..]),
        ] {
            if let Some(value) = get(names) {
                mqtt.insert(key.into(), Value::String(value));
            }
        }
        if !mqtt.is_empty() {
            data.insert("mqtt".into(), Value::Object(mqtt));
        }
        Self::from_value(&Value::Object(data), None)
    }

    /// The enabled protocols, in the order wss, https, mqtt.
    pub fn enabled_protocols(&self) -> Vec<HubProtocol> {
        self.protocols.enabled()
    }

    /// The protocol's flag.
    pub fn supports_protocol(&self, protocol: HubProtocol) -> bool {
        self.protocols.is_enabled(protocol)
    }

    /// The HTTPS base (never empty), with the port rule of dataplane.md 1.2.
    pub fn endpoint_base(&self) -> String {
        if let Some(https) = &self.data_plane_endpoints.https {
            return with_port(https, self.default_port);
        }
        let lowered = self.default_master.to_ascii_lowercase();
        let master = if lowered.starts_with("wss://") {
            format!("https://{}", &self.default_master[6..])
        } else if lowered.starts_with("ws://") {
            format!("http://{}", &self.default_master[5..])
        } else if !self.default_master.contains("://") {
            format!("https://{}", self.default_master)
        } else {
            self.default_master.clone()
        };
        format!("{}{}", with_port(&master, self.default_port), self.default_path)
    }

    /// The endpoint for a protocol; None when the identity has none for it.
    pub fn endpoint_for(&self, protocol: HubProtocol) -> Option<String> {
        match protocol {
            HubProtocol::Https => Some(self.endpoint_base()),
            HubProtocol::Wss => self.data_plane_endpoints.wss.clone().or_else(|| {
                let lowered = self.default_master.to_ascii_lowercase();
                (lowered.starts_with("wss://") || lowered.starts_with("ws://")).then(|| self.default_master.clone())
            }),
            HubProtocol::Mqtt => self.data_plane_endpoints.mqtt.clone(),
        }
    }

    /// The identity-file form. Without `include_secrets` the access key, the password, the
    /// MQTT credentials and URL userinfo are left out and secret-looking metadata values read
    /// `<redacted>`.
    pub fn as_value(&self, include_secrets: bool) -> Value {
        let url = |value: &str| if include_secrets { value.to_string() } else { strip_userinfo(value) };
        let mut map = Map::new();
        map.insert("site_id".into(), Value::String(self.site_id.clone()));
        map.insert("default_master".into(), Value::String(url(&self.default_master)));
        map.insert("default_port".into(), Value::from(self.default_port));
        map.insert("default_path".into(), Value::String(self.default_path.clone()));
        if !self.data_plane_endpoints.is_empty() {
            map.insert(
                "data_plane_endpoints".into(),
                Value::Object(self.data_plane_endpoints.to_map(!include_secrets)),
            );
        }
        if include_secrets {
            map.insert("access_key".into(), Value::String(self.access_key.clone()));
            map.insert("password".into(), Value::String(self.password.clone()));
        }
        if let Some(mqtt) = &self.mqtt {
            map.insert("mqtt".into(), mqtt.as_value(include_secrets));
        }
        map.insert("protocols".into(), self.protocols.to_value());
        if !self.metadata.is_empty() {
            let metadata = Value::Object(self.metadata.clone());
            map.insert("metadata".into(), if include_secrets { metadata } else { redact_secrets(&metadata) });
        }
        Value::Object(map)
    }

    /// Pretty JSON of [`Self::as_value`].
    pub fn to_json(&self, include_secrets: bool) -> String {
        format!("{}\n", serde_json::to_string_pretty(&self.as_value(include_secrets)).unwrap_or_default())
    }

    /// Write the identity file (with secrets) atomically, mode 0600; sets `source_path`.
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let target = expand_user(path.as_ref());
        crate::noise_store::write_private_atomic(&target, self.to_json(true).as_bytes())
            .map_err(|e| Error::Identity(format!("Cannot write {}: {e}.", target.display())))?;
        self.source_path = Some(absolute(&target));
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn minimal() -> Value {
        json!({"key": " k ", "password": "p", "host": "wss://hub.example.com/base/", "siteId": "s"})
    }

    #[test]
    fn aliases_defaults_and_the_port_rule() {
        let identity = Identity::from_value(&minimal(), None).unwrap();
        assert_eq!(identity.access_key, "k");
        assert_eq!(identity.default_port, DEFAULT_PORT);
        assert_eq!(identity.enabled_protocols(), vec![HubProtocol::Wss]);
        assert_eq!(identity.endpoint_for(HubProtocol::Wss).as_deref(), Some("wss://hub.example.com/base"));
        let mut value = minimal();
        value["port"] = json!(443);
        value["path"] = json!("/hivemind/public/");
        let identity = Identity::from_value(&value, None).unwrap();
        assert_eq!(identity.endpoint_base(), "https://hub.example.com:443/base/hivemind/public");
        value["data_plane_endpoints"] = json!({"https": "https://api.example.com/hivemind/public"});
        let identity = Identity::from_value(&value, None).unwrap();
        assert_eq!(
            identity.endpoint_for(HubProtocol::Https).as_deref(),
            Some("https://api.example.com:443/hivemind/public")
        );
        assert_eq!(identity.endpoint_for(HubProtocol::Mqtt), None);
    }

    #[test]
    fn bad_material_is_an_identity_error() {
        for broken in [
            json!({"password": "p", "host": "h", "site_id": "s"}),
            json!({"key": "k", "password": "p", "host": "h", "site_id": "s", "port": true}),
            json!({"key": "k", "password": "p", "host": "h", "site_id": "s", "port": "x"}),
            json!({"key": "k", "password": "p", "host": "h", "site_id": "s", "port": 70000}),
            json!({"key": "k", "password": "", "host": "h", "site_id": "s"}),
            json!({"key": "k", "password": "p", "host": "h", "site_id": "s", "metadata": []}),
            json!([]),
        ] {
            assert!(Identity::from_value(&broken, None).unwrap_err().is_identity(), "{broken}");
        }
    }

    #[test]
    fn mqtt_block_flags_and_redaction() {
        let mut value = minimal();
        value["mqtt"] = json!({"brokerUrl": "mqtts://broker.example.com", "username": "u", "password": "secret-pw", "topicPrefix": "hive/x/", "qos": "0"});
        value["protocols"] = json!({"wss": "off", "http": {"enabled": true}, "mqtt": "yes"});
        value["metadata"] = json!({"apiKey": "m-secret", "apiKeyRef": "ref", "zone": "a"});
        let identity = Identity::from_value(&value, None).unwrap();
        let mqtt = identity.mqtt.as_ref().unwrap();
        assert_eq!((mqtt.host.as_str(), mqtt.port, mqtt.qos, mqtt.tls), ("broker.example.com", 8883, 0, true));
        assert_eq!(mqtt.topic_prefix.as_deref(), Some("hive/x"));
        assert_eq!(identity.enabled_protocols(), vec![HubProtocol::Https, HubProtocol::Mqtt]);
        let public = identity.as_value(false).to_string();
        for secret in ["secret-pw", "m-secret", "\"k\"", "\"p\""] {
            assert!(!public.contains(secret), "{public}");
        }
        assert!(public.contains("\"apiKeyRef\":\"ref\""));
        let debug = format!("{identity:?} {mqtt:?}");
        assert!(!debug.contains("secret-pw") && !debug.contains("\"u\""), "{debug}");
    }

    #[test]
    fn environment_variables_build_an_identity() {
        let env: std::collections::HashMap<&str, &str> = [
            ("T_ACCESS_KEY", "ak"),
            ("T_PASSWORD", "pw"),
            ("T_SITE_ID", "site"),
            ("T_HUB_HTTP_HOST", "https://hub.example.com"),
            ("T_HUB_HTTP_PORT", "443"),
            ("T_HUB_WSS_HOST", "wss://hub.example.com/ws"),
            ("T_MQTT_ENDPOINT", "mqtts://b.example.com:9883"),
            ("T_MQTT_USERNAME", "u"),
            ("T_MQTT_PASSWORD", "m"),
            ("T_MQTT_TOPIC_PREFIX", "hive/a"),
        ]
        .into_iter()
        .collect();
        let identity = Identity::from_env_map("T_", |name| env.get(name).map(|v| v.to_string())).unwrap();
        assert_eq!(identity.endpoint_for(HubProtocol::Https).as_deref(), Some("https://hub.example.com:443"));
        assert_eq!(identity.endpoint_for(HubProtocol::Wss).as_deref(), Some("wss://hub.example.com/ws"));
        assert_eq!(identity.mqtt.as_ref().map(|m| m.port), Some(9883));
        let missing = Identity::from_env_map("T_", |_| None).unwrap_err();
        assert!(missing.to_string().contains("T_ACCESS_KEY"), "{missing}");
    }

    #[test]
    fn saved_files_are_private_and_load_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("thalovant-identity-{}", crate::control::random_hex(6)));
        let mut identity = Identity::from_value(&minimal(), None).unwrap();
        let path = identity.save(dir.join("id.json")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = Identity::from_file(&path).unwrap();
        assert_eq!(loaded.access_key, "k");
        assert_eq!(loaded.source_path.as_deref(), identity.source_path.as_deref());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Identity::from_file(&path).unwrap_err().to_string().contains("too permissive"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
