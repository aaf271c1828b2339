package thalovant

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/flynn/noise"
	"go.uber.org/goleak"

	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// A hub on a loopback WebSocket (TLS) that negotiates like responder and answers every ask the
// way the demo hub does: a speak, then ovos.utterance.handled, each its own transport message.
// An utterance of "garble" is answered with a transport message that does not decrypt.

const (
	loopbackSpeak   = `{"msg_type":"bus","payload":{"type":"speak","data":{"utterance":"Why did the hub keep good logs? It wanted every punchline to be traceable.","lang":"en-us","expect_response":false,"meta":{"skill":"jokes","intent":"tell_joke"}},"context":{"destination":"ThalovantGoSDK/0.1.0","platform":"ThalovantGoSDK/0.1.0","request_id":"RID","session":{"lang":"en-us","request_id":"RID","session_id":"SID","site_id":"site","active_skills":[["jokes",1796621631.3153636]],"context":{"thalovant_skills":{"jokes":{"next":1}}}},"source":"HiveMind","thalovant_request_id":"RID","pipeline_id":"thalovant.skills","skill_id":"jokes"}},"metadata":{},"route":[],"node":null,"target_site_id":null,"target_pubkey":null,"source_peer":null}`
	loopbackHandled = `{"msg_type":"bus","payload":{"type":"ovos.utterance.handled","data":{"name":"jokes:tell_joke"},"context":{"destination":"ThalovantGoSDK/0.1.0","platform":"ThalovantGoSDK/0.1.0","request_id":"RID","session":{"lang":"en-us","request_id":"RID","session_id":"SID","site_id":"site","active_skills":[["jokes",1796621631.3153636]],"context":{"thalovant_skills":{"jokes":{"next":1}}}},"source":"HiveMind","thalovant_request_id":"RID","pipeline_id":"thalovant.skills","skill_id":"jokes"}},"metadata":{},"route":[],"node":null,"target_site_id":null,"target_pubkey":null,"source_peer":null}`
)

// loopbackHub serves one WebSocket session at a time; failures land in errs.
type loopbackHub struct {
	tb     testing.TB
	static noise.DHKey
	server *httptest.Server
	mu     sync.Mutex
	errs   []error
}

func startLoopbackHub(tb testing.TB) *loopbackHub {
	static, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	hub := &loopbackHub{tb: tb, static: static}
	hub.server = httptest.NewTLSServer(http.HandlerFunc(hub.serve))
	return hub
}

func (h *loopbackHub) fail(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

// close stops the hub and reports what failed in it.
func (h *loopbackHub) close() {
	h.server.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := errors.Join(h.errs...); err != nil {
		h.tb.Error(err)
	}
}

func (h *loopbackHub) serve(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		h.fail(err)
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	hub := &responder{t: h.tb, static: h.static, state: newScriptedState(nil)}
	for _, message := range hub.state.opening(h.tb) {
		if err := conn.Write(ctx, websocket.MessageText, message.Data); err != nil {
			h.fail(err)
			return
		}
	}
	helloRead := false
	for {
		kind, data, err := conn.Read(ctx)
		if err != nil {
			return // the client closed
		}
		var replies []carrier.Message
		switch {
		case kind == websocket.MessageText || !helloRead:
			helloRead = kind == websocket.MessageBinary
			replies = hub.answer(data, kind == websocket.MessageBinary)
		default:
			if replies, err = h.answerAsk(hub, data); err != nil {
				h.fail(err)
				return
			}
		}
		for _, reply := range replies {
			kind := websocket.MessageText
			if reply.Binary {
				kind = websocket.MessageBinary
			}
			if err := conn.Write(ctx, kind, reply.Data); err != nil {
				return
			}
		}
	}
}

// answerAsk reads one transport message carrying an utterance and seals the replies to it.
func (h *loopbackHub) answerAsk(hub *responder, message []byte) ([]carrier.Message, error) {
	plaintext, err := hub.recv.Decrypt(nil, nil, message)
	if err != nil {
		return nil, err
	}
	envelope, err := protocol.ParseEnvelope(plaintext[1:]) // after the frame marker
	if err != nil {
		return nil, err
	}
	bus := envelope.Bus()
	if utterances, _ := bus.Data["utterances"].([]any); len(utterances) == 1 && utterances[0] == "garble" {
		return []carrier.Message{{Binary: true, Data: []byte("not a transport message of this session")}}, nil
	}
	rid, _ := bus.Context["request_id"].(string)
	session, _ := bus.Context["session"].(map[string]any)
	sid, _ := session["session_id"].(string)
	var out []carrier.Message
	for _, body := range []string{loopbackSpeak, loopbackHandled} {
		body = strings.NewReplacer(`"RID"`, `"`+rid+`"`, `"SID"`, `"`+sid+`"`).Replace(body)
		for _, part := range protocol.SplitPlaintext([]byte(body), false) {
			sealed, err := hub.send.Encrypt(nil, nil, part)
			if err != nil {
				return nil, err
			}
			out = append(out, carrier.Message{Binary: true, Data: sealed})
		}
	}
	return out, nil
}

// connect is a client of the hub, connected, with settle 0 (an ask returns at the first speak).
func (h *loopbackHub) connect(tb testing.TB) *Client {
	identity := &Identity{AccessKey: "access", Password: "secret", SiteID: "site",
		DataPlaneEndpoints: map[string]string{"wss": "wss://" + strings.TrimPrefix(h.server.URL, "https://") + "/"}}
	client, err := NewClientWithOptions(identity, ClientOptions{Protocol: ProtocolWSS, NoiseStateDir: tb.TempDir(),
		ReplySettle: -1, InsecureSkipVerify: true, DisableAutoReconnect: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := client.NoiseStore().StorePSK("access", scriptedNode, scriptedPSK); err != nil { // no argon2id here
		tb.Fatal(err)
	}
	if err := client.Connect(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return client
}

// Asks over a real WebSocket are answered in order by the reader handing each message on, and
// every goroutine ends with the client.
func TestAskOverLoopbackWSS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	hub := startLoopbackHub(t)
	defer hub.close()
	client := hub.connect(t)
	defer client.Close(context.Background())
	ctx := context.Background()
	events := client.Transport.Events()
	for i := 0; i < 20; i++ {
		reply, err := client.Ask(ctx, "Tell me a joke.", RequestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply.Text, "Why did the hub") || reply.RequestID == "" {
			t.Fatalf("reply %+v", reply)
		}
	}
	if event := <-events; event.Name != "ready" { // the hub's first frame, before any ask
		t.Fatalf("first event %s", event.Name)
	}
	for i := 0; i < 40; i++ { // every speak and handled, in the order the hub sent them
		event := <-events
		want := []string{EventSpeak, EventUtteranceHandled}[i%2]
		if event.Name != want {
			t.Fatalf("event %d is %s, want %s", i, event.Name, want)
		}
	}
}

// A transport message that does not decrypt ends the link: the ask waiting fails with
// ErrConnection naming it.
func TestMalformedTransportMessageEndsTheLink(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	hub := startLoopbackHub(t)
	defer hub.close()
	client := hub.connect(t)
	defer client.Close(context.Background())
	_, err := client.Ask(context.Background(), "garble", RequestOptions{})
	if !errorsIs(err, ErrConnection) || !strings.Contains(err.Error(), "Malformed data from the hub") {
		t.Fatalf("ask: %v", err)
	}
	if client.Connected() {
		t.Fatal("the link is still up")
	}
}

// BenchmarkAskOverLoopbackWSS is one sequential ask over TLS, WebSocket and Noise to a hub in
// this process (its work is counted too). -cpu 1 is the bench's placement of the client.
func BenchmarkAskOverLoopbackWSS(b *testing.B) {
	hub := startLoopbackHub(b)
	defer hub.close()
	client := hub.connect(b)
	defer client.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Ask(ctx, "Tell me a joke.", RequestOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
