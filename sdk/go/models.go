package thalovant

import (
	"fmt"
	"strings"
)

// Reply is the answer to one Ask. Text is the spoken answer (its sentences joined by a
// space); Events every correlated event in arrival order; MediaEvents the speech and sound
// events in order; Handled is true when the hub finished the request without a failure.
type Reply struct {
	Text         string
	RequestID    string
	SessionID    string
	Lang         string
	Handled      bool
	Events       []Event
	Fragments    []string
	MediaEvents  []Event
	FailureEvent *Event
	DroppedMedia int
	PipelineIDs  []string
	SkillIDs     []string
	Claimed      bool
}

const claimedMetaKey = "thalovant_claimed"

func stringsInOrder(events []Event, key string) []string {
	var seen []string
	for _, event := range events {
		if value := nonEmpty(event.Context[key]); value != "" && !containsString(seen, value) {
			seen = append(seen, value)
		}
	}
	return seen
}

func containsString(list []string, value string) bool {
	for _, item := range list {
		if item == value {
			return true
		}
	}
	return false
}

// newReply derives SessionID, Lang, PipelineIDs, SkillIDs and Claimed from the events.
func newReply(r Reply) *Reply {
	if len(r.Events) > 0 {
		if sid := r.Events[0].SessionID(); sid != "" {
			r.SessionID = sid
		}
		r.Lang = r.Events[0].Lang()
	}
	r.PipelineIDs = stringsInOrder(r.Events, "pipeline_id")
	r.SkillIDs = stringsInOrder(r.Events, "skill_id")
	r.Claimed = claimed(r.Events, r.PipelineIDs, r.FailureEvent != nil)
	return &r
}

func claimed(events []Event, pipelineIDs []string, failed bool) bool {
	if failed {
		return false
	}
	for _, event := range events {
		if meta, ok := event.Data["meta"].(map[string]any); ok && isSpeech(event.Name) && meta[claimedMetaKey] == true {
			return true
		}
	}
	if len(pipelineIDs) == 0 {
		return true
	}
	for _, pipeline := range pipelineIDs {
		if !strings.Contains(pipeline, "fallback") {
			return true
		}
	}
	return false
}

func isSpeech(name string) bool { return name == EventSpeak || name == EventOVOSUtteranceSpeak }

// DisplayItems are the reply's rich items (tables, attachments, choices, images) in arrival
// order, at most maxItems of them (maxItems <= 0: all); the spoken text is Text.
func (r *Reply) DisplayItems(maxItems int) []DisplayItem {
	items := []DisplayItem{}
	for _, event := range r.Events {
		items = append(items, displayItemsFrom(event.Name, event.Data, false)...)
	}
	if maxItems > 0 && len(items) > maxItems {
		items = items[:maxItems]
	}
	return items
}

// String is the reply text.
func (r *Reply) String() string { return r.Text }

// Health is the link state of a runtime client; OK when connected, handshaken, the transport
// alive and no error recorded.
type Health struct {
	Connected         bool
	HandshakeComplete bool
	TransportAlive    bool
	LastError         string
	Protocol          HubProtocol
	Endpoint          string
	NoisePattern      string
}

// OK reports a healthy link.
func (h Health) OK() bool {
	return h.Connected && h.HandshakeComplete && h.TransportAlive && h.LastError == ""
}

// String is one readable line, e.g. "health: ok protocol=wss connected=true ...".
func (h Health) String() string {
	state := "NOT OK"
	if h.OK() {
		state = "ok"
	}
	parts := []string{
		"health: " + state, "protocol=" + string(h.Protocol),
		fmt.Sprintf("connected=%t", h.Connected), fmt.Sprintf("handshake_complete=%t", h.HandshakeComplete),
		fmt.Sprintf("transport_alive=%t", h.TransportAlive),
	}
	if h.NoisePattern != "" {
		parts = append(parts, "noise="+h.NoisePattern)
	}
	if h.Endpoint != "" {
		parts = append(parts, "endpoint="+h.Endpoint)
	}
	if h.LastError != "" {
		parts = append(parts, "last_error="+h.LastError)
	}
	return strings.Join(parts, " ")
}
