package thalovant

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// establish over a carrier whose channel from the hub is shared across sessions (MQTT), without
// a network: the carrier's hub is a script, the responder a minimal XXpsk2 one on flynn/noise.
// Message 1 built on another session's HELLO and offer, unlike the hub's own, is retried at once
// on a fresh carrier session, once.

const scriptedNode = "node-scripted"

var scriptedPSK = []byte("0123456789abcdef0123456789abcdef")

// scriptedState is one state of the hub: the HELLO and offer it answers a cleartext HELLO with.
type scriptedState struct {
	hello, offer map[string]any
}

func newScriptedState(helloExtra map[string]any) scriptedState {
	hello := map[string]any{"node_id": scriptedNode, "pubkey": ""}
	for key, value := range helloExtra {
		hello[key] = value
	}
	return scriptedState{hello: hello, offer: map[string]any{"binarize": false,
		"noise": map[string]any{"patterns": []any{protocol.PatternXX}, "suites": []any{protocol.SuiteChaCha}}}}
}

func (s scriptedState) opening(t testing.TB) []carrier.Message {
	hello, err := json.Marshal(map[string]any{"msg_type": "hello", "payload": s.hello})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := json.Marshal(map[string]any{"msg_type": "shake", "payload": s.offer})
	if err != nil {
		t.Fatal(err)
	}
	return []carrier.Message{{Data: hello}, {Data: offer}}
}

// responder is the hub's side of one session, in the hub's own state.
type responder struct {
	t          testing.TB
	static     noise.DHKey
	state      scriptedState
	handshake  *noise.HandshakeState
	recv, send *noise.CipherState
}

func shakeNoise(t testing.TB, text []byte) map[string]any {
	var shake struct {
		Payload struct {
			Noise map[string]any `json:"noise"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(text, &shake); err != nil {
		t.Fatal(err)
	}
	return shake.Payload.Noise
}

func noiseBytes(t testing.TB, fields map[string]any) []byte {
	raw, err := hex.DecodeString(fields["msg"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// answer is what the hub sends back for one client message: message 2 for message 1 (nothing
// when it cannot read it, as the hub on MQTT), nothing for message 3, a first frame for the
// encrypted HELLO (it ends the client's settle wait).
func (r *responder) answer(message []byte, binary bool) []carrier.Message {
	t := r.t
	if binary {
		if _, err := r.recv.Decrypt(nil, nil, message); err != nil {
			t.Fatalf("encrypted HELLO: %v", err)
		}
		body := []byte(`{"msg_type":"bus","payload":{"type":"ready","data":{},"context":{}}}`)
		var out []carrier.Message
		for _, part := range protocol.SplitPlaintext(body, false) {
			sealed, err := r.send.Encrypt(nil, nil, part)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, carrier.Message{Binary: true, Data: sealed})
		}
		return out
	}
	fields := shakeNoise(t, message)
	if r.handshake != nil { // message 3
		if _, cs1, cs2, err := r.handshake.ReadMessage(nil, noiseBytes(t, fields)); err != nil {
			t.Fatalf("message 3: %v", err)
		} else {
			r.recv, r.send = cs1, cs2
		}
		return nil
	}
	prologue, err := protocol.BuildPrologue(r.state.hello, r.state.offer, protocol.ProtocolName(protocol.PatternXX, protocol.SuiteChaCha))
	if err != nil {
		t.Fatal(err)
	}
	handshake, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256),
		Random:      rand.Reader, Pattern: noise.HandshakeXX, Prologue: prologue,
		PresharedKey: scriptedPSK, PresharedKeyPlacement: 2, StaticKeypair: r.static,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := handshake.ReadMessage(nil, noiseBytes(t, fields)); err != nil {
		return nil // built on a pair unlike the hub's: the hub cannot read it and says nothing
	}
	r.handshake = handshake
	reply, _, _, err := handshake.WriteMessage(nil, []byte(`{"binarize":false}`))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := json.Marshal(map[string]any{"msg_type": "shake", "payload": map[string]any{"noise": map[string]any{"msg": hex.EncodeToString(reply)}}})
	return []carrier.Message{{Data: text}}
}

// scriptedCarrier is one session whose hub is a script.
type scriptedCarrier struct {
	shared bool
	opened []carrier.Message
	hub    *responder
	// late: the hub's answer to our HELLO, which comes after our message 1
	late  []carrier.Message
	inbox chan carrier.Message
	open  bool
}

func (c *scriptedCarrier) Protocol() string        { return "mqtt" }
func (c *scriptedCarrier) PinID() string           { return "mqtts://hub.test:8883" }
func (c *scriptedCarrier) Endpoint() string        { return "mqtts://hub.test:8883" }
func (c *scriptedCarrier) BindSession(_, _ string) {}
func (c *scriptedCarrier) SharedInbound() bool     { return c.shared }
func (c *scriptedCarrier) Alive() bool             { return c.open }
func (c *scriptedCarrier) Close()                  { c.open = false }

func (c *scriptedCarrier) push(messages []carrier.Message) {
	for _, message := range messages {
		c.inbox <- message
	}
}

func (c *scriptedCarrier) Open(context.Context) error {
	c.open = true
	c.push(c.opened)
	return nil
}

func (c *scriptedCarrier) SendText(_ context.Context, text []byte) error {
	if strings.Contains(string(text), `"pattern"`) {
		c.push(c.late)
	}
	c.push(c.hub.answer(text, false))
	return nil
}

func (c *scriptedCarrier) SendBinary(_ context.Context, data []byte) error {
	c.push(c.hub.answer(data, true))
	return nil
}

func (c *scriptedCarrier) Receive(ctx context.Context) (carrier.Message, error) {
	select {
	case message := <-c.inbox:
		return message, nil
	case <-ctx.Done():
		return carrier.Message{}, ctx.Err()
	}
}

// scriptedConnect establishes a link over scripted carriers: sessions before cleanFrom open on
// stale's HELLO and offer (another session's copies) and get the hub's own answer to their HELLO
// after their message 1; later sessions open on the hub's own. It returns the link, how many
// carrier sessions were made, and the error.
func scriptedConnect(t *testing.T, stale, own scriptedState, cleanFrom int, shared bool) (*link, int, error) {
	static, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	store := &NoiseStore{Directory: filepath.Join(t.TempDir(), "hivemind")}
	if err := store.StorePSK("access", scriptedNode, scriptedPSK); err != nil { // no argon2id here
		t.Fatal(err)
	}
	sessions := 0
	est := &establishment{
		makeCarrier: func() (carrier.Carrier, error) {
			sessions++
			c := &scriptedCarrier{shared: shared, hub: &responder{t: t, static: static, state: own}, inbox: make(chan carrier.Message, 16)}
			if sessions >= cleanFrom {
				c.opened = own.opening(t)
			} else {
				c.opened, c.late = stale.opening(t), own.opening(t)
			}
			return c, nil
		},
		store:       store,
		credentials: credentials{AccessKey: "access", Password: "secret", SiteID: "site"},
		sessionID:   "thalovant-go-scripted", connectTimeout: 5 * time.Second, handshakeTimeout: 5 * time.Second,
	}
	l, err := est.establish(context.Background())
	return l, sessions, err
}

func TestSharedChannelMessage1OnAnotherSessionsPairIsRetriedAtOnceOnAFreshSession(t *testing.T) {
	stale, own := newScriptedState(map[string]any{"peer": "an earlier session's hub state"}), newScriptedState(nil)
	l, sessions, err := scriptedConnect(t, stale, own, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if sessions != 2 || l.timings.Attempts != 2 || l.pattern != protocol.PatternXX || len(l.early) != 1 {
		t.Fatalf("sessions %d, attempts %d, pattern %s, %d early frames", sessions, l.timings.Attempts, l.pattern, len(l.early))
	}
}

func TestSharedChannelTheFreshRetryIsMadeOnce(t *testing.T) {
	stale, own := newScriptedState(map[string]any{"peer": "an earlier session's hub state"}), newScriptedState(nil)
	_, sessions, err := scriptedConnect(t, stale, own, 3, true)
	if !errorsIs(err, ErrConnection) || errorsIs(err, ErrHubRefused) || sessions != 2 ||
		!strings.Contains(err.Error(), "Malformed HiveMind negotiation: The hub restarted the negotiation") {
		t.Fatalf("%d sessions: %v", sessions, err)
	}
}

func TestSharedChannelACopyEqualToTheHubsOwnNeedsNoRetry(t *testing.T) {
	l, sessions, err := scriptedConnect(t, newScriptedState(nil), newScriptedState(nil), 2, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if sessions != 1 || l.timings.Attempts != 1 {
		t.Fatalf("sessions %d, attempts %d", sessions, l.timings.Attempts)
	}
}

// WSS and HTTPS give each session its own channel: a second HELLO still ends the connect.
func TestAChannelOfTheSessionsOwnStaysStrict(t *testing.T) {
	_, sessions, err := scriptedConnect(t, newScriptedState(nil), newScriptedState(nil), 2, false)
	if !errorsIs(err, ErrConnection) || sessions != 1 || !strings.Contains(err.Error(), "duplicate Noise HELLO") {
		t.Fatalf("%d sessions: %v", sessions, err)
	}
}
