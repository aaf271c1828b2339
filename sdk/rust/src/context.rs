//! Caller context for bus messages (dataplane.md 6.1): who the user is, where the request
//! comes from, locale, device, trace metadata and the session. The transport adds its own keys
//! (`source`, `platform`, `destination`, `session`) only where these are missing.

use serde_json::{Map, Value};

/// The fields [`build_client_context`] sets; `None` changes nothing.
#[derive(Debug, Clone, Default)]
pub struct ClientContextOptions {
    /// `user.id` and `user_id`.
    pub user_id: Option<String>,
    /// `user.name` and `user_name`.
    pub user_name: Option<String>,
    /// `user.roles` and `roles`.
    pub roles: Option<Vec<String>>,
    /// `auth.token` and `auth_token`.
    pub auth_token: Option<String>,
    /// `auth.provider`.
    pub auth_provider: Option<String>,
    /// `auth.claims`.
    pub auth_claims: Option<Map<String, Value>>,
    /// `source`.
    pub source: Option<String>,
    /// `destination`.
    pub destination: Option<String>,
    /// `platform` (and the device platform when a device id is given).
    pub platform: Option<String>,
    /// `locale`.
    pub locale: Option<String>,
    /// `channel`.
    pub channel: Option<String>,
    /// `device.id`.
    pub device_id: Option<String>,
    /// `device.platform`.
    pub device_platform: Option<String>,
    /// Merged into `metadata` (the new keys win).
    pub metadata: Option<Map<String, Value>>,
    /// `session_id` and `session.session_id`.
    pub session_id: Option<String>,
    /// Any other keys, set as given.
    pub extra: Option<Map<String, Value>>,
}

fn merge_into(target: &mut Map<String, Value>, key: &str, values: Map<String, Value>) {
    if values.is_empty() {
        return;
    }
    let mut merged = target.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
    merged.extend(values);
    target.insert(key.into(), Value::Object(merged));
}

fn pairs<const N: usize>(items: [(&str, Option<Value>); N]) -> Map<String, Value> {
    items.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect()
}

/// A context object: a copy of `base` with the given fields set. Contexts compose:
/// `build_client_context(Some(&build_client_context(None, a)), b)`.
pub fn build_client_context(base: Option<&Map<String, Value>>, options: ClientContextOptions) -> Map<String, Value> {
    let mut context = base.cloned().unwrap_or_default();
    let text = |v: &Option<String>| v.clone().map(Value::String);
    let roles = options.roles.clone().map(|r| Value::Array(r.into_iter().map(Value::String).collect()));

    merge_into(
        &mut context,
        "user",
        pairs([("id", text(&options.user_id)), ("name", text(&options.user_name)), ("roles", roles.clone())]),
    );
    for (key, value) in [("user_id", text(&options.user_id)), ("user_name", text(&options.user_name)), ("roles", roles)]
    {
        if let Some(value) = value {
            context.insert(key.into(), value);
        }
    }
    merge_into(
        &mut context,
        "auth",
        pairs([
            ("token", text(&options.auth_token)),
            ("provider", text(&options.auth_provider)),
            ("claims", options.auth_claims.clone().map(Value::Object)),
        ]),
    );
    if let Some(token) = text(&options.auth_token) {
        context.insert("auth_token".into(), token);
    }
    for (key, value) in [
        ("platform", &options.platform),
        ("source", &options.source),
        ("destination", &options.destination),
        ("channel", &options.channel),
        ("locale", &options.locale),
    ] {
        if let Some(value) = value {
            context.insert(key.into(), Value::String(value.clone()));
        }
    }
    let device_platform =
        options.device_platform.clone().or_else(|| options.device_id.as_ref().and(options.platform.clone()));
    merge_into(
        &mut context,
        "device",
        pairs([("id", text(&options.device_id)), ("platform", device_platform.map(Value::String))]),
    );
    if let Some(metadata) = options.metadata {
        merge_into(&mut context, "metadata", metadata);
    }
    if let Some(session_id) = options.session_id {
        context.insert("session_id".into(), Value::String(session_id.clone()));
        merge_into(&mut context, "session", pairs([("session_id", Some(Value::String(session_id)))]));
    }
    if let Some(extra) = options.extra {
        context.extend(extra);
    }
    context
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_guides_context_and_composition() {
        let mut metadata = Map::new();
        metadata.insert("trace_id".into(), json!("req-1"));
        let context = build_client_context(
            None,
            ClientContextOptions {
                user_id: Some("user-42".into()),
                user_name: Some("Ada".into()),
                platform: Some("kiosk".into()),
                device_id: Some("d1".into()),
                metadata: Some(metadata),
                session_id: Some("s1".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            Value::Object(context.clone()),
            json!({
                "user": {"id": "user-42", "name": "Ada"}, "user_id": "user-42", "user_name": "Ada",
                "platform": "kiosk", "device": {"id": "d1", "platform": "kiosk"},
                "metadata": {"trace_id": "req-1"}, "session_id": "s1", "session": {"session_id": "s1"},
            })
        );
        let more = build_client_context(
            Some(&context),
            ClientContextOptions {
                locale: Some("en-US".into()),
                roles: Some(vec!["admin".into()]),
                ..Default::default()
            },
        );
        assert_eq!(more["user"], json!({"id": "user-42", "name": "Ada", "roles": ["admin"]}));
        assert_eq!(more["locale"], "en-US");
    }
}
