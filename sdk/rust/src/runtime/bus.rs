//! Outgoing bus messages: ids, the runtime context (spec 6.1) and utterance contexts (6.2).
//! Pure functions over JSON objects, so the rules are testable without a hub.

use serde_json::{Map, Value};

use crate::control::random_hex;
use crate::runtime::overlay::{Overlay, Part};

/// `recognizer_loop:utterance`.
pub const UTTERANCE: &str = "recognizer_loop:utterance";
/// The default `destination`.
pub const DEFAULT_DESTINATION: &str = "HiveMind";
/// The session fields a conversation carries from one turn's `ovos.utterance.handled` to the
/// next (spec 6.6).
pub const CARRIED_SESSION_FIELDS: [&str; 6] =
    ["converse_handlers", "active_handlers", "active_skills", "context", "utterance_states", "response_mode"];

/// A new connection SID: `thalovant-rust-<32 hex>` (never `default`).
pub fn connection_session_id() -> String {
    format!("thalovant-rust-{}", random_hex(16))
}

/// A new request id: `thalovant-request-<32 hex>`, 128 bits from the thread's CSPRNG
/// (`rand::rng()`, seeded and reseeded from the OS), so a request costs no system call.
pub fn new_request_id() -> String {
    format!("thalovant-request-{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A new conversation session id: `thalovant-session-<32 hex>`.
pub fn new_conversation_session_id() -> String {
    format!("thalovant-session-{}", random_hex(16))
}

/// A session id that names a session: a non-empty string other than `default`.
fn usable(sid: Option<&str>) -> Option<&str> {
    sid.filter(|s| !s.is_empty() && *s != "default")
}

fn usable_sid(value: Option<&Value>) -> Option<&str> {
    usable(value.and_then(Value::as_str))
}

/// The context every outgoing bus message gets (spec 6.1); keys are added only when missing.
/// `source` and `platform` default to the user agent, `destination` to `HiveMind`; the session
/// gets the connection SID when it has none (or `default`) and the identity's site id;
/// identity metadata is merged under `metadata`, the caller's keys winning.
pub fn runtime_context(
    context: Option<&Map<String, Value>>,
    useragent: &str,
    connection_sid: &str,
    site_id: &str,
    identity_metadata: &Map<String, Value>,
) -> Map<String, Value> {
    let mut overlay = Overlay::new(context);
    apply_runtime_context(&mut overlay, useragent, connection_sid, site_id, identity_metadata);
    overlay.to_map()
}

/// [`runtime_context`] of a context the caller owns.
pub fn with_runtime_context(
    context: Map<String, Value>,
    useragent: &str,
    connection_sid: &str,
    site_id: &str,
    identity_metadata: &Map<String, Value>,
) -> Map<String, Value> {
    runtime_context(Some(&context), useragent, connection_sid, site_id, identity_metadata)
}

/// The rules of [`runtime_context`], set on `context`.
pub(crate) fn apply_runtime_context<'a>(
    context: &mut Overlay<'a>,
    useragent: &'a str,
    connection_sid: &'a str,
    site_id: &'a str,
    identity_metadata: &'a Map<String, Value>,
) {
    for (key, value) in [("source", useragent), ("platform", useragent), ("destination", DEFAULT_DESTINATION)] {
        context.or_insert(key, Part::Str(value));
    }
    let outer_sid = usable(context.get_str("session_id"));
    // updated in its place: a missing session is added at the end, any other value replaced
    let session = context.object("session");
    if usable(session.get_str("session_id")).is_none() {
        session.insert("session_id", Part::Str(outer_sid.unwrap_or(connection_sid)));
    }
    if !session.truthy("site_id") {
        session.insert("site_id", Part::Str(site_id));
    }
    if !identity_metadata.is_empty() {
        let mut merged = Overlay::new(Some(identity_metadata));
        for (key, value) in context.get_object("metadata").into_iter().flatten() {
            merged.insert(key, Part::Json(value));
        }
        context.insert("metadata", Part::Object(merged));
    }
}

/// `(request_id, data, context)` of a `recognizer_loop:utterance` (spec 6.2), before the
/// runtime context is applied. `carried` holds the conversation fields remembered for this
/// session (spec 6.6); each is copied into the session unless the caller's context sets it.
pub fn utterance_message(
    text: &str,
    lang: &str,
    session_id: Option<&str>,
    request_id: Option<&str>,
    context: Option<&Map<String, Value>>,
    site_id: &str,
    carried: Option<&Map<String, Value>>,
) -> (String, Map<String, Value>, Map<String, Value>) {
    let rid = request_id.map_or_else(new_request_id, str::to_string);
    let utterances = utterances(text);
    let data = utterance_data(&utterances, lang).to_map();
    let ctx = utterance_context(lang, session_id, &rid, context, site_id, carried).to_map();
    (rid, data, ctx)
}

/// The `utterances` of an utterance's data: its text, trimmed.
pub(crate) fn utterances(text: &str) -> [&str; 1] {
    [text.trim()]
}

/// The data of [`utterance_message`]: `{utterances, lang}`.
pub(crate) fn utterance_data<'a>(utterances: &'a [&'a str], lang: &'a str) -> Overlay<'a> {
    let mut data = Overlay::new(None);
    data.insert("utterances", Part::Strs(utterances));
    data.insert("lang", Part::Str(lang));
    data
}

/// The context of [`utterance_message`], over the caller's `context`.
pub(crate) fn utterance_context<'a>(
    lang: &'a str,
    session_id: Option<&'a str>,
    request_id: &'a str,
    context: Option<&'a Map<String, Value>>,
    site_id: &'a str,
    carried: Option<&'a Map<String, Value>>,
) -> Overlay<'a> {
    let mut ctx = Overlay::new(context);
    let explicit = session_id.or_else(|| ctx.get_str("session_id").filter(|s| !s.is_empty()));
    // updated in its place: a missing session is added at the end, any other value replaced
    let session = ctx.object("session");
    if let Some(sid) = explicit {
        session.insert("session_id", Part::Str(sid));
    }
    if !session.truthy("site_id") {
        session.insert("site_id", Part::Str(site_id));
    }
    session.or_insert("lang", Part::Str(lang));
    session.insert("request_id", Part::Str(request_id));
    for (key, value) in carried.into_iter().flatten() {
        session.or_insert(key, Part::Json(value));
    }
    ctx.insert("request_id", Part::Str(request_id));
    ctx.insert("thalovant_request_id", Part::Str(request_id));
    ctx
}

/// The truthy conversation fields of a handled event's session (spec 6.6).
pub fn carried_fields(session: &Map<String, Value>) -> Map<String, Value> {
    CARRIED_SESSION_FIELDS
        .iter()
        .filter_map(|k| session.get(*k).filter(|v| crate::events::truthy(v)).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// The session id a caller's context names (`session.session_id`, else `session_id`), never
/// `default`.
pub fn context_session_id(context: Option<&Map<String, Value>>) -> Option<String> {
    let context = context?;
    context
        .get("session")
        .and_then(Value::as_object)
        .and_then(|s| usable_sid(s.get("session_id")))
        .or_else(|| usable_sid(context.get("session_id")))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn utterance_context_carries_ids_session_and_conversation_state() {
        let carried = map(json!({"active_skills": ["memory"], "lang": "xx"}));
        let caller = map(json!({"session": {"active_skills": ["mine"]}}));
        let (rid, data, ctx) =
            utterance_message(" hello ", "en-us", Some("sess-1"), Some("req-1"), Some(&caller), "site", Some(&carried));
        assert_eq!(rid, "req-1");
        assert_eq!(data["utterances"], json!(["hello"]));
        assert_eq!(ctx["request_id"], "req-1");
        assert_eq!(ctx["thalovant_request_id"], "req-1");
        let session = &ctx["session"];
        assert_eq!(session["session_id"], "sess-1");
        assert_eq!(session["request_id"], "req-1");
        assert_eq!(session["site_id"], "site");
        assert_eq!(session["lang"], "en-us");
        assert_eq!(session["active_skills"], json!(["mine"]), "the caller's own field wins");
        let ctx = runtime_context(Some(&ctx), "UA/1", "conn-sid", "site", &map(json!({"zone": "a", "trace": "id"})));
        assert_eq!(
            (ctx["source"].as_str(), ctx["platform"].as_str(), ctx["destination"].as_str()),
            (Some("UA/1"), Some("UA/1"), Some("HiveMind"))
        );
        assert_eq!(ctx["session"]["session_id"], "sess-1");
        let plain = runtime_context(
            Some(&map(json!({"session": {"session_id": "default"}, "metadata": {"trace": "mine"}}))),
            "UA",
            "conn",
            "s",
            &map(json!({"trace": "id"})),
        );
        assert_eq!(plain["session"]["session_id"], "conn");
        assert_eq!(plain["metadata"]["trace"], "mine");
        assert!(new_request_id().starts_with("thalovant-request-") && connection_session_id() != "default");
    }

    #[test]
    fn the_runtime_context_keeps_the_callers_key_order_and_replaces_a_session_that_is_no_object() {
        let metadata = map(json!({"zone": "a"}));
        for caller in [
            json!({}),
            json!({"session": "not an object", "z": 1, "source": "mine"}),
            json!({"a": 1, "session": {"lang": "xx", "session_id": "default"}, "session_id": "outer", "metadata": {"m": 1}}),
            json!({"session": {"site_id": "", "session_id": "s"}, "destination": "there"}),
        ] {
            let caller = map(caller);
            let owned = with_runtime_context(caller.clone(), "UA", "conn", "site", &metadata);
            let copied = runtime_context(Some(&caller), "UA", "conn", "site", &metadata);
            assert_eq!(serde_json::to_string(&owned).unwrap(), serde_json::to_string(&copied).unwrap());
            let keys: Vec<_> = owned.keys().filter(|k| caller.contains_key(*k)).collect();
            assert_eq!(keys, caller.keys().collect::<Vec<_>>(), "the caller's keys stay in their order");
            assert!(owned["session"].is_object());
        }
        let ctx = with_runtime_context(map(json!({"session": 5, "x": 1})), "UA", "conn", "site", &Map::new());
        assert_eq!(serde_json::to_string(&ctx["session"]).unwrap(), r#"{"session_id":"conn","site_id":"site"}"#);
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["session", "x", "source", "platform", "destination"]);
    }

    #[test]
    fn only_truthy_conversation_fields_are_carried() {
        let session =
            map(json!({"active_skills": ["a"], "context": {}, "lang": "en", "session_id": "s", "response_mode": "x"}));
        assert_eq!(Value::Object(carried_fields(&session)), json!({"active_skills": ["a"], "response_mode": "x"}));
    }
}
