//! Collecting the reply to one `ask` (spec 6.3), as a clock-free state machine: the driver
//! feeds it correlated events and the current instant, and wakes it at [`ReplyCollector::deadline`].
//!
//! - each `speak` / `ovos.utterance.speak` with text adds a fragment (a repeat of the previous
//!   one is dropped); the first starts the settle window, and the reply is returned when it
//!   closes, or at once when `ovos.utterance.handled` arrives after speech;
//! - `ovos.utterance.handled` before any speech starts the 5 s empty-reply window (then a
//!   timeout error), an unmatched / intent failure the same window (then
//!   [`Error::Unanswered`]); a speak inside the window still wins;
//! - `hive.policy.denied` and `hive.query.timeout` end the ask at once (a reply with
//!   `handled = false` if speech already arrived);
//! - `mycroft.audio.queue` clips are kept in order (size limits apply) and never settle it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::errors::{Error, PolicyDenied, Result};
use crate::events::{
    self, EVENT_AUDIO_QUEUE, EVENT_INTENT_FAILURE, EVENT_INTENT_UNMATCHED, EVENT_OVOS_UTTERANCE_SPEAK,
    EVENT_POLICY_DENIED, EVENT_QUERY_TIMEOUT, EVENT_SPEAK, EVENT_UTTERANCE_HANDLED, Event,
};
use crate::models::Reply;

/// How long a handled-without-speech or unmatched ask waits for a late speak.
pub const EMPTY_REPLY_WAIT: Duration = Duration::from_secs(5);
/// Largest sound clip kept.
pub const MAX_AUDIO_CLIP_BYTES: usize = 4 * 1024 * 1024;
/// Largest total of sound kept per reply.
pub const MAX_REPLY_MEDIA_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
enum Window {
    Settle,
    EmptyReply,
    Unanswered(Option<String>),
}

/// The state of one ask. Once an outcome was returned the ask is settled: what it gathered
/// moved into the reply, and later calls return nothing ([`Self::feed`], [`Self::on_timer`]) or
/// the error given ([`Self::abort`]) or a timeout ([`Self::on_deadline`]).
#[derive(Debug)]
pub struct ReplyCollector {
    request_id: String,
    session_id: Option<String>,
    settle: Duration,
    empty_wait: Duration,
    events: Vec<Event>,
    fragments: Vec<String>,
    media: Vec<Event>,
    media_bytes: usize,
    dropped_media: usize,
    handled: bool,
    failure_event: Option<Event>,
    timer: Option<(Instant, Window)>,
    done: bool,
}

impl ReplyCollector {
    /// A collector for `request_id`.
    pub fn new(request_id: &str, session_id: Option<&str>, settle: Duration, empty_wait: Duration) -> Self {
        Self {
            request_id: request_id.to_string(),
            session_id: session_id.map(str::to_string),
            settle,
            empty_wait,
            events: Vec::new(),
            fragments: Vec::new(),
            media: Vec::new(),
            media_bytes: 0,
            dropped_media: 0,
            handled: false,
            failure_event: None,
            timer: None,
            done: false,
        }
    }

    /// When the driver must call [`Self::on_timer`].
    pub fn deadline(&self) -> Option<Instant> {
        self.timer.as_ref().map(|(at, _)| *at)
    }

    fn finish(&mut self) -> Option<Result<Reply>> {
        self.done = true;
        self.timer = None;
        Some(Ok(self.build_reply()))
    }

    fn fail(&mut self, error: Error) -> Option<Result<Reply>> {
        self.done = true;
        self.timer = None;
        Some(Err(error))
    }

    fn start_window(&mut self, window: Window, now: Instant, restart: bool) {
        if self.timer.is_some() && !restart {
            return;
        }
        self.timer = Some((now + self.empty_wait, window));
    }

    /// Take one event already correlated with this ask; the outcome when it settles it.
    pub fn feed(&mut self, event: Event, now: Instant) -> Option<Result<Reply>> {
        if self.done {
            return None;
        }
        match event.name.as_str() {
            EVENT_SPEAK | EVENT_OVOS_UTTERANCE_SPEAK => {
                let text = events::collapse_whitespace(event.text());
                if text.is_empty() || self.fragments.last() == Some(&text) {
                    self.events.push(event);
                    return None;
                }
                self.events.push(event.clone());
                let first = self.fragments.is_empty();
                self.fragments.push(text);
                self.media.push(event);
                if first {
                    if self.settle.is_zero() {
                        return self.finish();
                    }
                    self.timer = Some((now + self.settle, Window::Settle));
                }
                None
            }
            EVENT_UTTERANCE_HANDLED => {
                self.events.push(event);
                self.handled = true;
                if !self.fragments.is_empty() {
                    return self.finish();
                }
                self.start_window(Window::EmptyReply, now, false);
                None
            }
            EVENT_INTENT_UNMATCHED | EVENT_INTENT_FAILURE => {
                let said = event.data.get("utterance").and_then(Value::as_str).map(str::to_string);
                self.events.push(event.clone());
                if self.fragments.is_empty() {
                    self.failure_event = Some(event);
                    self.start_window(Window::Unanswered(said), now, true);
                }
                None
            }
            EVENT_POLICY_DENIED | EVENT_QUERY_TIMEOUT => {
                self.events.push(event.clone());
                self.failure_event = Some(event.clone());
                if !self.fragments.is_empty() {
                    self.handled = false;
                    return self.finish();
                }
                if event.name == EVENT_POLICY_DENIED {
                    return self.fail(Error::PolicyDenied(Box::new(PolicyDenied::from_event(&event))));
                }
                let message = ["reason", "error", "code"]
                    .iter()
                    .find_map(|k| match event.data.get(*k) {
                        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    })
                    .unwrap_or_else(|| event.name.clone());
                self.fail(Error::Runtime(message))
            }
            EVENT_AUDIO_QUEUE => {
                let size = event.data.get("binary_data").and_then(Value::as_str).map_or(0, |clip| clip.len() / 2);
                if size > MAX_AUDIO_CLIP_BYTES || self.media_bytes + size > MAX_REPLY_MEDIA_BYTES {
                    self.dropped_media += 1;
                } else {
                    self.media_bytes += size;
                    self.media.push(event);
                }
                None
            }
            _ => None,
        }
    }

    /// The timer fired.
    pub fn on_timer(&mut self, now: Instant) -> Option<Result<Reply>> {
        let (at, window) = self.timer.clone()?;
        if self.done || now < at {
            return None;
        }
        self.timer = None;
        match window {
            Window::Settle => self.finish(),
            _ if !self.fragments.is_empty() => self.finish(),
            Window::EmptyReply => {
                self.fail(Error::Timeout("Hub finished the query but did not emit a speak reply.".into()))
            }
            Window::Unanswered(said) => {
                let message = format!(
                    "The hub did not understand the request.{}",
                    said.as_ref().map(|s| format!(" (said: {s})")).unwrap_or_default()
                );
                self.fail(Error::Unanswered { message, said })
            }
        }
    }

    /// The overall deadline passed: the reply so far, or a timeout.
    pub fn on_deadline(&mut self, timeout: Duration) -> Result<Reply> {
        if !self.fragments.is_empty() {
            return self.build_reply_ok();
        }
        self.done = true;
        Err(Error::Timeout(format!("No reply from the hub within {} s.", timeout.as_secs_f64())))
    }

    /// End the ask with `error` (the link dropped, the client closed): the reply so far wins.
    pub fn abort(&mut self, error: Error) -> Result<Reply> {
        if !self.fragments.is_empty() {
            return self.build_reply_ok();
        }
        self.done = true;
        Err(error)
    }

    fn build_reply_ok(&mut self) -> Result<Reply> {
        self.done = true;
        Ok(self.build_reply())
    }

    /// The reply of a finished ask; what it gathered moves into the reply (the collector is done
    /// and gathers nothing more).
    fn build_reply(&mut self) -> Reply {
        let handled = self.handled || (self.failure_event.is_none() && !self.fragments.is_empty());
        Reply::from_events(
            self.fragments.join(" "),
            Some(self.request_id.clone()),
            self.session_id.clone(),
            std::mem::take(&mut self.fragments),
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.media),
            handled,
            self.failure_event.take(),
            self.dropped_media,
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str, data: Value) -> Event {
        Event { name: name.into(), data: data.as_object().cloned().unwrap_or_default(), context: Default::default() }
    }

    #[test]
    fn speech_settles_and_handled_finishes_at_once() {
        let now = Instant::now();
        let mut collector = ReplyCollector::new("r", None, Duration::from_millis(250), EMPTY_REPLY_WAIT);
        assert!(collector.feed(event(EVENT_SPEAK, json!({"utterance": "One  two."})), now).is_none());
        assert!(
            collector.feed(event(EVENT_SPEAK, json!({"utterance": "One two."})), now).is_none(),
            "a repeat is dropped"
        );
        assert!(collector.feed(event(EVENT_OVOS_UTTERANCE_SPEAK, json!({"text": "Three."})), now).is_none());
        assert_eq!(collector.deadline(), Some(now + Duration::from_millis(250)));
        let reply = collector.feed(event(EVENT_UTTERANCE_HANDLED, json!({})), now).unwrap().unwrap();
        assert_eq!(reply.text, "One two. Three.");
        assert!(reply.handled && reply.claimed);
        let mut settling = ReplyCollector::new("r", None, Duration::from_millis(250), EMPTY_REPLY_WAIT);
        settling.feed(event(EVENT_SPEAK, json!({"utterance": "Hi."})), now);
        assert!(settling.on_timer(now).is_none(), "not before the window closes");
        assert_eq!(settling.on_timer(now + Duration::from_secs(1)).unwrap().unwrap().text, "Hi.");
    }

    #[test]
    fn failures_and_empty_replies_are_typed_errors() {
        let now = Instant::now();
        let later = now + Duration::from_secs(6);
        let mut empty = ReplyCollector::new("r", None, Duration::ZERO, EMPTY_REPLY_WAIT);
        assert!(empty.feed(event(EVENT_UTTERANCE_HANDLED, json!({})), now).is_none());
        assert!(empty.on_timer(later).unwrap().unwrap_err().is_timeout());
        let mut unmatched = ReplyCollector::new("r", None, Duration::ZERO, EMPTY_REPLY_WAIT);
        unmatched.feed(event(EVENT_INTENT_UNMATCHED, json!({"utterance": "blah"})), now);
        match unmatched.on_timer(later).unwrap().unwrap_err() {
            Error::Unanswered { said, .. } => assert_eq!(said.as_deref(), Some("blah")),
            other => panic!("{other:?}"),
        }
        let mut late_speech = ReplyCollector::new("r", None, Duration::ZERO, EMPTY_REPLY_WAIT);
        late_speech.feed(event(EVENT_INTENT_FAILURE, json!({})), now);
        assert_eq!(
            late_speech.feed(event(EVENT_SPEAK, json!({"utterance": "Fallback."})), now).unwrap().unwrap().text,
            "Fallback."
        );
        let mut denied = ReplyCollector::new("r", None, Duration::ZERO, EMPTY_REPLY_WAIT);
        let data = json!({"denied_type": "recognizer_loop:utterance", "code": "intent_quota_exceeded", "reason": "Quota", "data": {"period": "daily", "limit": 5, "used": 5.0, "reset_after": 60}});
        match denied.feed(event(EVENT_POLICY_DENIED, data), now).unwrap().unwrap_err() {
            Error::PolicyDenied(denial) => {
                assert_eq!(denial.code.as_deref(), Some("intent_quota_exceeded"));
                assert_eq!(denial.quota.unwrap()["used"], 5);
            }
            other => panic!("{other:?}"),
        }
        let mut timeout = ReplyCollector::new("r", None, Duration::ZERO, EMPTY_REPLY_WAIT);
        timeout.feed(event(EVENT_QUERY_TIMEOUT, json!({"reason": "slow"})), now);
        let mut nothing = ReplyCollector::new("r", None, Duration::ZERO, EMPTY_REPLY_WAIT);
        assert!(nothing.on_deadline(Duration::from_secs(12)).unwrap_err().is_timeout());
    }
}
