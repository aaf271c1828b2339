//! The SDK's one error type, [`Error`], and [`Result`].
//!
//! The variants mirror the Python SDK's exception classes (`errors.py`); the `is_*` helpers
//! follow that hierarchy, so `error.is_connection()` is true for a refusal, a rejected client
//! key, a changed hub key and an unreachable API too, as `except ThalovantConnectionError`
//! would be. Messages never carry secrets: control-plane errors show only the server's
//! sentence and code, never echoed request values (those stay reachable in
//! [`ApiError::problem`]).

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::events::Event;

/// `Result<T, thalovant::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the SDK returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Identity material is missing, malformed, or stored unsafely (fix the file, the config
    /// profile or the environment variables).
    #[error("{0}")]
    Identity(String),
    /// The requested carrier cannot be used with this identity.
    #[error("{0}")]
    UnsupportedProtocol(String),
    /// The hub (or the API) could not be reached, or the link broke.
    #[error("{0}")]
    Connection(String),
    /// The hub refused this client: unknown or not-yet-admitted access key, wrong password or
    /// a revoked identity.
    #[error("{0}")]
    HubRefused(String),
    /// The hub refused this client's Noise key: it has another key pinned for this access key.
    #[error("{message}")]
    ClientKeyRejected {
        /// What happened and what to do.
        message: String,
        /// Where this client's key lives.
        key_folder: Option<PathBuf>,
    },
    /// The hub's static Noise key differs from the one pinned on this machine.
    #[error("{0}")]
    HubKeyChanged(String),
    /// Something did not happen in time (handshake, reply, event).
    #[error("{0}")]
    Timeout(String),
    /// The hub answered a request with a failure event.
    #[error("{0}")]
    Runtime(String),
    /// The hub's policy refused the message (`hive.policy.denied`).
    #[error("{0}")]
    PolicyDenied(Box<PolicyDenied>),
    /// The hub did not understand the request and nothing answered it.
    #[error("{message}")]
    Unanswered {
        /// What happened.
        message: String,
        /// The utterance the hub reported, when it reported one.
        said: Option<String>,
    },
    /// A control-plane request failed, or its answer was unusable.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// An argument is not usable (an empty utterance, an empty event name).
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// Identity material problem.
    pub fn is_identity(&self) -> bool {
        matches!(self, Self::Identity(_))
    }
    /// The carrier cannot be used with this identity.
    pub fn is_unsupported_protocol(&self) -> bool {
        matches!(self, Self::UnsupportedProtocol(_))
    }
    /// Any connection failure: also refusals, key errors and an unreachable API.
    pub fn is_connection(&self) -> bool {
        matches!(self, Self::Connection(_) | Self::HubKeyChanged(_)) || self.is_hub_refused() || self.is_unreachable()
    }
    /// The hub refused this client (a rejected client key included).
    pub fn is_hub_refused(&self) -> bool {
        matches!(self, Self::HubRefused(_) | Self::ClientKeyRejected { .. })
    }
    /// The hub refused this client's Noise key.
    pub fn is_client_key_rejected(&self) -> bool {
        matches!(self, Self::ClientKeyRejected { .. })
    }
    /// The hub's key changed.
    pub fn is_hub_key_changed(&self) -> bool {
        matches!(self, Self::HubKeyChanged(_))
    }
    /// A timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }
    /// A failure answer from the hub (policy denials and unanswered requests included).
    pub fn is_runtime(&self) -> bool {
        matches!(self, Self::Runtime(_) | Self::PolicyDenied(_) | Self::Unanswered { .. })
    }
    /// A policy denial.
    pub fn is_policy_denied(&self) -> bool {
        matches!(self, Self::PolicyDenied(_))
    }
    /// An unanswered request.
    pub fn is_unanswered(&self) -> bool {
        matches!(self, Self::Unanswered { .. })
    }
    /// A control-plane error.
    pub fn is_api(&self) -> bool {
        matches!(self, Self::Api(_))
    }
    /// Not signed in, wrong credentials, a locked account or a token without the scope.
    pub fn is_auth(&self) -> bool {
        self.api().is_some_and(|e| e.kind == ApiErrorKind::Auth)
    }
    /// The plan does not allow this.
    pub fn is_plan(&self) -> bool {
        self.api().is_some_and(|e| e.kind == ApiErrorKind::Plan)
    }
    /// The API could not be reached.
    pub fn is_unreachable(&self) -> bool {
        self.api().is_some_and(|e| e.kind == ApiErrorKind::Unreachable)
    }
    /// The control-plane error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) => Some(error),
            _ => None,
        }
    }
    /// The HTTP status of a control-plane error.
    pub fn status(&self) -> Option<u16> {
        self.api().and_then(|e| e.status)
    }
}

/// A `hive.policy.denied` answer, read from `data` and `data.data`.
#[derive(Debug, Clone)]
pub struct PolicyDenied {
    /// The display message.
    pub message: String,
    /// The refused message type.
    pub denied_type: Option<String>,
    /// `acl_disallowed_type`, `intent_quota_exceeded`, `backend_unavailable`...
    pub code: Option<String>,
    /// The hub's sentence.
    pub reason: Option<String>,
    /// The types this identity may send, for allow-list refusals.
    pub allowed: Option<Vec<String>>,
    /// `{period, limit, used, reset_after}` for quota refusals.
    pub quota: Option<Map<String, Value>>,
    /// The event itself.
    pub event: Event,
}

impl fmt::Display for PolicyDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn text_or_none(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_string)
}

fn whole_number(value: Option<&Value>) -> u64 {
    const MAX: u64 = (1 << 53) - 1;
    match value {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX as f64).map(|f| f as u64))
            .filter(|n| *n <= MAX)
            .unwrap_or(0),
        _ => 0,
    }
}

impl PolicyDenied {
    /// Read a denial event.
    pub fn from_event(event: &Event) -> Self {
        let data = &event.data;
        let inner = data.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
        let pick = |key: &str| data.get(key).filter(|v| !v.is_null()).or_else(|| inner.get(key));
        let denied_type = text_or_none(pick("denied_type"));
        let code = text_or_none(pick("code"));
        let reason = text_or_none(pick("reason"));
        let allowed = pick("allowed").and_then(Value::as_array).map(|items| {
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect::<Vec<_>>()
        });
        let quota =
            (inner.contains_key("limit") || inner.contains_key("used") || inner.contains_key("period")).then(|| {
                let mut quota = Map::new();
                quota.insert("period".into(), text_or_none(inner.get("period")).map_or(Value::Null, Value::String));
                quota.insert("limit".into(), Value::from(whole_number(inner.get("limit"))));
                quota.insert("used".into(), Value::from(whole_number(inner.get("used"))));
                quota.insert("reset_after".into(), inner.get("reset_after").cloned().unwrap_or(Value::Null));
                quota
            });
        let mut message = format!("The hub's policy refused this {}", denied_type.as_deref().unwrap_or("message"));
        if let Some(reason) = &reason {
            message.push_str(&format!(": {reason}"));
        }
        if let Some(code) = &code {
            message.push_str(&format!(" ({code})"));
        }
        if let Some(allowed) = &allowed {
            let list = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            message.push_str(&format!(". Allowed types: {list}"));
        }
        message.push_str(". Ask the hub's owner to change the identity's permissions or plan.");
        Self { message, denied_type, code, reason, allowed, quota, event: event.clone() }
    }
}

/// The kind of a control-plane error (the Python SDK's subclasses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// Any other failure.
    Other,
    /// 401, 423, or 403 "Insufficient scopes".
    Auth,
    /// 402, or 403 `plan_limit`.
    Plan,
    /// 409 `home_assistant_already_linked`.
    AlreadyLinked,
    /// The API does not support the requested `connection_type`.
    UnsupportedConnectionType,
    /// DNS, TCP, TLS, proxy or timeout failure.
    Unreachable,
}

/// A control-plane error (controlplane.md 12).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Which kind of failure.
    pub kind: ApiErrorKind,
    /// The display message (never an echoed request value).
    pub message: String,
    /// The HTTP status (None for a local refusal or an unreachable API).
    pub status: Option<u16>,
    /// The body's `code` (or the one inside an object `detail`).
    pub code: Option<String>,
    /// The body's `detail` sentence, exactly as sent.
    pub detail: Option<String>,
    /// The whole body, when it was a JSON object.
    pub problem: Option<Map<String, Value>>,
    /// For 429 answers.
    pub retry_after_seconds: Option<f64>,
    /// For [`ApiErrorKind::AlreadyLinked`]: the existing connection.
    pub client_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// A local error of `kind` with `message` and nothing else.
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            code: None,
            detail: None,
            problem: None,
            retry_after_seconds: None,
            client_id: None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        Self::Api(Box::new(error))
    }
}

const SENTENCE_LIMIT: usize = 200;

fn sentence(problem: Option<&Map<String, Value>>) -> Option<String> {
    let problem = problem?;
    ["detail", "message", "error"].iter().find_map(|key| {
        let text = problem.get(*key)?.as_str()?;
        if text.trim().is_empty() {
            return None;
        }
        let collapsed = crate::events::collapse_whitespace(text);
        Some(if collapsed.chars().count() > SENTENCE_LIMIT {
            format!("{}...", collapsed.chars().take(SENTENCE_LIMIT).collect::<String>())
        } else {
            collapsed
        })
    })
}

fn read_member(problem: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    let problem = problem?;
    let direct = problem.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    direct
        .or_else(|| problem.get("detail")?.as_object()?.get(key)?.as_str().filter(|s| !s.trim().is_empty()))
        .map(str::to_string)
}

fn valid_code(code: &str) -> bool {
    (1..=80).contains(&code.len()) && code.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

fn retry_after(problem: Option<&Map<String, Value>>, headers: &[(String, String)]) -> Option<f64> {
    let number = |value: Option<&Value>| value.and_then(Value::as_f64).filter(|f| f.is_finite() && *f >= 0.0);
    if let Some(problem) = problem {
        if let Some(found) = number(problem.get("retry_after_seconds")) {
            return Some(found);
        }
        if let Some(found) =
            number(problem.get("detail").and_then(Value::as_object).and_then(|d| d.get("retry_after_seconds")))
        {
            return Some(found);
        }
    }
    ["retry-after", "ratelimit-reset"].iter().find_map(|name| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .map(|v| v as f64)
    })
}

/// The body parsed, exactly when it is a JSON object.
pub fn parse_problem(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn display_message(status: u16, problem: Option<&Map<String, Value>>) -> String {
    let sentence = sentence(problem);
    let code = problem.and_then(|p| p.get("code")).and_then(Value::as_str);
    let suffix = code.filter(|c| valid_code(c) && Some(*c) != sentence.as_deref()).map(|c| format!("({c})"));
    let prefix = format!("Thalovant API request failed with HTTP {status}");
    match (sentence, suffix) {
        (Some(s), Some(c)) => format!("{prefix}: {s} {c}"),
        (Some(s), None) => format!("{prefix}: {s}"),
        (None, Some(c)) => format!("{prefix}: {c}"),
        (None, None) => format!("{prefix}."),
    }
}

/// The typed error for a non-2xx answer (controlplane.md 12.2-12.5).
pub fn api_error_from_response(status: u16, body: &[u8], headers: &[(String, String)]) -> ApiError {
    let problem = parse_problem(body);
    let code = read_member(problem.as_ref(), "code");
    let detail = read_member(problem.as_ref(), "detail");
    let mut message = display_message(status, problem.as_ref());
    let mut kind = ApiErrorKind::Other;
    if status == 401 || status == 423 || (status == 403 && detail.as_deref() == Some("Insufficient scopes")) {
        kind = ApiErrorKind::Auth;
        message.push_str(match status {
            423 => " The account is locked; wait, or ask an administrator to unlock it.",
            401 => " Sign in again with login(email, password, scope) or set THALOVANT_API_TOKEN.",
            _ => " Use a token with the scope this call needs.",
        });
    } else if status == 402 || (status == 403 && code.as_deref() == Some("plan_limit")) {
        kind = ApiErrorKind::Plan;
    } else if status == 409 && code.as_deref() == Some("home_assistant_already_linked") {
        kind = ApiErrorKind::AlreadyLinked;
    } else if (300..400).contains(&status) {
        message.push_str(" Thalovant API redirected the request; redirects are disabled.");
    }
    let client_id =
        (kind == ApiErrorKind::AlreadyLinked).then(|| problem.as_ref().and_then(linked_client_id)).flatten();
    ApiError {
        kind,
        message,
        status: Some(status),
        code,
        detail,
        retry_after_seconds: retry_after(problem.as_ref(), headers),
        problem,
        client_id,
    }
}

fn linked_client_id(problem: &Map<String, Value>) -> Option<String> {
    let nested = problem.get("detail").and_then(Value::as_object);
    [Some(problem), nested].into_iter().flatten().find_map(|place| {
        ["client_id", "existing_client_id", "connection_id"]
            .iter()
            .find_map(|key| place.get(*key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string))
    })
}
