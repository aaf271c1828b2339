//! Event names, constants and [`Event`], the bus event the client delivers (dataplane.md 7.2,
//! 8), with the request-id order and the display-item rules of section 6.3.

use std::fmt;

use serde_json::{Map, Value};

/// `recognizer_loop:utterance`
pub const EVENT_RECOGNIZER_LOOP_UTTERANCE: &str = "recognizer_loop:utterance";
/// `speak`
pub const EVENT_SPEAK: &str = "speak";
/// `ovos.utterance.speak`
pub const EVENT_OVOS_UTTERANCE_SPEAK: &str = "ovos.utterance.speak";
/// `ovos.utterance.handled`
pub const EVENT_UTTERANCE_HANDLED: &str = "ovos.utterance.handled";
/// `complete_intent_failure`
pub const EVENT_INTENT_FAILURE: &str = "complete_intent_failure";
/// `ovos.intent.unmatched`
pub const EVENT_INTENT_UNMATCHED: &str = "ovos.intent.unmatched";
/// `hive.policy.denied`
pub const EVENT_POLICY_DENIED: &str = "hive.policy.denied";
/// `hive.query.timeout`
pub const EVENT_QUERY_TIMEOUT: &str = "hive.query.timeout";
/// `mycroft.audio.queue`
pub const EVENT_AUDIO_QUEUE: &str = "mycroft.audio.queue";
/// `ovos.intent.list`
pub const EVENT_INTENT_LIST: &str = "ovos.intent.list";
/// `ovos.intent.list.response`
pub const EVENT_INTENT_LIST_RESPONSE: &str = "ovos.intent.list.response";
/// `ovos.intent.describe`
pub const EVENT_INTENT_DESCRIBE: &str = "ovos.intent.describe";
/// `ovos.intent.describe.response`
pub const EVENT_INTENT_DESCRIBE_RESPONSE: &str = "ovos.intent.describe.response";
/// The five mesh kinds.
pub const HIVE_KINDS: [&str; 5] = ["broadcast", "propagate", "escalate", "intercom", "rendezvous"];
/// `thalovant.home.request`
pub const HOME_REQUEST: &str = "thalovant.home.request";
/// `thalovant.home.response`
pub const HOME_RESPONSE: &str = "thalovant.home.response";
/// The speak `meta` key that asserts a claimed reply.
pub const THALOVANT_CLAIMED_META_KEY: &str = "thalovant_claimed";
/// The failure events.
pub const FAILURE_EVENTS: [&str; 4] =
    [EVENT_INTENT_FAILURE, EVENT_INTENT_UNMATCHED, EVENT_POLICY_DENIED, EVENT_QUERY_TIMEOUT];

const REQUEST_ID_KEYS: [&str; 3] = ["request_id", "thalovant_request_id", "correlation_id"];
const RICH_KEYS: [&str; 3] = ["rich_media_data", "rich_media", "display"];
const DIRECT_RICH_KEYS: [&str; 7] =
    ["table", "attachment", "attachments", "quick_replies", "buttons", "image", "images"];

fn nonempty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The request id of an event: the context, then its `session`, then the data; each place
/// tries `request_id`, `thalovant_request_id` and `correlation_id`.
pub fn request_id_of<'a>(data: &'a Map<String, Value>, context: &'a Map<String, Value>) -> Option<&'a str> {
    let session = context.get("session").and_then(Value::as_object);
    [Some(context), session, Some(data)]
        .into_iter()
        .flatten()
        .find_map(|place| REQUEST_ID_KEYS.iter().find_map(|k| nonempty(place.get(*k))))
}

fn event_text(data: &Map<String, Value>) -> Option<&str> {
    nonempty(data.get("utterance"))
        .or_else(|| nonempty(data.get("text")))
        .or_else(|| data.get("utterances")?.as_array()?.first()?.as_str())
}

/// One thing a UI can show: `kind` is `text`, `table`, `attachment`, `image` or `choices`.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayItem {
    /// What the item is.
    pub kind: String,
    /// Text (text items).
    pub text: Option<String>,
    /// A title.
    pub title: Option<String>,
    /// A URL (images, attachments).
    pub url: Option<String>,
    /// The text is not meant to be spoken.
    pub silent: bool,
    /// The table object.
    pub table: Option<Value>,
    /// `{title, payload}` choices.
    pub choices: Vec<Value>,
    /// Extra data (`type` of an attachment).
    pub data: Map<String, Value>,
}

impl DisplayItem {
    fn new(kind: &str) -> Self {
        Self {
            kind: kind.into(),
            text: None,
            title: None,
            url: None,
            silent: false,
            table: None,
            choices: Vec::new(),
            data: Map::new(),
        }
    }

    /// The item as a JSON object with only the fields that are set.
    pub fn as_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("kind".into(), Value::String(self.kind.clone()));
        for (key, value) in [("text", &self.text), ("title", &self.title), ("url", &self.url)] {
            if let Some(value) = value {
                map.insert(key.into(), Value::String(value.clone()));
            }
        }
        if self.silent {
            map.insert("silent".into(), Value::Bool(true));
        }
        if let Some(table) = &self.table {
            map.insert("table".into(), table.clone());
        }
        if !self.choices.is_empty() {
            map.insert("choices".into(), Value::Array(self.choices.clone()));
        }
        if !self.data.is_empty() {
            map.insert("data".into(), Value::Object(self.data.clone()));
        }
        Value::Object(map)
    }
}

impl fmt::Display for DisplayItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.as_str() {
            "text" => f.write_str(self.text.as_deref().unwrap_or_default()),
            "choices" => {
                let labels: Vec<String> = self
                    .choices
                    .iter()
                    .map(|c| {
                        c.get("title")
                            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string))
                            .unwrap_or_default()
                    })
                    .collect();
                write!(f, "[choices] {}", labels.join(", "))
            }
            "table" => write!(f, "[table] {}", self.title.as_deref().unwrap_or_default()),
            kind => {
                let parts: Vec<&str> = [self.title.as_deref(), self.url.as_deref()].into_iter().flatten().collect();
                if parts.is_empty() { write!(f, "[{kind}]") } else { write!(f, "[{kind}] {}", parts.join(" ")) }
            }
        }
    }
}

fn parse_rich(value: Option<&Value>) -> Option<Map<String, Value>> {
    match value? {
        Value::Object(map) => Some(map.clone()),
        Value::String(text) if !text.trim().is_empty() => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        },
        _ => None,
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The rich media of an event's data (dataplane.md 6.3), or None.
pub fn rich_media_of(data: &Map<String, Value>) -> Option<Map<String, Value>> {
    if let Some(found) = RICH_KEYS.iter().find_map(|k| parse_rich(data.get(*k))) {
        return Some(found);
    }
    let direct: Map<String, Value> = DIRECT_RICH_KEYS
        .iter()
        .filter_map(|k| data.get(*k).filter(|v| !is_blank(v)).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    (!direct.is_empty()).then_some(direct)
}

fn url_of(entry: &Map<String, Value>) -> Option<String> {
    let payload = entry.get("payload").and_then(Value::as_object);
    [payload.and_then(|p| p.get("src")), payload.and_then(|p| p.get("url")), entry.get("src"), entry.get("url")]
        .into_iter()
        .find_map(nonempty)
        .map(str::to_string)
}

fn rich_items(rich: &Map<String, Value>, items: &mut Vec<DisplayItem>) {
    if let Some(table) = rich.get("table").filter(|t| !is_blank(t)) {
        let mut item = DisplayItem::new("table");
        item.title = table.as_object().and_then(|t| nonempty(t.get("title"))).map(str::to_string);
        item.table = Some(table.clone());
        items.push(item);
    }
    let mut attachments: Vec<&Value> = Vec::new();
    if let Some(one) = rich.get("attachment").filter(|a| a.is_object()) {
        attachments.push(one);
    }
    if let Some(many) = rich.get("attachments").and_then(Value::as_array) {
        attachments.extend(many);
    }
    for entry in attachments.into_iter().filter_map(Value::as_object) {
        let kind = if entry.get("type").and_then(Value::as_str) == Some("image") { "image" } else { "attachment" };
        let mut item = DisplayItem::new(kind);
        item.title = nonempty(entry.get("title")).map(str::to_string);
        item.url = url_of(entry);
        if let Some(kind) = entry.get("type").filter(|t| t.is_string()) {
            item.data.insert("type".into(), kind.clone());
        }
        items.push(item);
    }
    let mut choices = Vec::new();
    for key in ["quick_replies", "buttons"] {
        for entry in rich.get(key).and_then(Value::as_array).into_iter().flatten() {
            match entry {
                Value::String(s) if !s.is_empty() => choices.push(serde_json::json!({"title": s, "payload": s})),
                Value::Object(map) => {
                    let title = ["title", "label", "text"]
                        .iter()
                        .find_map(|k| nonempty(map.get(*k)))
                        .map(|s| Value::String(s.into()));
                    let payload = ["payload", "value"]
                        .iter()
                        .find_map(|k| map.get(*k).filter(|v| !v.is_null()).cloned())
                        .or_else(|| title.clone());
                    if title.is_some() || payload.is_some() {
                        choices.push(serde_json::json!({"title": title, "payload": payload}));
                    }
                }
                _ => {}
            }
        }
    }
    if !choices.is_empty() {
        let mut item = DisplayItem::new("choices");
        item.choices = choices;
        items.push(item);
    }
    let mut images: Vec<&Value> = Vec::new();
    if let Some(one) = rich.get("image").filter(|i| !matches!(i, Value::Null) && i.as_str() != Some("")) {
        images.push(one);
    }
    if let Some(many) = rich.get("images").and_then(Value::as_array) {
        images.extend(many);
    }
    for image in images {
        match image {
            Value::String(url) if !url.is_empty() => {
                let mut item = DisplayItem::new("image");
                item.url = Some(url.clone());
                items.push(item);
            }
            Value::Object(map) => {
                if let Some(url) = url_of(map) {
                    let mut item = DisplayItem::new("image");
                    item.url = Some(url);
                    item.title = nonempty(map.get("title")).map(str::to_string);
                    items.push(item);
                }
            }
            _ => {}
        }
    }
}

fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        match rest[start + 1..].find(['<', '>']) {
            Some(offset) if rest.as_bytes()[start + 1 + offset] == b'>' => {
                out.push_str(&rest[..start]);
                out.push(' ');
                rest = &rest[start + offset + 2..];
            }
            Some(offset) => {
                out.push_str(&rest[..start + 1 + offset]);
                rest = &rest[start + 1 + offset..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    collapse_whitespace(&out)
}

/// `text`'s words joined by single spaces (no leading or trailing space).
pub(crate) fn collapse_whitespace(text: &str) -> String {
    if is_collapsed(text) {
        return text.to_string();
    }
    let mut collapsed = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(word);
    }
    collapsed
}

/// Whether `text` is its own [`collapse_whitespace`] (a byte scan; any non-ASCII text says no):
/// ASCII without a leading, trailing or repeated space or any other whitespace.
fn is_collapsed(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.first() != Some(&b' ')
        && bytes.last() != Some(&b' ')
        && bytes.iter().all(|b| b.is_ascii() && !matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
        && !bytes.windows(2).any(|pair| pair == b"  ")
}

/// The display items of one event: its text (tags stripped; silent when `data.silent` is set
/// or the event is `write`), then its rich media.
pub fn display_items_from(name: &str, data: &Map<String, Value>, include_text: bool) -> Vec<DisplayItem> {
    let mut items = Vec::new();
    if include_text && let Some(raw) = event_text(data) {
        let text = strip_tags(raw);
        if !text.is_empty() {
            let mut item = DisplayItem::new("text");
            item.text = Some(text);
            item.silent = data.get("silent").is_some_and(truthy) || name == "write";
            items.push(item);
        }
    }
    if let Some(rich) = rich_media_of(data) {
        rich_items(&rich, &mut items);
    }
    items
}

pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A bus event from the hub: `name` (the bus type), `data` and `context`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// The bus type.
    pub name: String,
    /// The event data.
    pub data: Map<String, Value>,
    /// The event context.
    pub context: Map<String, Value>,
}

impl Event {
    /// `data.utterance`, else `data.text`, else the first of `data.utterances`; `""` if none.
    pub fn text(&self) -> &str {
        event_text(&self.data).unwrap_or_default()
    }

    /// Like [`Self::text`], but None when the event carries no text.
    pub fn text_opt(&self) -> Option<&str> {
        event_text(&self.data)
    }

    fn session(&self) -> Option<&Map<String, Value>> {
        self.context.get("session").and_then(Value::as_object)
    }

    /// `context.session.session_id`, else `context.session_id`.
    pub fn session_id(&self) -> Option<&str> {
        self.session().and_then(|s| nonempty(s.get("session_id"))).or_else(|| nonempty(self.context.get("session_id")))
    }

    /// `context.session.site_id`, else `context.site_id`.
    pub fn site_id(&self) -> Option<&str> {
        self.session().and_then(|s| nonempty(s.get("site_id"))).or_else(|| nonempty(self.context.get("site_id")))
    }

    /// The request id (dataplane.md 6.3 order).
    pub fn request_id(&self) -> Option<&str> {
        request_id_of(&self.data, &self.context)
    }

    /// `data.lang`, `context.lang` or `context.session.lang`.
    pub fn lang(&self) -> Option<&str> {
        nonempty(self.data.get("lang"))
            .or_else(|| nonempty(self.context.get("lang")))
            .or_else(|| self.session().and_then(|s| nonempty(s.get("lang"))))
    }

    /// True for the failure events.
    pub fn is_failure(&self) -> bool {
        FAILURE_EVENTS.contains(&self.name.as_str())
    }

    /// The event's rich media object, or None.
    pub fn rich_media(&self) -> Option<Map<String, Value>> {
        rich_media_of(&self.data)
    }

    /// The event's display items: its text, then tables, attachments, choices, images.
    pub fn display_items(&self, include_text: bool) -> Vec<DisplayItem> {
        display_items_from(&self.name, &self.data, include_text)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text_opt() {
            Some(text) => write!(f, "{}: {text}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(data: Value, context: Value) -> Event {
        Event {
            name: "speak".into(),
            data: data.as_object().cloned().unwrap_or_default(),
            context: context.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn accessors_follow_spec_7_2() {
        let e = event(
            json!({"utterances": ["u"], "request_id": "d"}),
            json!({"session": {"thalovant_request_id": "s", "session_id": "sid", "lang": "fr"}}),
        );
        assert_eq!((e.text(), e.request_id(), e.session_id(), e.lang()), ("u", Some("s"), Some("sid"), Some("fr")));
        let e = event(json!({}), json!({"correlation_id": "c"}));
        assert_eq!((e.text(), e.text_opt(), e.request_id()), ("", None, Some("c")));
    }

    #[test]
    fn display_items_read_text_and_rich_media() {
        let data = json!({
            "utterance": "<speak>Hello <b>there</b></speak>",
            "rich_media": "{\"table\": {\"title\": \"T\"}, \"attachments\": [{\"type\": \"image\", \"payload\": {\"src\": \"http://i\"}}], \"quick_replies\": [\"yes\", {\"label\": \"No\", \"value\": 0}]}",
        });
        let items = display_items_from("speak", data.as_object().unwrap(), true);
        let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["text", "table", "image", "choices"]);
        assert_eq!(items[0].text.as_deref(), Some("Hello there"));
        assert_eq!(items[2].url.as_deref(), Some("http://i"));
        assert_eq!(items[3].to_string(), "[choices] yes, No");
        assert!(display_items_from("write", json!({"text": "x"}).as_object().unwrap(), true)[0].silent);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, failure_persistence: None, ..Default::default() })]

        #[test]
        fn whitespace_collapses_to_the_words_joined_by_single_spaces(
            text in "[ a\t\n\u{0B}\u{0C}\r\u{1C}\u{85}\u{A0}\u{2003}\u{3000}é]{0,12}",
        ) {
            let words: Vec<&str> = text.split_whitespace().collect();
            proptest::prop_assert_eq!(collapse_whitespace(&text), words.join(" "));
        }
    }
}
