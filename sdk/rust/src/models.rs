//! Data-plane results: the [`Reply`] of `ask` and the [`Health`] of a client.

use std::fmt;

use serde_json::{Map, Value};

use crate::events::{DisplayItem, EVENT_OVOS_UTTERANCE_SPEAK, EVENT_SPEAK, Event, THALOVANT_CLAIMED_META_KEY};
use crate::protocols::HubProtocol;

/// The answer to one `ask`.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The spoken answer (its sentences joined by a space).
    pub text: String,
    /// The request id.
    pub request_id: Option<String>,
    /// The session the hub answered in (else the request's).
    pub session_id: Option<String>,
    /// The reply's language.
    pub lang: Option<String>,
    /// True when the hub finished the request without a failure.
    pub handled: bool,
    /// Every correlated event, in arrival order.
    pub events: Vec<Event>,
    /// The sentences of the answer.
    pub fragments: Vec<String>,
    /// Speech and sound events, in order.
    pub media_events: Vec<Event>,
    /// The failure event that ended the ask, if any.
    pub failure_event: Option<Event>,
    /// Sound clips left out for size.
    pub dropped_media: usize,
    /// `context.pipeline_id` values, first-seen order.
    pub pipeline_ids: Vec<String>,
    /// `context.skill_id` values, first-seen order.
    pub skill_ids: Vec<String>,
    /// False for unclaimed (fallback) or failed replies.
    pub claimed: bool,
}

fn strings_in_order<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for value in values.flatten() {
        if let Some(text) = value.as_str().filter(|s| !s.is_empty())
            && !seen.iter().any(|s| s == text)
        {
            seen.push(text.to_string());
        }
    }
    seen
}

impl Reply {
    /// Build a reply and derive `session_id`, `lang`, `pipeline_ids`, `skill_ids` and
    /// `claimed` from the events (dataplane.md 6.3).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_events(
        text: String,
        request_id: Option<String>,
        session_id: Option<String>,
        fragments: Vec<String>,
        events: Vec<Event>,
        media_events: Vec<Event>,
        handled: bool,
        failure_event: Option<Event>,
        dropped_media: usize,
    ) -> Self {
        let first = events.first();
        let session_id = first.and_then(|e| e.session_id().map(str::to_string)).or(session_id);
        let lang = first.and_then(|e| e.lang().map(str::to_string));
        let pipeline_ids = strings_in_order(events.iter().map(|e| e.context.get("pipeline_id")));
        let skill_ids = strings_in_order(events.iter().map(|e| e.context.get("skill_id")));
        let claimed = failure_event.is_none()
            && (events.iter().any(|e| {
                (e.name == EVENT_SPEAK || e.name == EVENT_OVOS_UTTERANCE_SPEAK)
                    && e.data.get("meta").and_then(|m| m.get(THALOVANT_CLAIMED_META_KEY)) == Some(&Value::Bool(true))
            }) || pipeline_ids.is_empty()
                || pipeline_ids.iter().any(|p| !p.contains("fallback")));
        Self {
            text,
            request_id,
            session_id,
            lang,
            handled,
            events,
            fragments,
            media_events,
            failure_event,
            dropped_media,
            pipeline_ids,
            skill_ids,
            claimed,
        }
    }

    /// The rich items of the reply (tables, attachments, choices, images) in arrival order;
    /// the spoken text is [`Self::text`]. `max_items` caps the list.
    pub fn display_items(&self, max_items: Option<usize>) -> Vec<DisplayItem> {
        let mut items: Vec<DisplayItem> = self.events.iter().flat_map(|e| e.display_items(false)).collect();
        if let Some(max) = max_items {
            items.truncate(max);
        }
        items
    }

    /// `{text, request_id, session_id, lang, handled, display_items}`.
    pub fn as_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("text".into(), Value::String(self.text.clone()));
        map.insert("request_id".into(), self.request_id.clone().map_or(Value::Null, Value::String));
        map.insert("session_id".into(), self.session_id.clone().map_or(Value::Null, Value::String));
        map.insert("lang".into(), self.lang.clone().map_or(Value::Null, Value::String));
        map.insert("handled".into(), Value::Bool(self.handled));
        map.insert(
            "display_items".into(),
            Value::Array(self.display_items(None).iter().map(DisplayItem::as_value).collect()),
        );
        Value::Object(map)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The link state of a runtime client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// A link exists and the client is not closed.
    pub connected: bool,
    /// The Noise handshake completed.
    pub handshake_complete: bool,
    /// The transport is alive.
    pub transport_alive: bool,
    /// The last error (redacted: nothing after `?`).
    pub last_error: Option<String>,
    /// The carrier.
    pub protocol: Option<HubProtocol>,
    /// The endpoint dialled.
    pub endpoint: Option<String>,
    /// `XXpsk2` or `KKpsk0`.
    pub noise_pattern: Option<String>,
}

impl Health {
    /// Connected, handshaken, alive and no error.
    pub fn ok(&self) -> bool {
        self.connected && self.handshake_complete && self.transport_alive && self.last_error.is_none()
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "health: {} protocol={} connected={} handshake_complete={} transport_alive={}",
            if self.ok() { "ok" } else { "NOT OK" },
            self.protocol.map_or("?", HubProtocol::as_str),
            self.connected,
            self.handshake_complete,
            self.transport_alive
        )?;
        if let Some(pattern) = &self.noise_pattern {
            write!(f, " noise={pattern}")?;
        }
        if let Some(endpoint) = &self.endpoint {
            write!(f, " endpoint={endpoint}")?;
        }
        if let Some(error) = &self.last_error {
            write!(f, " last_error={error}")?;
        }
        Ok(())
    }
}
