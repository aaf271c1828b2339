package protocol

import "unicode/utf8"

// MessageTypes maps WIRE-1 message type numbers to names (spec 5.1).
var MessageTypes = map[int]string{
	0: "shake", 1: "bus", 2: "shared_bus", 3: "broadcast", 4: "propagate", 5: "escalate",
	6: "hello", 7: "query", 8: "cascade", 9: "ping", 10: "rendezvous", 11: "3rdparty", 12: "bin",
}

// MessageTypeName is the type of a wire number; unknown numbers read as 3rdparty.
func MessageTypeName(number int) string {
	if name, ok := MessageTypes[number]; ok {
		return name
	}
	return "3rdparty"
}

// MessageTypeNumber is the wire number of a type (handshake is shake); false for intercom and
// unknown names.
func MessageTypeNumber(name string) (int, bool) {
	if name == "handshake" {
		return 0, true
	}
	for number, known := range MessageTypes {
		if known == name {
			return number, true
		}
	}
	return 0, false
}

var nestedTypes = map[string]bool{
	"broadcast": true, "propagate": true, "escalate": true, "intercom": true,
	"rendezvous": true, "query": true, "cascade": true, "shared_bus": true,
}

// BusMessage is an OVOS bus message.
type BusMessage struct {
	Type    string
	Data    map[string]any
	Context map[string]any
}

// BusMessageFrom reads a bus message leniently: a missing type is "", non-object data or
// context is empty.
func BusMessageFrom(value any) BusMessage {
	obj, _ := value.(map[string]any)
	kind, _ := obj["type"].(string)
	data, _ := obj["data"].(map[string]any)
	context, _ := obj["context"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	if context == nil {
		context = map[string]any{}
	}
	return BusMessage{Type: kind, Data: data, Context: context}
}

// HiveMessage is one HiveMind envelope with its eight fields (spec 5.1).
type HiveMessage struct {
	MsgType      string
	Payload      map[string]any
	Metadata     map[string]any
	Route        []any
	Node         any
	TargetSiteID any
	TargetPubkey any
	SourcePeer   any
}

// BusEnvelope is a bus envelope carrying {type, data, context}.
func BusEnvelope(kind string, data, context map[string]any) HiveMessage {
	if data == nil {
		data = map[string]any{}
	}
	if context == nil {
		context = map[string]any{}
	}
	return HiveMessage{MsgType: "bus", Payload: map[string]any{"type": kind, "data": data, "context": context}}
}

// Bus reads the payload as a bus message.
func (m HiveMessage) Bus() BusMessage { return BusMessageFrom(m.Payload) }

// Inner is the nested envelope of a nesting kind whose payload has a string msg_type.
func (m HiveMessage) Inner() (HiveMessage, bool) {
	if !nestedTypes[m.MsgType] {
		return HiveMessage{}, false
	}
	inner, err := EnvelopeFromObject(m.Payload)
	return inner, err == nil
}

// withDefaults fills the object fields left nil with {} and the route with [].
func (m HiveMessage) withDefaults() HiveMessage {
	if m.Payload == nil {
		m.Payload = map[string]any{}
	}
	if m.Metadata == nil {
		m.Metadata = map[string]any{}
	}
	if m.Route == nil {
		m.Route = []any{}
	}
	return m
}

// MarshalJSON writes all eight fields (null, {} or [] when unused), compactly.
func (m HiveMessage) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(nil)
}

// AppendJSON appends to dst what MarshalJSON returns.
func (m HiveMessage) AppendJSON(dst []byte) ([]byte, error) {
	wire := m.onWire()
	return appendJSON(dst, &wire)
}

// onWire is the envelope laid out as it is written: the eight fields in order, defaults filled.
func (m HiveMessage) onWire() envelopeJSON {
	m = m.withDefaults()
	return envelopeJSON{
		MsgType: m.MsgType, Payload: m.Payload, Metadata: m.Metadata, Route: m.Route, Node: m.Node,
		TargetSiteID: m.TargetSiteID, TargetPubkey: m.TargetPubkey, SourcePeer: m.SourcePeer,
	}
}

// Bytes is the compact JSON of the envelope; an error matching ErrEnvelope if it cannot be
// serialised.
func (m HiveMessage) Bytes() ([]byte, error) {
	out, err := m.AppendJSON(make([]byte, 0, 1024))
	if err != nil {
		return nil, newError(ErrEnvelope, "envelope is not JSON-serialisable: "+err.Error())
	}
	return out, nil
}

// EnvelopeFromObject builds an envelope from a parsed JSON value (lenient defaults).
func EnvelopeFromObject(value any) (HiveMessage, error) {
	obj, ok := value.(map[string]any)
	if !ok {
		return HiveMessage{}, newError(ErrEnvelope, "envelope is not a JSON object")
	}
	msgType, ok := obj["msg_type"].(string)
	if !ok {
		return HiveMessage{}, newError(ErrEnvelope, "envelope has no string msg_type")
	}
	payload, _ := obj["payload"].(map[string]any)
	metadata, _ := obj["metadata"].(map[string]any)
	route, _ := obj["route"].([]any)
	return HiveMessage{
		MsgType: msgType, Payload: payload, Metadata: metadata, Route: route,
		Node: obj["node"], TargetSiteID: obj["target_site_id"], TargetPubkey: obj["target_pubkey"],
		SourcePeer: obj["source_peer"],
	}.withDefaults(), nil
}

// ParseJSONObject decodes UTF-8 JSON that must be one object. With exactNumbers the numbers
// are kept as json.Number (for canonical re-serialisation; read by encoding/json, as before),
// else they are float64 (read by goccy/go-json, see json.go).
func ParseJSONObject(body []byte, exactNumbers bool) (map[string]any, error) {
	if !utf8.Valid(body) {
		return nil, newError(ErrEnvelope, "message is not valid UTF-8")
	}
	var obj map[string]any
	var err error
	if exactNumbers {
		obj, err = decodeJSONObjectStd(body, true)
	} else {
		obj, err = decodeJSONObject(body)
	}
	if err != nil {
		return nil, newError(ErrEnvelope, err.Error())
	}
	return obj, nil
}

// ParseEnvelope parses one JSON frame body into an envelope.
func ParseEnvelope(body []byte) (HiveMessage, error) {
	obj, err := ParseJSONObject(body, false)
	if err != nil {
		return HiveMessage{}, err
	}
	return EnvelopeFromObject(obj)
}
