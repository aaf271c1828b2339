package carrier

import (
	"context"
	"testing"
)

// published is one message as paho hands it to the carrier.
type published struct {
	topic   string
	payload []byte
}

func (p published) Duplicate() bool   { return false }
func (p published) Qos() byte         { return 1 }
func (p published) Retained() bool    { return false }
func (p published) Topic() string     { return p.topic }
func (p published) MessageID() uint16 { return 1 }
func (p published) Payload() []byte   { return p.payload }
func (p published) Ack()              {}

func TestMQTTSharesItsInboundTopic(t *testing.T) {
	var m, w, h Carrier = &MQTT{}, &WSS{}, &HTTPS{}
	if !m.SharedInbound() || w.SharedInbound() || h.SharedInbound() {
		t.Fatal("only MQTT's channel from the hub is shared across sessions")
	}
}

// Before the handshake, what the hub publishes on /out may belong to an earlier session of the
// identity: a Noise transport message then is dropped, and only a UTF-8 JSON object is text.
func TestMQTTBeforeAuthenticationOnlyUTF8JSONIsText(t *testing.T) {
	settings, err := NewMQTTSettings("mqtts://broker.test", "u", "p", "tv/c", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMQTT(settings, "https://hub.test", "site", false, nil)
	stale := []byte{'{', 0xff, 0x00, 0x9c, 0x11} // a sealed message of an earlier session that starts with '{'
	for _, payload := range [][]byte{stale, {0x00, 0x01}, []byte(`{"msg_type":"hello","payload":{}}`)} {
		m.onMessage(nil, published{settings.Outbound, payload})
	}
	m.onMessage(nil, published{"tv/c/elsewhere", []byte(`{"msg_type":"hello"}`)})
	ctx := context.Background()
	message, err := m.Receive(ctx)
	if err != nil || message.Binary || string(message.Data) != `{"msg_type":"hello","payload":{}}` {
		t.Fatalf("first message: %+v %v", message, err)
	}
	if len(m.q.inbound) != 0 {
		t.Fatalf("%d more messages queued", len(m.q.inbound))
	}

	m.authenticated = true // after the handshake every publish is a transport message, as it is
	m.onMessage(nil, published{settings.Outbound, []byte(`{"looks":"like json"}`)})
	if message, err := m.Receive(ctx); err != nil || !message.Binary {
		t.Fatalf("after authentication: %+v %v", message, err)
	}
}

func TestIsText(t *testing.T) {
	cases := map[string]bool{
		`{"msg_type":"hello"}`: true,
		" \r\n\t{}":            true,
		"{\"a\":\"\xc3\xa9\"}": true,
		"{\xff":                false,
		"{\"a\":\"\xc3\"}":     false,
		"[]":                   false,
		"":                     false,
		"\x00{":                false,
		"plain text, not JSON": false,
	}
	for text, want := range cases {
		if got := isText([]byte(text)); got != want {
			t.Errorf("isText(%q) = %v, want %v", text, got, want)
		}
	}
}
