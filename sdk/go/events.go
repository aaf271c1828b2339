package thalovant

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Event names (dataplane.md 8).
const (
	EventRecognizerLoopUtterance = "recognizer_loop:utterance"
	EventSpeak                   = "speak"
	EventOVOSUtteranceSpeak      = "ovos.utterance.speak"
	EventUtteranceHandled        = "ovos.utterance.handled"
	EventIntentFailure           = "complete_intent_failure"
	EventIntentUnmatched         = "ovos.intent.unmatched"
	EventPolicyDenied            = "hive.policy.denied"
	EventQueryTimeout            = "hive.query.timeout"
	EventAudioQueue              = "mycroft.audio.queue"
	EventIntentList              = "ovos.intent.list"
	EventIntentListResponse      = "ovos.intent.list.response"
)

// ConversationSessionFields are the session fields a conversation carries from one turn's
// ovos.utterance.handled to the next (dataplane.md 6.6).
var ConversationSessionFields = []string{
	"converse_handlers", "active_handlers", "active_skills", "context", "utterance_states", "response_mode",
}

var failureEvents = map[string]bool{
	EventIntentFailure: true, EventIntentUnmatched: true, EventPolicyDenied: true, EventQueryTimeout: true,
}

// Event is a bus event from the hub: Name (the bus type), Data and Context.
type Event struct {
	Name    string         `json:"name"`
	Data    map[string]any `json:"data"`
	Context map[string]any `json:"context"`
}

func nonEmpty(value any) string {
	s, _ := value.(string)
	return s
}

func mapping(value any) map[string]any {
	m, _ := value.(map[string]any)
	return m
}

func eventText(data map[string]any) string {
	for _, key := range []string{"utterance", "text"} {
		if s := nonEmpty(data[key]); s != "" {
			return s
		}
	}
	if list, ok := data["utterances"].([]any); ok && len(list) > 0 {
		return nonEmpty(list[0])
	}
	return ""
}

// Text is data.utterance, else data.text, else the first of data.utterances ("" if none).
func (e Event) Text() string { return eventText(e.Data) }

// RequestID is the request id in the order of dataplane.md 6.3: the context, its session,
// then the data; each place tries request_id, thalovant_request_id, correlation_id.
func (e Event) RequestID() string { return requestIDOf(e.Data, e.Context) }

func requestIDOf(data, context map[string]any) string {
	for _, place := range []map[string]any{context, mapping(context["session"]), data} {
		for _, key := range []string{"request_id", "thalovant_request_id", "correlation_id"} {
			if s := nonEmpty(place[key]); s != "" {
				return s
			}
		}
	}
	return ""
}

// SessionID is context.session.session_id, else context.session_id.
func (e Event) SessionID() string {
	if s := nonEmpty(mapping(e.Context["session"])["session_id"]); s != "" {
		return s
	}
	return nonEmpty(e.Context["session_id"])
}

// SiteID is context.session.site_id, else context.site_id.
func (e Event) SiteID() string {
	if s := nonEmpty(mapping(e.Context["session"])["site_id"]); s != "" {
		return s
	}
	return nonEmpty(e.Context["site_id"])
}

// Lang is data.lang, context.lang or context.session.lang.
func (e Event) Lang() string {
	for _, value := range []any{e.Data["lang"], e.Context["lang"], mapping(e.Context["session"])["lang"]} {
		if s := nonEmpty(value); s != "" {
			return s
		}
	}
	return ""
}

// IsFailure is true for the failure events (intent failure, unmatched, denial, query timeout).
func (e Event) IsFailure() bool { return failureEvents[e.Name] }

// DisplayItems are the event's display items: its text, then tables, attachments, choices,
// images.
func (e Event) DisplayItems() []DisplayItem { return displayItemsFrom(e.Name, e.Data, true) }

// String is "name: text" (or the name alone).
func (e Event) String() string {
	if text := e.Text(); text != "" {
		return e.Name + ": " + text
	}
	return e.Name
}

// DisplayItem is one thing a UI can show: Kind is text, table, attachment, image or choices.
type DisplayItem struct {
	Kind    string           `json:"kind"`
	Text    string           `json:"text,omitempty"`
	Title   string           `json:"title,omitempty"`
	URL     string           `json:"url,omitempty"`
	Silent  bool             `json:"silent,omitempty"`
	Table   any              `json:"table,omitempty"`
	Choices []map[string]any `json:"choices,omitempty"`
	Data    map[string]any   `json:"data,omitempty"`
}

// String is a short readable line.
func (d DisplayItem) String() string {
	switch d.Kind {
	case "text":
		return d.Text
	case "choices":
		labels := make([]string, len(d.Choices))
		for i, choice := range d.Choices {
			labels[i] = nonEmpty(choice["title"])
		}
		return "[choices] " + strings.Join(labels, ", ")
	case "table":
		return strings.TrimRight("[table] "+d.Title, " ")
	}
	var parts []string
	for _, part := range []string{d.Title, d.URL} {
		if part != "" {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return "[" + d.Kind + "]"
	}
	return "[" + d.Kind + "] " + strings.Join(parts, " ")
}

var tagPattern = regexp.MustCompile(`<[^<>]*>`)

func parseRich(value any) map[string]any {
	switch v := value.(type) {
	case map[string]any:
		return v
	case string:
		if strings.TrimSpace(v) == "" {
			return nil
		}
		var parsed map[string]any
		if json.Unmarshal([]byte(v), &parsed) == nil {
			return parsed
		}
	}
	return nil
}

func isBlank(value any) bool {
	switch v := value.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// richMediaOf is an event's rich media: rich_media_data, rich_media or display (an object
// or a JSON string), else the direct keys; nil when there is none.
func richMediaOf(data map[string]any) map[string]any {
	for _, key := range []string{"rich_media_data", "rich_media", "display"} {
		if found := parseRich(data[key]); found != nil {
			return found
		}
	}
	direct := map[string]any{}
	for _, key := range []string{"table", "attachment", "attachments", "quick_replies", "buttons", "image", "images"} {
		if !isBlank(data[key]) {
			direct[key] = data[key]
		}
	}
	if len(direct) == 0 {
		return nil
	}
	return direct
}

func urlOf(entry map[string]any) string {
	payload := mapping(entry["payload"])
	for _, value := range []any{payload["src"], payload["url"], entry["src"], entry["url"]} {
		if s := nonEmpty(value); s != "" {
			return s
		}
	}
	return ""
}

func richItems(rich map[string]any) []DisplayItem {
	var items []DisplayItem
	if table := rich["table"]; !isBlank(table) {
		items = append(items, DisplayItem{Kind: "table", Title: nonEmpty(mapping(table)["title"]), Table: table})
	}
	var attachments []any
	if single, ok := rich["attachment"].(map[string]any); ok {
		attachments = append(attachments, single)
	}
	if list, ok := rich["attachments"].([]any); ok {
		attachments = append(attachments, list...)
	}
	for _, raw := range attachments {
		entry, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		item := DisplayItem{Kind: "attachment", Title: nonEmpty(entry["title"]), URL: urlOf(entry)}
		if kind, ok := entry["type"].(string); ok {
			item.Data = map[string]any{"type": kind}
			if kind == "image" {
				item.Kind = "image"
			}
		}
		items = append(items, item)
	}
	var choices []map[string]any
	for _, key := range []string{"quick_replies", "buttons"} {
		entries, _ := rich[key].([]any)
		for _, raw := range entries {
			switch entry := raw.(type) {
			case string:
				if entry != "" {
					choices = append(choices, map[string]any{"title": entry, "payload": entry})
				}
			case map[string]any:
				var title, payload any
				for _, k := range []string{"title", "label", "text"} {
					if nonEmpty(entry[k]) != "" {
						title = entry[k]
						break
					}
				}
				payload = title
				for _, k := range []string{"payload", "value"} {
					if entry[k] != nil {
						payload = entry[k]
						break
					}
				}
				if title != nil || payload != nil {
					choices = append(choices, map[string]any{"title": title, "payload": payload})
				}
			}
		}
	}
	if len(choices) > 0 {
		items = append(items, DisplayItem{Kind: "choices", Choices: choices})
	}
	var images []any
	if !isBlank(rich["image"]) {
		images = append(images, rich["image"])
	}
	if list, ok := rich["images"].([]any); ok {
		images = append(images, list...)
	}
	for _, raw := range images {
		switch image := raw.(type) {
		case string:
			if image != "" {
				items = append(items, DisplayItem{Kind: "image", URL: image})
			}
		case map[string]any:
			if u := urlOf(image); u != "" {
				items = append(items, DisplayItem{Kind: "image", URL: u, Title: nonEmpty(image["title"])})
			}
		}
	}
	return items
}

func displayItemsFrom(name string, data map[string]any, includeText bool) []DisplayItem {
	var items []DisplayItem
	if includeText {
		if raw := eventText(data); raw != "" {
			text := strings.Join(strings.Fields(tagPattern.ReplaceAllString(raw, " ")), " ")
			if text != "" {
				silent, _ := data["silent"].(bool)
				items = append(items, DisplayItem{Kind: "text", Text: text, Silent: silent || name == "write"})
			}
		}
	}
	if rich := richMediaOf(data); rich != nil {
		items = append(items, richItems(rich)...)
	}
	return items
}
