//! The control-plane client: discover hubs and provision client identities (controlplane.md).
//!
//! - API URL: `THALOVANT_API_URL`, else the `api_url` key of the config file, else
//!   `https://localhost:8443` (or [`ControlPlane::new`]'s argument). A trailing `/v1` is
//!   dropped; requests go to `<base>/v1/...`.
//! - Token: [`ControlPlane::login`], [`ControlPlane::with_token`] or `THALOVANT_API_TOKEN`. A
//!   private call without one fails with "Missing Thalovant API access token" before any I/O.
//! - TLS: [`crate::tls`]; no redirects (a 3xx is an error), no cookies, and credentials never go
//!   over plain HTTP except to a loopback host.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, ApiErrorKind, Error, Result, api_error_from_response};
use crate::identity::Identity;
use crate::protocols::{DEFAULT_PROTOCOL_PREFERENCE, Endpoints, HubProtocol, HubProtocolSettings, read_endpoints};

/// The API URL used when nothing else names one.
pub const DEFAULT_API_URL: &str = "https://localhost:8443";
/// The error message of a private call without a token.
pub const MISSING_TOKEN_MESSAGE: &str =
    "Missing Thalovant API access token. Sign in with login(email, password, scope) or set THALOVANT_API_TOKEN.";
/// Largest API answer read.
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;
const USER_AGENT: &str = concat!("ThalovantRustSDK/", env!("CARGO_PKG_VERSION"));
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];
const SCRUBBED_KEYS: [&str; 16] = [
    "initialidentify",
    "initialidentifytoken",
    "apikey",
    "accesskey",
    "password",
    "cryptokey",
    "token",
    "accesstoken",
    "refreshtoken",
    "authorization",
    "clientsecret",
    "privatekey",
    "secret",
    "apisecret",
    "secretkey",
    "credentials",
];

fn normalised_key(name: &str) -> String {
    name.to_lowercase().replace(['_', '-'], "")
}

/// A copy without any key whose normalised name is a known secret (controlplane.md 5.4).
pub fn scrub_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !SCRUBBED_KEYS.contains(&normalised_key(k).as_str()))
                .map(|(k, v)| (k.clone(), scrub_secrets(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scrub_secrets).collect()),
        other => other.clone(),
    }
}

/// Trim, drop trailing slashes and one trailing `/v1`, end with `/`.
pub fn normalize_api_url(url: &str) -> String {
    let mut text = url.trim().trim_end_matches('/').to_string();
    if text.to_ascii_lowercase().ends_with("/v1") {
        text.truncate(text.len() - 3);
        text = text.trim_end_matches('/').to_string();
    }
    if text.is_empty() {
        text = DEFAULT_API_URL.to_string();
    }
    format!("{text}/")
}

/// The API URL by precedence: argument, `THALOVANT_API_URL`, config file, default.
pub fn resolve_api_url(api_url: Option<&str>) -> String {
    if let Some(url) = api_url.filter(|u| !u.trim().is_empty()) {
        return normalize_api_url(url);
    }
    if let Some(url) = std::env::var("THALOVANT_API_URL").ok().filter(|u| !u.trim().is_empty()) {
        return normalize_api_url(&url);
    }
    normalize_api_url(&crate::config::config_api_url().unwrap_or_else(|| DEFAULT_API_URL.to_string()))
}

/// controlplane.md 5.1 step 2: trim, `_` to `-`, whitespace runs to `-`; empty gives
/// `thalovant-client-<8 hex>`.
pub fn clean_site_id(value: &str) -> String {
    let text = value.trim().replace('_', "-");
    let text = text.split_whitespace().collect::<Vec<_>>().join("-");
    if text.is_empty() { format!("thalovant-client-{}", random_hex(4)) } else { text }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom only fails when the OS has no randomness at all
    if getrandom::fill(&mut buf).is_err() {
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    }
    hex::encode(buf)
}

fn token_urlsafe() -> Result<String> {
    use base64::Engine;
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| Error::Identity(format!("no randomness for a new secret: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

fn uuid4() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn percent_encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

/// A hub resource (public or private view); every other field is in `extra`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Hub {
    /// The hub id.
    #[serde(default)]
    pub id: String,
    /// The URL slug.
    #[serde(default)]
    pub slug: String,
    /// The public reference.
    #[serde(default)]
    pub public_ref: String,
    /// The display title.
    #[serde(default)]
    pub title: String,
    /// The name.
    #[serde(default)]
    pub name: String,
    /// Every other field as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Hub {
    /// The whole resource as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.extra.clone();
        for (key, value) in [
            ("id", &self.id),
            ("slug", &self.slug),
            ("public_ref", &self.public_ref),
            ("title", &self.title),
            ("name", &self.name),
        ] {
            map.insert(key.into(), Value::String(value.clone()));
        }
        map
    }
}

/// A page of a cursor-paged list: `data`, `meta`, `links`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Page<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// Paging facts (`next_cursor`, ...).
    #[serde(default)]
    pub meta: Value,
    /// Paging links.
    #[serde(default)]
    pub links: Value,
}

/// Options of [`ControlPlane::create_client_identity_for_hub_id`].
#[derive(Debug, Clone, Default)]
pub struct BootstrapIdentityOptions {
    /// The client's name (required).
    pub name: String,
    /// The site id (default: cleaned from the name).
    pub site_id: Option<String>,
    /// Extra client spec fields.
    pub spec: Option<Map<String, Value>>,
    /// The owner (admins only).
    pub owner_id: Option<String>,
    /// Create it inactive when `Some(false)`.
    pub active: Option<bool>,
    /// The carrier preference for the selected endpoint (default wss, https, mqtt).
    pub preferred_protocols: Vec<HubProtocol>,
    /// Replays return the same client (default: a new key per call).
    pub idempotency_key: Option<String>,
    /// A connection type the API must confirm.
    pub connection_type: Option<String>,
}

/// What [`ControlPlane::create_client_identity_for_hub_id`] returns.
#[derive(Clone)]
pub struct BootstrapIdentityResult {
    /// The identity, ready to use.
    pub identity: Identity,
    /// The hub resource.
    pub hub: Hub,
    /// The raw API answer (holds secrets; scrubbed in `Debug`).
    pub client: Map<String, Value>,
    /// The carrier a new identity uses first.
    pub selected_protocol: Option<HubProtocol>,
    /// Its endpoint.
    pub selected_endpoint: Option<String>,
    /// The provisioning operation, when the API returned one.
    pub operation: Option<Map<String, Value>>,
}

impl BootstrapIdentityResult {
    /// The new client's id.
    pub fn client_id(&self) -> Option<&str> {
        self.client.get("id").and_then(Value::as_str)
    }
}

impl std::fmt::Debug for BootstrapIdentityResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BootstrapIdentityResult(client_id={:?}, hub_id={:?}, selected_protocol={:?}, identity={:?})",
            self.client_id(),
            self.hub.id,
            self.selected_protocol,
            self.identity
        )
    }
}

fn domain_host(domain: Option<&Value>) -> Option<String> {
    let text = domain?.as_str()?.trim().trim_end_matches('/');
    if text.is_empty() {
        return None;
    }
    if text.contains("://") {
        let url = url::Url::parse(text).ok()?;
        let host = url.host_str()?;
        return Some(url.port().map_or_else(|| host.to_string(), |p| format!("{host}:{p}")));
    }
    text.split('/').next().filter(|h| !h.is_empty()).map(str::to_string)
}

/// A hub's protocol flags and data-plane endpoints (controlplane.md 4.1, 5.3): the given
/// endpoints, plus `https://<domain>` / `wss://<domain>` for enabled protocols that have none.
pub fn hub_endpoints(hub: &Map<String, Value>) -> (HubProtocolSettings, Endpoints) {
    let flags = HubProtocolSettings::from_map(hub);
    let mut endpoints = read_endpoints(hub);
    if let Some(host) = domain_host(hub.get("domain")) {
        if flags.http && endpoints.https.is_none() {
            endpoints.https = Some(format!("https://{host}"));
        }
        if flags.wss && endpoints.wss.is_none() {
            endpoints.wss = Some(format!("wss://{host}"));
        }
    }
    (flags, endpoints)
}

fn scheme_and_authority(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// The control-plane client. Cheap to clone (the HTTP connections are shared).
#[derive(Clone)]
pub struct ControlPlane {
    /// The API base URL (ends with `/`).
    pub api_url: String,
    /// The bearer token.
    pub access_token: Option<String>,
    /// The id of the signed-in API token, when the API returned one.
    pub token_id: Option<String>,
    /// The per-request timeout.
    pub timeout: Duration,
    /// A CA file trusted alone instead of the trust variables (see [`crate::tls`]).
    pub ca_file: Option<std::path::PathBuf>,
    http: Option<reqwest::Client>,
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self::new(None)
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlPlane(api_url={:?}, signed_in={})", self.api_url, self.access_token.is_some())
    }
}

impl ControlPlane {
    /// A client for `api_url` (else `THALOVANT_API_URL`, the config file or the default); the
    /// token comes from `THALOVANT_API_TOKEN` when set.
    pub fn new(api_url: Option<&str>) -> Self {
        let token = std::env::var("THALOVANT_API_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        Self {
            api_url: resolve_api_url(api_url),
            access_token: token,
            token_id: None,
            timeout: Duration::from_secs(10),
            ca_file: None,
            http: None,
        }
    }

    /// The same client with `token` as its bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    fn client(&mut self) -> Result<reqwest::Client> {
        if let Some(http) = &self.http {
            return Ok(http.clone());
        }
        let tls = (*crate::tls::client_config_for(self.ca_file.as_deref())?).clone();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .user_agent(USER_AGENT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ApiError::new(ApiErrorKind::Other, format!("Cannot build the HTTP client: {e}")))?;
        self.http = Some(http.clone());
        Ok(http)
    }

    /// Send one request and return its JSON object (`{}` for an empty 2xx body). Errors are
    /// the typed errors of controlplane.md 12.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: bool,
        params: &[(&str, Option<String>)],
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Map<String, Value>> {
        let token = if auth {
            Some(self.access_token.clone().ok_or_else(|| ApiError::new(ApiErrorKind::Other, MISSING_TOKEN_MESSAGE))?)
        } else {
            None
        };
        let mut url = url::Url::parse(&format!("{}{}", self.api_url, path.trim_start_matches('/'))).map_err(|_| {
            ApiError::new(ApiErrorKind::Other, "Could not form a valid Thalovant API URL; check the API URL.")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(
                ApiError::new(ApiErrorKind::Other, "The Thalovant API URL must be http(s):// with a host.").into()
            );
        }
        let loopback = url.host_str().is_some_and(|h| LOOPBACK_HOSTS.contains(&h));
        if (auth || body.is_some()) && url.scheme() != "https" && !loopback {
            return Err(ApiError::new(
                ApiErrorKind::Other,
                "Refusing to send credentials over plain HTTP to a non-loopback host; use an https:// API URL.",
            )
            .into());
        }
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in params {
                if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                    query.append_pair(key, value);
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ApiError::new(ApiErrorKind::Other, format!("Unknown HTTP method {method}")))?;
        let mut request = self.client()?.request(method, url).header("accept", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request =
                request.header("content-type", "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response = request.send().await.map_err(|_| {
            ApiError::new(
                ApiErrorKind::Unreachable,
                "Could not reach the Thalovant API. Check the API URL, the network, and the CA bundle (SSL_CERT_FILE) for a private server.",
            )
        })?;
        let status = response.status().as_u16();
        let header_list: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect();
        let bytes = crate::http::read_capped(response, MAX_ANSWER).await.map_err(|e| ApiError {
            status: Some(status),
            ..ApiError::new(ApiErrorKind::Other, format!("Unusable Thalovant API answer: {e}."))
        })?;
        if !(200..300).contains(&status) {
            return Err(api_error_from_response(status, &bytes, &header_list).into());
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError {
                status: Some(status),
                ..ApiError::new(
                    ApiErrorKind::Other,
                    format!(
                        "Thalovant API returned an unexpected response shape (HTTP {status}): expected a JSON object."
                    ),
                )
            }
            .into()),
            Err(_) => Err(ApiError {
                status: Some(status),
                ..ApiError::new(
                    ApiErrorKind::Other,
                    format!("Thalovant API returned a non-JSON response (HTTP {status})."),
                )
            }
            .into()),
        }
    }

    fn decode<T: for<'de> Deserialize<'de>>(map: Map<String, Value>, what: &str) -> Result<T> {
        serde_json::from_value(Value::Object(map)).map_err(|e| {
            ApiError::new(ApiErrorKind::Other, format!("Thalovant API returned an unusable {what}: {e}")).into()
        })
    }

    /// Sign in with a password (POST /v1/auth/token); keeps the token and returns the answer.
    pub async fn login(&mut self, email: &str, password: &str, scope: Option<&str>) -> Result<Map<String, Value>> {
        let mut body = json!({"email": email, "password": password});
        if let Some(scope) = scope {
            body["scope"] = Value::String(scope.to_string());
        }
        let answer = self.request("POST", "/v1/auth/token", false, &[], Some(&body), &[]).await?;
        let token =
            answer.get("access_token").and_then(Value::as_str).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                ApiError::new(ApiErrorKind::Other, "Thalovant API token response did not include access_token.")
            })?;
        self.access_token = Some(token.to_string());
        self.token_id = answer.get("token_id").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string);
        Ok(answer)
    }

    /// Public, active hubs (no sign-in).
    pub async fn list_public_hubs(&mut self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Hub>> {
        let params = [("limit", Some(limit.unwrap_or(24).to_string())), ("cursor", cursor.map(str::to_string))];
        let answer = self.request("GET", "/v1/public/hubs", false, &params, None, &[]).await?;
        Self::decode(answer, "page of hubs")
    }

    /// One public hub by slug, public ref or id (no sign-in).
    pub async fn get_public_hub(&mut self, public_ref: &str) -> Result<Hub> {
        let answer = self
            .request("GET", &format!("/v1/public/hubs/{}", percent_encode(public_ref)), false, &[], None, &[])
            .await?;
        Self::decode(answer, "hub")
    }

    /// The hubs visible to the signed-in user.
    pub async fn list_hubs(
        &mut self,
        limit: Option<u32>,
        cursor: Option<&str>,
        owner_id: Option<&str>,
    ) -> Result<Page<Hub>> {
        let params = [
            ("limit", Some(limit.unwrap_or(100).to_string())),
            ("cursor", cursor.map(str::to_string)),
            ("owner_id", owner_id.map(str::to_string)),
        ];
        let answer = self.request("GET", "/v1/hubs", true, &params, None, &[]).await?;
        Self::decode(answer, "page of hubs")
    }

    /// One hub by id.
    pub async fn get_hub(&mut self, hub_id: &str) -> Result<Hub> {
        let answer = self.request("GET", &format!("/v1/hubs/{}", percent_encode(hub_id)), true, &[], None, &[]).await?;
        Self::decode(answer, "hub")
    }

    /// POST /v1/clients with the payload as given.
    pub async fn create_client(
        &mut self,
        payload: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let key = idempotency_key.map_or_else(uuid4, str::to_string);
        self.request("POST", "/v1/clients", true, &[], Some(payload), &[("Idempotency-Key", key)]).await
    }

    /// Client identities in the cursor envelope, filtered by hub.
    pub async fn list_clients(
        &mut self,
        hub_id: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let params = [
            ("limit", Some(limit.unwrap_or(100).to_string())),
            ("hub_id", hub_id.map(str::to_string)),
            ("cursor", cursor.map(str::to_string)),
        ];
        self.request("GET", "/v1/clients", true, &params, None, &[]).await
    }

    /// One client identity resource.
    pub async fn get_client(&mut self, client_id: &str) -> Result<Map<String, Value>> {
        self.request("GET", &format!("/v1/clients/{}", percent_encode(client_id)), true, &[], None, &[]).await
    }

    /// Delete a client identity (revokes it); reads the etag, retries once after a 412 and
    /// treats 404 as already deleted.
    pub async fn delete_client(&mut self, client_id: &str) -> Result<()> {
        let path = format!("/v1/clients/{}", percent_encode(client_id));
        for attempt in 0..2 {
            let outcome = async {
                let current = self.request("GET", &path, true, &[], None, &[]).await?;
                let etag = current
                    .get("etag")
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                    .ok_or_else(|| {
                        ApiError::new(ApiErrorKind::Other, "The resource has no etag; cannot delete it safely.")
                    })?
                    .to_string();
                self.request("DELETE", &path, true, &[], None, &[("If-Match", etag)]).await
            }
            .await;
            match outcome {
                Ok(_) => return Ok(()),
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) if e.status() == Some(412) && attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Create a client identity on a hub (controlplane.md 5.1-5.4) and return it ready to use.
    pub async fn create_client_identity_for_hub_id(
        &mut self,
        hub_id: &str,
        options: BootstrapIdentityOptions,
    ) -> Result<BootstrapIdentityResult> {
        if options.name.trim().is_empty() {
            return Err(Error::InvalidArgument("BootstrapIdentityOptions.name must be a non-empty string".into()));
        }
        let hub = self.get_hub(hub_id).await?;
        self.create_client_identity_for_hub(hub, options).await
    }

    /// Like [`Self::create_client_identity_for_hub_id`] with a hub resource already read.
    pub async fn create_client_identity_for_hub(
        &mut self,
        hub: Hub,
        options: BootstrapIdentityOptions,
    ) -> Result<BootstrapIdentityResult> {
        if hub.id.is_empty() {
            return Err(ApiError::new(ApiErrorKind::Other, "Hub resource is missing id.").into());
        }
        let site = clean_site_id(options.site_id.as_deref().unwrap_or(&options.name));
        let access_key = token_urlsafe()?;
        let password = token_urlsafe()?;
        let mut spec: Map<String, Value> = options
            .spec
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| normalised_key(k) != "cryptokey")
            .collect();
        spec.entry("version").or_insert_with(|| Value::String("1".into()));
        if let Some(kind) = &options.connection_type {
            spec.insert("connection_type".into(), Value::String(kind.clone()));
        }
        spec.insert("apiKey".into(), Value::String(access_key.clone()));
        spec.insert("password".into(), Value::String(password.clone()));
        spec.insert("siteId".into(), Value::String(site.clone()));
        let mut body =
            json!({"hub_id": hub.id, "name": options.name, "spec": spec, "active": options.active.unwrap_or(true)});
        if let Some(owner) = &options.owner_id {
            body["owner_id"] = Value::String(owner.clone());
        }
        let client = match self.create_client(&body, options.idempotency_key.as_deref()).await {
            Ok(client) => client,
            Err(Error::Api(error)) if error.status == Some(422) && options.connection_type.is_some() => {
                let mentions = serde_json::to_string(&error.problem).unwrap_or_default().contains("connection_type");
                if mentions {
                    return Err(ApiError { kind: ApiErrorKind::UnsupportedConnectionType, ..*error }.into());
                }
                return Err(Error::Api(error));
            }
            Err(other) => return Err(other),
        };
        if let Some(kind) = &options.connection_type {
            let echoed = client.get("spec").and_then(|s| s.get("connection_type")).and_then(Value::as_str);
            if echoed != Some(kind.as_str()) {
                if let Some(id) = client.get("id").and_then(Value::as_str) {
                    self.delete_client(id).await?;
                }
                return Err(ApiError::new(
                    ApiErrorKind::UnsupportedConnectionType,
                    format!("The API did not confirm connection_type {kind:?}; the new client was deleted."),
                )
                .into());
            }
        }
        let hub_map = hub.to_map();
        let (flags, endpoints) = hub_endpoints(&hub_map);
        let preference = if options.preferred_protocols.is_empty() {
            DEFAULT_PROTOCOL_PREFERENCE.to_vec()
        } else {
            options.preferred_protocols.clone()
        };
        let selected = preference
            .into_iter()
            .find(|p| flags.is_enabled(*p) && endpoints.get(*p).is_some())
            .and_then(|p| endpoints.get(p).map(|e| (p, e.to_string())));
        let material = if let Some(initial) = client.get("initial_identify").and_then(Value::as_object) {
            let mut material: Map<String, Value> = initial
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "spec" | "protocols" | "network"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut merged = endpoints.clone();
            let given = read_endpoints(initial);
            for protocol in DEFAULT_PROTOCOL_PREFERENCE {
                if merged.get(protocol).is_none()
                    && let Some(value) = given.get(protocol)
                {
                    merged.set(protocol, value.to_string());
                }
            }
            material.insert("data_plane_endpoints".into(), Value::Object(merged.to_map(false)));
            material.insert("protocols".into(), flags.to_value());
            material
        } else {
            let master = endpoints
                .https
                .as_deref()
                .and_then(scheme_and_authority)
                .or_else(|| domain_host(hub_map.get("domain")).map(|h| format!("https://{h}")))
                .or_else(|| selected.as_ref().and_then(|(_, e)| scheme_and_authority(e)))
                .ok_or_else(|| {
                    ApiError::new(ApiErrorKind::Other, "Hub resource does not expose a usable data-plane endpoint.")
                })?;
            let value = json!({
                "access_key": access_key, "password": password, "site_id": site, "default_master": master,
                "default_port": 443, "default_path": "", "data_plane_endpoints": endpoints.to_map(false),
                "protocols": flags.to_value(),
            });
            value.as_object().cloned().unwrap_or_default()
        };
        let identity = Identity::from_value(&Value::Object(material), None)?;
        let operation = client.get("operation").and_then(Value::as_object).filter(|o| o.contains_key("id")).cloned();
        Ok(BootstrapIdentityResult {
            identity,
            hub,
            client,
            selected_protocol: selected.as_ref().map(|(p, _)| *p),
            selected_endpoint: selected.map(|(_, e)| e),
            operation,
        })
    }
}
