//! The HTTPS polling carrier (spec 4.2), on reqwest (HTTP/1.1, rustls, TCP_NODELAY).
//!
//! A session is a sequence of short requests under the identity's `endpoint_base()`:
//! `POST /connect` opens it; `POST /send_message` carries `message=<text>` during the
//! handshake and `message=<base64>&binary=1` after it; a poller task GETs `/get_messages`
//! (and, once this side sent its first transport message, `/get_binary_messages`); `POST
//! /disconnect` ends it and is sent before every reconnect.
//!
//! Every request carries the `authorization` query item, the `User-Agent` header and, once the
//! hub set one, the `hivemind_http_replica` cookie. All requests of one carrier go through one
//! lock; redirects are not followed; 401/403 are the hub's refusal signal. The poller sleeps
//! 0.1 s after an empty round, 0.02 s during the second after this side sent something.
//!
//! The replica cookie and the "admission still held" flag outlive one carrier: the next
//! carrier for the same endpoint and access key reuses the cookie and first sends the
//! `/disconnect` its predecessor could not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex as StdMutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;

use super::{Closed, FirstFailure, Inbound, Incoming, OpenError, authorization_value};
use crate::noise_store::https_pin_id;

/// Idle poll interval.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Poll interval right after this side sent something.
pub const ACTIVE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long after a send the active interval applies.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(1);
/// Timeout of one request.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(8);
/// Timeout of `/disconnect`.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The replica cookie's name.
pub const REPLICA_COOKIE: &str = "hivemind_http_replica";
const MAX_QUEUED: usize = 1024;
/// Largest answer read from the hub (a poll may carry many queued messages).
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
struct Admission {
    cookie: Option<String>,
    held: bool,
}

type Admissions = HashMap<(String, String), Arc<StdMutex<Admission>>>;

static ADMISSIONS: LazyLock<StdMutex<Admissions>> = LazyLock::new(Default::default);

fn admission_for(base: &str, access_key: &str) -> Arc<StdMutex<Admission>> {
    let digest = hex::encode(Sha256::digest(access_key.as_bytes()));
    let mut all = ADMISSIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    all.entry((base.to_string(), digest[..32].to_string())).or_default().clone()
}

struct Shared {
    base: url::Url,
    authorization: String,
    client: reqwest::Client,
    lock: Mutex<()>,
    admission: Arc<StdMutex<Admission>>,
    binary_phase: AtomicBool,
    failed: FirstFailure,
    unreachable: AtomicBool,
    active_until: StdMutex<Instant>,
    wake: Notify,
}

impl Shared {
    fn admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn url(&self, path: &str) -> url::Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.query_pairs_mut().append_pair("authorization", &self.authorization);
        url
    }

    fn scrub(&self, text: &str) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(self.authorization.as_bytes()).collect();
        text.replace(&self.authorization, "<redacted>").replace(&encoded, "<redacted>")
    }

    /// One request; the hub's JSON object, or [`Closed`] with the evidence.
    async fn call(
        &self,
        post: bool,
        path: &str,
        form: Option<Vec<(&str, String)>>,
        timeout: Duration,
        already_disconnected_ok: bool,
    ) -> std::result::Result<Map<String, Value>, Closed> {
        let url = self.url(path);
        let mut request = if post { self.client.post(url) } else { self.client.get(url) };
        if let Some(cookie) = self.admission().cookie.clone() {
            request = request.header("Cookie", cookie);
        }
        if let Some(form) = form {
            let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            request = request.header("Content-Type", "application/x-www-form-urlencoded").body(body);
        } else if post {
            request = request.header("Content-Type", "application/octet-stream").body(Vec::new());
        }
        let guard = self.lock.lock().await;
        let sent = request.timeout(timeout).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.unreachable.store(true, Ordering::Release);
                let what = if e.is_timeout() {
                    "did not answer in time".to_string()
                } else {
                    self.scrub(&with_causes(&e.without_url()))
                };
                return Err(Closed::new(format!("HTTPS request {path} failed: {what}")));
            }
        };
        for value in response.headers().get_all("set-cookie") {
            if let Ok(text) = value.to_str() {
                let pair = text.split(';').next().unwrap_or_default().trim();
                if pair.starts_with(&format!("{REPLICA_COOKIE}=")) {
                    self.admission().cookie = Some(pair.to_string());
                }
            }
        }
        let status = response.status().as_u16();
        let body = crate::http::read_capped(response, MAX_ANSWER).await;
        drop(guard);
        if (300..400).contains(&status) {
            return Err(Closed {
                message: format!(
                    "The hub answered {path} with a redirect (HTTP {status}); redirects are not followed."
                ),
                code: Some(status),
                refusal_signal: false,
                after_end: false,
            });
        }
        if status == 401 || status == 403 {
            return Err(Closed {
                message: format!("The hub refused {path} (HTTP {status})."),
                code: Some(status),
                refusal_signal: true,
                after_end: false,
            });
        }
        if !(200..300).contains(&status) {
            return Err(Closed {
                message: format!("The hub answered {path} with HTTP {status}."),
                code: Some(status),
                refusal_signal: false,
                after_end: false,
            });
        }
        let invalid = || Closed {
            message: format!("Invalid HiveMind HTTP response to {path}: not a JSON object."),
            code: Some(status),
            refusal_signal: false,
            after_end: false,
        };
        let body = body.map_err(|e| Closed {
            message: format!("Invalid HiveMind HTTP response to {path}: {e}."),
            code: Some(status),
            refusal_signal: false,
            after_end: false,
        })?;
        let data = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            _ => return Err(invalid()),
        };
        if let Some(error) = data.get("error").filter(|e| crate::events::truthy(e)) {
            if already_disconnected_ok && error.as_str() == Some("Already Disconnected") {
                return Ok(data);
            }
            let shown: String =
                error.as_str().map_or_else(|| error.to_string(), str::to_string).chars().take(200).collect();
            return Err(Closed {
                message: format!("The hub answered {path} with an error: {shown}"),
                code: Some(status),
                refusal_signal: false,
                after_end: false,
            });
        }
        Ok(data)
    }

    async fn disconnect(&self, timeout: Duration) -> std::result::Result<(), Closed> {
        self.call(true, "/disconnect", None, timeout, true).await?;
        self.admission().held = false;
        Ok(())
    }

    fn fail(&self, closed: &Closed) {
        self.failed.set(closed);
    }

    fn failure(&self) -> Option<Closed> {
        self.failed.get()
    }
}

/// An HTTPS polling session with a hub.
pub struct HttpsCarrier {
    base: String,
    access_key: String,
    useragent: String,
    tls: Arc<rustls::ClientConfig>,
    shared: Option<Arc<Shared>>,
    poller: Option<JoinHandle<()>>,
    open: AtomicBool,
    closed: AtomicBool,
}

impl HttpsCarrier {
    /// A carrier for the identity's `endpoint_base()`.
    pub fn new(base: &str, access_key: &str, useragent: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            base: base.trim().to_string(),
            access_key: access_key.to_string(),
            useragent: useragent.to_string(),
            tls,
            shared: None,
            poller: None,
            open: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// The endpoint base.
    pub fn pin_id(&self) -> String {
        https_pin_id(&self.base)
    }

    /// The endpoint without credentials.
    pub fn endpoint(&self) -> String {
        crate::protocols::strip_userinfo(self.base.split('?').next().unwrap_or_default())
    }

    /// True while the admission holds and the poller runs.
    pub fn alive(&self) -> bool {
        self.open.load(Ordering::Acquire)
            && !self.closed.load(Ordering::Acquire)
            && self.shared.as_ref().is_some_and(|s| s.failure().is_none())
    }

    /// `POST /connect` (after the `/disconnect` a predecessor could not send), then start polling.
    pub async fn open(&mut self, timeout: Duration) -> std::result::Result<Inbound, OpenError> {
        let base = url::Url::parse(&self.base)
            .map_err(|_| OpenError::Failed("The hub's endpoint_base() is not a URL.".into()))?;
        if base.scheme() != "https" || base.host_str().is_none_or(str::is_empty) {
            return Err(OpenError::Failed(format!(
                "Refusing to use the HTTP transport over {}:// URL; the hub's endpoint_base() must be an https:// URL with a host.",
                base.scheme()
            )));
        }
        let mut base = base;
        let kept: Vec<(String, String)> = base
            .query_pairs()
            .filter(|(k, _)| k != "authorization")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        base.set_query(None);
        if !kept.is_empty() {
            base.query_pairs_mut().extend_pairs(kept);
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(self.useragent.clone())
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()
            .map_err(|e| OpenError::Failed(format!("Cannot build the HTTPS client: {e}")))?;
        let shared = Arc::new(Shared {
            base,
            authorization: authorization_value(&self.useragent, &self.access_key),
            client,
            lock: Mutex::new(()),
            admission: admission_for(&self.base, &self.access_key),
            binary_phase: AtomicBool::new(false),
            failed: FirstFailure::default(),
            unreachable: AtomicBool::new(false),
            active_until: StdMutex::new(Instant::now()),
            wake: Notify::new(),
        });
        self.shared = Some(shared.clone());
        let started = Instant::now();
        if shared.admission().held {
            shared.disconnect(DISCONNECT_TIMEOUT.min(timeout)).await.map_err(|e| {
                OpenError::Failed(format!(
                    "Previous connection cleanup failed ({e}); not reconnecting until /disconnect succeeds."
                ))
            })?;
        }
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        let data = match shared.call(true, "/connect", None, left, false).await {
            Ok(data) => data,
            Err(closed) if closed.refusal_signal => return Err(OpenError::Refused(closed.message)),
            Err(closed) if shared.unreachable.load(Ordering::Acquire) && closed.message.contains("in time") => {
                return Err(OpenError::Timeout);
            }
            Err(closed) => return Err(OpenError::Failed(closed.message)),
        };
        if let Some(status) = data.get("status")
            && status.as_str() != Some("Connected")
        {
            return Err(OpenError::Failed(format!("The hub answered /connect with status {status}.")));
        }
        shared.admission().held = true;
        self.open.store(true, Ordering::Release);
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        self.poller = Some(tokio::spawn(poll_loop(shared, tx)));
        Ok(rx)
    }

    async fn send(&self, form: Vec<(&str, String)>) -> std::result::Result<(), Closed> {
        let shared = self.shared.as_ref().ok_or_else(|| Closed::new("The HTTPS session is not open."))?;
        if let Some(failure) = shared.failure() {
            return Err(failure);
        }
        if !self.open.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return Err(Closed::new("The HTTPS session is not open."));
        }
        if let Err(closed) = shared.call(true, "/send_message", Some(form), SEND_TIMEOUT, false).await {
            shared.fail(&closed);
            return Err(closed);
        }
        *shared.active_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now() + ACTIVE_WINDOW;
        shared.wake.notify_one();
        Ok(())
    }

    /// `message=<text>`.
    pub async fn send_text(&self, text: String) -> std::result::Result<(), Closed> {
        self.send(vec![("message", text)]).await
    }

    /// `message=<base64>&binary=1`; from now on the poller reads `/get_binary_messages` too.
    pub async fn send_binary(&self, data: Vec<u8>) -> std::result::Result<(), Closed> {
        if let Some(shared) = &self.shared {
            shared.binary_phase.store(true, Ordering::Release);
        }
        self.send(vec![("message", B64.encode(data)), ("binary", "1".into())]).await
    }

    /// Stop polling and send `/disconnect` (unless the hub is unreachable).
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(poller) = &self.poller {
            poller.abort();
        }
        if let Some(shared) = &self.shared {
            let held = shared.admission().held;
            if held && !shared.unreachable.load(Ordering::Acquire) {
                let _ = shared.disconnect(DISCONNECT_TIMEOUT).await;
            }
        }
    }
}

impl Drop for HttpsCarrier {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
    }
}

/// An error and its causes on one line (reqwest shows the TLS or socket failure only there).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn strings(data: &Map<String, Value>, key: &str, path: &str) -> std::result::Result<Vec<String>, Closed> {
    match data.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map(str::to_string)).collect::<Option<Vec<_>>>().ok_or_else(|| {
                Closed::new(format!("Invalid HiveMind HTTP response to {path}: {key} is not a list of strings."))
            })
        }
        Some(_) => {
            Err(Closed::new(format!("Invalid HiveMind HTTP response to {path}: {key} is not a list of strings.")))
        }
    }
}

async fn poll_once(
    shared: &Shared,
    tx: &mpsc::Sender<std::result::Result<Incoming, Closed>>,
) -> std::result::Result<bool, Closed> {
    let binary_phase = shared.binary_phase.load(Ordering::Acquire);
    let data = shared.call(false, "/get_messages", None, SEND_TIMEOUT, false).await?;
    let messages = strings(&data, "messages", "/get_messages")?;
    let mut received = messages.len();
    for message in messages {
        if tx.send(Ok(Incoming::Text(message))).await.is_err() {
            return Err(Closed::new("The HTTPS session is closed."));
        }
    }
    if binary_phase {
        let data = shared.call(false, "/get_binary_messages", None, SEND_TIMEOUT, false).await?;
        let encoded = strings(&data, "b64_messages", "/get_binary_messages")?;
        received += encoded.len();
        for item in encoded {
            let bytes = B64.decode(item.as_bytes()).map_err(|_| {
                Closed::new("Invalid HiveMind HTTP response to /get_binary_messages: an item is not valid base64.")
            })?;
            if tx.send(Ok(Incoming::Binary(bytes))).await.is_err() {
                return Err(Closed::new("The HTTPS session is closed."));
            }
        }
    }
    Ok(received > 0)
}

async fn poll_loop(shared: Arc<Shared>, tx: mpsc::Sender<std::result::Result<Incoming, Closed>>) {
    loop {
        match poll_once(&shared, &tx).await {
            Ok(true) => continue,
            Ok(false) => {
                let active =
                    Instant::now() < *shared.active_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let interval = if active { ACTIVE_POLL_INTERVAL } else { POLL_INTERVAL };
                let _ = tokio::time::timeout(interval, shared.wake.notified()).await;
            }
            Err(closed) => {
                shared.fail(&closed);
                let _ = tx.send(Err(closed)).await;
                return;
            }
        }
    }
}
