//! Outgoing bus messages: ids, the runtime context (spec 6.1) and utterance contexts (6.2).
//! Pure functions over JSON objects, so the rules are testable without a hub.

use serde_json::{Map, Value};

use crate::control::random_hex;

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

fn usable_sid(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty() && *s != "default")
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
    with_runtime_context(context.cloned().unwrap_or_default(), useragent, connection_sid, site_id, identity_metadata)
}

/// [`runtime_context`] applied to a context the caller owns (nothing is copied).
pub fn with_runtime_context(
    mut context: Map<String, Value>,
    useragent: &str,
    connection_sid: &str,
    site_id: &str,
    identity_metadata: &Map<String, Value>,
) -> Map<String, Value> {
    for (key, value) in [("source", useragent), ("platform", useragent), ("destination", DEFAULT_DESTINATION)] {
        context.entry(key).or_insert_with(|| Value::String(value.to_string()));
    }
    let outer_sid = usable_sid(context.get("session_id")).map(str::to_string);
    // updated in its place: a missing session is added at the end, any other value replaced
    let slot = context.entry("session").or_insert(Value::Null);
    let mut session = match std::mem::take(slot) {
        Value::Object(session) => session,
        _ => Map::new(),
    };
    if usable_sid(session.get("session_id")).is_none() {
        session.insert("session_id".into(), Value::String(outer_sid.unwrap_or_else(|| connection_sid.to_string())));
    }
    if !session.get("site_id").is_some_and(crate::events::truthy) {
        session.insert("site_id".into(), Value::String(site_id.to_string()));
    }
    *slot = Value::Object(session);
    if !identity_metadata.is_empty() {
        let mut merged = identity_metadata.clone();
        if let Some(caller) = context.get("metadata").and_then(Value::as_object) {
            merged.extend(caller.clone());
        }
        context.insert("metadata".into(), Value::Object(merged));
    }
    context
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
    let mut data = Map::new();
    data.insert("utterances".into(), Value::Array(vec![Value::String(text.trim().to_string())]));
    data.insert("lang".into(), Value::String(lang.to_string()));
    let mut ctx = context.cloned().unwrap_or_default();
    let explicit = session_id
        .map(str::to_string)
        .or_else(|| ctx.get("session_id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string));
    // updated in its place: a missing session is added at the end, any other value replaced
    let slot = ctx.entry("session").or_insert(Value::Null);
    let mut session = match std::mem::take(slot) {
        Value::Object(session) => session,
        _ => Map::new(),
    };
    if let Some(sid) = explicit {
        session.insert("session_id".into(), Value::String(sid));
    }
    if !session.get("site_id").is_some_and(crate::events::truthy) {
        session.insert("site_id".into(), Value::String(site_id.to_string()));
    }
    session.entry("lang").or_insert_with(|| Value::String(lang.to_string()));
    session.insert("request_id".into(), Value::String(rid.clone()));
    for (key, value) in carried.into_iter().flatten() {
        session.entry(key.clone()).or_insert_with(|| value.clone());
    }
    *slot = Value::Object(session);
    ctx.insert("request_id".into(), Value::String(rid.clone()));
    ctx.insert("thalovant_request_id".into(), Value::String(rid.clone()));
    (rid, data, ctx)
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
