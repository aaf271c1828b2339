package protocol

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/flynn/noise"
)

// testHub is a minimal responder built directly on flynn/noise: enough to drive the client
// machine through XX, KK and their failures without a server.
type testHub struct {
	t        *testing.T
	static   noise.DHKey
	psk      []byte
	pinned   []byte
	hello    map[string]any
	offer    map[string]any
	state    *noise.HandshakeState
	recv     *noise.CipherState
	send     *noise.CipherState
	clientPK []byte
}

func newTestHub(t *testing.T, password string, pinned []byte) *testHub {
	static, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	patterns := []any{"XXpsk2"}
	if pinned != nil {
		patterns = []any{"KKpsk0", "XXpsk2"}
	}
	return &testHub{
		t: t, static: static, psk: DerivePSK(password, "node-test"), pinned: pinned,
		hello: map[string]any{"node_id": "node-test", "pubkey": ""},
		offer: map[string]any{"binarize": false, "noise": map[string]any{"patterns": patterns, "suites": []any{SuiteChaCha, SuiteAESGCM}}},
	}
}

func (h *testHub) opening() [][]byte {
	a, _ := json.Marshal(map[string]any{"msg_type": "hello", "payload": h.hello})
	b, _ := json.Marshal(map[string]any{"msg_type": "shake", "payload": h.offer})
	return [][]byte{a, b}
}

func shakeMsg(t *testing.T, text []byte) (map[string]any, []byte) {
	var obj struct {
		Payload struct {
			Noise map[string]any `json:"noise"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(text, &obj); err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(obj.Payload.Noise["msg"].(string))
	return obj.Payload.Noise, raw
}

// message1 returns message 2, or an error when the hub cannot read message 1.
func (h *testHub) message1(text []byte) ([]byte, error) {
	noiseObj, msg := shakeMsg(h.t, text)
	pattern, suite := noiseObj["pattern"].(string), noiseObj["suite"].(string)
	cs, _ := cipherSuite(suite)
	prologue, err := BuildPrologue(h.hello, h.offer, ProtocolName(pattern, suite))
	if err != nil {
		h.t.Fatal(err)
	}
	config := noise.Config{CipherSuite: cs, Prologue: prologue, PresharedKey: h.psk, StaticKeypair: h.static}
	if pattern == PatternKK {
		config.Pattern, config.PresharedKeyPlacement, config.PeerStatic = noise.HandshakeKK, 0, h.pinned
	} else {
		config.Pattern, config.PresharedKeyPlacement = noise.HandshakeXX, 2
	}
	h.state, _ = noise.NewHandshakeState(config)
	payload, _, _, err := h.state.ReadMessage(nil, msg)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(payload, Message1Payload) {
		h.t.Fatalf("message 1 payload %q", payload)
	}
	out, c1, c2, _ := h.state.WriteMessage(nil, []byte(`{"binarize":false}`))
	if c1 != nil {
		h.recv, h.send, h.clientPK = c1, c2, h.pinned
	}
	reply, _ := json.Marshal(map[string]any{"msg_type": "shake", "payload": map[string]any{"noise": map[string]any{"msg": hex.EncodeToString(out)}}})
	return reply, nil
}

func (h *testHub) message3(text []byte) {
	_, msg := shakeMsg(h.t, text)
	_, c1, c2, err := h.state.ReadMessage(nil, msg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.recv, h.send, h.clientPK = c1, c2, h.state.PeerStatic()
}

// run drives a full negotiation; it returns the client, the encrypted HELLO it sent, and the
// error the client reported, if any.
func run(t *testing.T, hub *testHub, client *ClientNegotiation, password string) (*ClientNegotiation, []byte, error) {
	for _, text := range hub.opening() {
		if _, err := client.ReceiveText(text); err != nil {
			return client, nil, err
		}
	}
	if !client.NeedsPSK() || client.NodeID != "node-test" {
		t.Fatal("client did not reach the PSK step")
	}
	first, err := client.Start(DerivePSK(password, client.NodeID))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := hub.message1(first)
	if err != nil {
		// a KK the hub cannot read: answer with random bytes that cannot authenticate
		junk := make([]byte, 32+16+18)
		_, _ = rand.Read(junk)
		reply, _ = json.Marshal(map[string]any{"msg_type": "shake", "payload": map[string]any{"noise": map[string]any{"msg": hex.EncodeToString(junk)}}})
	}
	outputs, err := client.ReceiveText(reply)
	if err != nil {
		return client, nil, err
	}
	var hello []byte
	for _, out := range outputs {
		if out.Binary {
			hello = out.Data
		} else {
			hub.message3(out.Data)
		}
	}
	return client, hello, nil
}

func TestNegotiationXXThenKK(t *testing.T) {
	static, _ := GenerateKeyPair()
	hub := newTestHub(t, "pw", nil)
	client, _ := NewClientNegotiation(static, "site-1", "sid-1", nil, false)
	client, hello, err := run(t, hub, client, "pw")
	if err != nil || !client.Complete() || client.Pattern != PatternXX || client.Suite != SuiteChaCha {
		t.Fatalf("XX: %v %s", err, client.Pattern)
	}
	if !bytes.Equal(hub.clientPK, static.Public) || !bytes.Equal(client.HubStatic, hub.static.Public) {
		t.Fatal("static keys not exchanged")
	}
	plain, err := hub.recv.Decrypt(nil, nil, hello)
	if err != nil || plain[0] != MarkerJSON {
		t.Fatalf("encrypted HELLO: %v", err)
	}
	envelope, err := ParseEnvelope(plain[1:])
	session := envelope.Payload["session"].(map[string]any)
	if err != nil || envelope.MsgType != "hello" || session["session_id"] != "sid-1" || envelope.Payload["site_id"] != "site-1" {
		t.Fatalf("HELLO envelope: %+v %v", envelope, err)
	}
	// the hub answers over the channel, chunked
	big := bytes.Repeat([]byte("x"), 140000)
	body, _ := json.Marshal(map[string]any{"msg_type": "bus", "payload": map[string]any{"type": "speak", "data": map[string]any{"utterance": string(big)}}})
	var frame *Frame
	for _, part := range SplitPlaintext(body, false) {
		sealed, _ := hub.send.Encrypt(nil, nil, part)
		if frame, err = client.ReceiveBinary(sealed); err != nil {
			t.Fatal(err)
		}
	}
	if frame == nil || !bytes.Equal(frame.Body, body) {
		t.Fatal("chunked frame not reassembled")
	}

	// second connection: pinned on both sides, KK
	hub2 := &testHub{t: t, static: hub.static, psk: hub.psk, pinned: static.Public, hello: hub.hello,
		offer: map[string]any{"noise": map[string]any{"patterns": []any{"KKpsk0", "XXpsk2"}, "suites": []any{SuiteAESGCM}}}}
	client2, _ := NewClientNegotiation(static, "site-1", "sid-2", client.HubStatic, false)
	client2, _, err = run(t, hub2, client2, "pw")
	if err != nil || client2.Pattern != PatternKK || client2.Suite != SuiteAESGCM {
		t.Fatalf("KK: %v %s %s", err, client2.Pattern, client2.Suite)
	}
}

func TestNegotiationRefusals(t *testing.T) {
	static, _ := GenerateKeyPair()
	other, _ := GenerateKeyPair()

	// wrong password over XX: message 2 does not authenticate
	client, _ := NewClientNegotiation(static, "s", "sid", nil, false)
	_, _, err := run(t, newTestHub(t, "right", nil), client, "wrong")
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := client.ReceiveText([]byte(`{}`)); !errors.Is(err, ErrNegotiation) {
		t.Fatalf("dead machine: %v", err)
	}

	// KK against a hub that pinned another client key: KK fails, the caller retries with XX
	hub := newTestHub(t, "pw", other.Public)
	client, _ = NewClientNegotiation(static, "s", "sid", hub.static.Public, false)
	if _, _, err = run(t, hub, client, "pw"); !errors.Is(err, ErrKKFailed) {
		t.Fatalf("KK refused: %v", err)
	}

	// a hub whose key differs from the pin (XX offered only): hub key changed
	client, _ = NewClientNegotiation(static, "s", "sid", other.Public, false)
	if _, _, err = run(t, newTestHub(t, "pw", nil), client, "pw"); !errors.Is(err, ErrHubKeyChanged) {
		t.Fatalf("hub key changed: %v", err)
	}
}

func TestNegotiationMalformedInput(t *testing.T) {
	static, _ := GenerateKeyPair()
	cases := map[string][]string{
		"not JSON":           {`{nope`},
		"no payload":         {`{"msg_type":"hello"}`},
		"no node id":         {`{"msg_type":"hello","payload":{}}`},
		"duplicate hello":    {`{"msg_type":"hello","payload":{"node_id":"n"}}`, `{"msg_type":"hello","payload":{"node_id":"n"}}`},
		"offer before hello": {`{"msg_type":"shake","payload":{"noise":{"patterns":["XXpsk2"],"suites":["25519_AESGCM_SHA256"]}}}`},
		"legacy offer":       {`{"msg_type":"hello","payload":{"node_id":"n"}}`, `{"msg_type":"shake","payload":{"handshake":true}}`},
		"unexpected type":    {`{"msg_type":"bus","payload":{}}`},
		"invalid UTF-8":      {"{\"msg_type\":\"hello\",\"payload\":{\"node_id\":\"\xff\"}}"},
		"message 2 too soon": {`{"msg_type":"hello","payload":{"node_id":"n"}}`, `{"msg_type":"shake","payload":{"noise":{"msg":"00"}}}`},
	}
	for name, texts := range cases {
		client, _ := NewClientNegotiation(static, "s", "sid", nil, false)
		var err error
		for _, text := range texts {
			if _, err = client.ReceiveText([]byte(text)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrNegotiation) {
			t.Errorf("%s: %v", name, err)
		}
	}
	client, _ := NewClientNegotiation(static, "s", "sid", nil, false)
	if _, err := client.ReceiveBinary([]byte{1, 2, 3}); !errors.Is(err, ErrNegotiation) {
		t.Errorf("binary before auth: %v", err)
	}
	// bad hex in message 2 is malformed, not a refusal
	hub := newTestHub(t, "pw", nil)
	client, _ = NewClientNegotiation(static, "s", "sid", nil, false)
	for _, text := range hub.opening() {
		_, _ = client.ReceiveText(text)
	}
	_, _ = client.Start(DerivePSK("pw", "node-test"))
	if _, err := client.ReceiveText([]byte(`{"msg_type":"shake","payload":{"noise":{"msg":"zz"}}}`)); !errors.Is(err, ErrNegotiation) || errors.Is(err, ErrDecrypt) {
		t.Errorf("bad hex: %v", err)
	}
}

func TestReassemblerRules(t *testing.T) {
	cases := map[string][][]byte{
		"empty":              {{}},
		"unknown marker":     {{0x09, 1}},
		"middle first":       {{MarkerMiddle, 1}},
		"complete in chunk":  {{MarkerJSONFirst, 1}, {MarkerJSON, 1}},
		"first inside first": {{MarkerJSONFirst, 1}, {MarkerBinaryFirst, 1}},
	}
	for name, parts := range cases {
		var r Reassembler
		var err error
		for _, part := range parts {
			if _, err = r.Feed(part); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrFraming) {
			t.Errorf("%s: %v", name, err)
		}
		if _, again := r.Feed([]byte{MarkerJSON}); !errors.Is(again, ErrFraming) {
			t.Errorf("%s: stream not dead after a violation", name)
		}
	}
	var r Reassembler
	chunk := make([]byte, ChunkSize)
	if _, err := r.Feed(append([]byte{MarkerBinaryFirst}, chunk...)); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < MaxReassembly/ChunkSize+1 && err == nil; i++ {
		_, err = r.Feed(append([]byte{MarkerMiddle}, chunk...))
	}
	if !errors.Is(err, ErrFraming) {
		t.Fatalf("oversize reassembly: %v", err)
	}
}

func TestCanonicalJSONRefusalsAndFloats(t *testing.T) {
	for _, bad := range []any{map[string]any{"x": struct{}{}}, "\xff", map[string]any{"f": json.Number("1e999")}} {
		if _, err := CanonicalJSON(bad); !errors.Is(err, ErrCanonicalJSON) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	deep := any("x")
	for i := 0; i < MaxDepth+1; i++ {
		deep = []any{deep}
	}
	if _, err := CanonicalJSON(deep); !errors.Is(err, ErrCanonicalJSON) {
		t.Errorf("deep nesting: %v", err)
	}
	// Python's float repr and integer forms
	for literal, want := range map[string]string{
		"1.0": "1.0", "1e16": "1e+16", "1e15": "1000000000000000.0", "0.0001": "0.0001", "0.00001": "1e-05",
		"-2.5e-7": "-2.5e-07", "123456789012345678901234567890": "123456789012345678901234567890", "-0": "0", "1.5E3": "1500.0",
	} {
		got, err := CanonicalJSON(json.Number(literal))
		if err != nil || string(got) != want {
			t.Errorf("%s: %s %v, want %s", literal, got, err, want)
		}
	}
	got, _ := CanonicalJSON(map[string]any{"é": 1, "z": 2, "\u007f": "\u007f\u0000"})
	if string(got) != "{\"z\":2,\"\u007f\":\"\u007f\\u0000\",\"é\":1}" {
		t.Errorf("ordering and escapes: %s", got)
	}
}

func TestWire1Malformed(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":      {},
		"zeros":      {0, 0, 0},
		"truncated":  {0x80 | BinType<<1},
		"version 2":  {0xC0, 0x80}, // versioned, version byte 0b00000010
		"bad meta":   {0x80 | BinType<<1, 2, '{', '{'},
		"bad zlib":   {0x80 | BinType<<1 | 1, 2, 'x', 'y'},
		"json array": append([]byte{0x80 | 1<<1, 0}, []byte("[1]")...),
	} {
		if _, err := DecodeWire1(data); !errors.Is(err, ErrWire1) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// ---- a channel shared across sessions (MQTT's <prefix>/out)
//
// Every session of an identity reads the hub's answers to every other session, and the hub's
// HELLO and offer name no session. All of another session's answers come before the hub's
// answer to this session's HELLO.

var staleMessage2 = []byte(`{"msg_type":"shake","payload":{"noise":{"msg":"` + strings.Repeat("07", 96) + `"}}}`)

// otherState is the same hub (key, node id, PSK) in another state: its HELLO carries extra, and
// with a pinned client key its offer has KK too.
func (h *testHub) otherState(extra map[string]any, pinned []byte) *testHub {
	hello := map[string]any{"node_id": "node-test", "pubkey": ""}
	for key, value := range extra {
		hello[key] = value
	}
	patterns := []any{"XXpsk2"}
	if pinned != nil {
		patterns = []any{"KKpsk0", "XXpsk2"}
	}
	return &testHub{t: h.t, static: h.static, psk: h.psk, pinned: pinned, hello: hello,
		offer: map[string]any{"binarize": false, "noise": map[string]any{"patterns": patterns, "suites": []any{SuiteChaCha, SuiteAESGCM}}}}
}

func sharedClient(t *testing.T) *ClientNegotiation {
	t.Helper()
	static, _ := GenerateKeyPair()
	client, err := NewClientNegotiation(static, "site", "sid", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	client.SharedChannel = true
	return client
}

// receiveNothing feeds texts to the client, each of which must be taken without an answer.
func receiveNothing(t *testing.T, client *ClientNegotiation, texts ...[]byte) {
	t.Helper()
	for _, text := range texts {
		if out, err := client.ReceiveText(text); err != nil || out != nil {
			t.Fatalf("%s: %v %v", text, out, err)
		}
	}
}

// finish sends message 1 to hub and its message 2 back: the handshake completes and the hub
// reads the client's encrypted HELLO.
func finish(t *testing.T, hub *testHub, client *ClientNegotiation, message1 []byte) {
	t.Helper()
	reply, err := hub.message1(message1)
	if err != nil {
		t.Fatalf("the hub cannot read message 1: %v", err)
	}
	outputs, err := client.ReceiveText(reply)
	if err != nil || !client.Complete() || len(outputs) != 2 || outputs[0].Binary || !outputs[1].Binary {
		t.Fatalf("message 2: %v %+v", err, outputs)
	}
	hub.message3(outputs[0].Data)
	plain, err := hub.recv.Decrypt(nil, nil, outputs[1].Data)
	if err != nil {
		t.Fatalf("encrypted HELLO: %v", err)
	}
	if envelope, err := ParseEnvelope(plain[1:]); err != nil || envelope.MsgType != "hello" {
		t.Fatalf("encrypted HELLO: %+v %v", envelope, err)
	}
}

func TestSharedChannelSkipsAMessage2AndAnOfferWithoutItsHello(t *testing.T) {
	hub := newTestHub(t, "pw", nil)
	opening := hub.opening()
	hello, offer := opening[0], opening[1]
	client := sharedClient(t)
	receiveNothing(t, client, staleMessage2, offer) // another session's message 2; an offer whose HELLO went earlier
	receiveNothing(t, client, hello, staleMessage2, offer)
	if !client.NeedsPSK() {
		t.Fatal("no offer taken")
	}
	receiveNothing(t, client, staleMessage2) // message 1 is not out yet: not ours
	message1, err := client.Start(hub.psk)
	if err != nil {
		t.Fatal(err)
	}
	finish(t, hub, client, message1)
}

func TestSharedChannelBeforeMessage1TheNewestHelloAndOfferWin(t *testing.T) {
	hub := newTestHub(t, "pw", nil)
	other, _ := GenerateKeyPair()
	stale := hub.otherState(map[string]any{"peer": "an earlier session's hub state"}, other.Public)
	texts := map[string][]byte{}
	for i, name := range []string{"hello", "offer"} {
		texts[name] = stale.opening()[i]
		texts[strings.ToUpper(name)] = hub.opening()[i]
	}
	// lower case: the earlier hub state's HELLO and offer; upper case: the hub's own
	for _, order := range []string{"hello offer HELLO OFFER", "hello HELLO OFFER", "hello offer HELLO offer OFFER"} {
		client := sharedClient(t)
		for _, name := range strings.Fields(order) {
			receiveNothing(t, client, texts[name])
		}
		if client.HelloPayload["peer"] != nil || len(client.OfferPayload["noise"].(map[string]any)["patterns"].([]any)) != 1 {
			t.Fatalf("%s: the earlier pair won: %v %v", order, client.HelloPayload, client.OfferPayload)
		}
		message1, err := client.Start(hub.psk)
		if err != nil {
			t.Fatal(err)
		}
		finish(t, hub, client, message1)
	}
}

func TestSharedChannelAfterMessage1CopiesOfTheSamePairAreSkipped(t *testing.T) {
	hub := newTestHub(t, "pw", nil)
	client := sharedClient(t)
	receiveNothing(t, client, hub.opening()...) // another session's copies of the hub's HELLO and offer
	message1, err := client.Start(hub.psk)
	if err != nil {
		t.Fatal(err)
	}
	receiveNothing(t, client, hub.opening()...) // the hub's answer to our HELLO: the same
	finish(t, hub, client, message1)
}

func TestSharedChannelAfterMessage1AnotherPairSupersedesTheNegotiation(t *testing.T) {
	hub := newTestHub(t, "pw", nil)
	pinned, _ := GenerateKeyPair()
	others := map[string]*testHub{
		"another HELLO":                 hub.otherState(map[string]any{"peer": "another"}, nil),
		"the same HELLO, another offer": hub.otherState(nil, pinned.Public), // KK on offer too
	}
	for name, other := range others {
		client := sharedClient(t)
		receiveNothing(t, client, hub.opening()...)
		if _, err := client.Start(hub.psk); err != nil {
			t.Fatal(err)
		}
		var err error
		for _, text := range other.opening() {
			if _, err = client.ReceiveText(text); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrNegotiationSuperseded) || !errors.Is(err, ErrNegotiation) || !strings.Contains(err.Error(), "restarted the negotiation") {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := client.ReceiveText(hub.opening()[0]); !errors.Is(err, ErrNegotiation) || errors.Is(err, ErrNegotiationSuperseded) {
			t.Errorf("%s: the machine is not dead: %v", name, err)
		}
	}
}

func TestSharedChannelIsOffByDefault(t *testing.T) {
	hub := newTestHub(t, "pw", nil)
	static, _ := GenerateKeyPair()
	client, _ := NewClientNegotiation(static, "s", "sid", nil, false)
	receiveNothing(t, client, hub.opening()[0])
	if _, err := client.ReceiveText(staleMessage2); err == nil || !strings.Contains(err.Error(), msgOutOfOrder) {
		t.Errorf("message 2 before message 1: %v", err)
	}
	client, _ = NewClientNegotiation(static, "s", "sid", nil, false)
	receiveNothing(t, client, hub.opening()...)
	if _, err := client.Start(hub.psk); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ReceiveText(hub.opening()[0]); err == nil || !strings.Contains(err.Error(), "duplicate Noise HELLO") {
		t.Errorf("a second HELLO: %v", err)
	}
}
