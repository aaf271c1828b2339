package thalovant_test

import (
	"context"
	"net"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	thalovant "github.com/thalovant/thalovant-go-sdk"
	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// MQTT's hub-to-client topic <prefix>/out belongs to the identity, not to one session: what the
// hub sends another session of the same identity (an earlier process that left before reading
// the answers to its HELLO or its message 1) reaches every session subscribed at that moment,
// and the hub's HELLO and offer read the same for every session. These tests make that happen
// on purpose against the testbed's serve --demo: a second broker session with the identity's
// credentials plays the other session, and our cleartext HELLO is held (the SDK's MQTT carrier,
// watched) until the hub has published the other session's answers. The broker delivers the
// hub's publishes to our subscription in the order it took them, so those answers reach us
// before the hub's answers to our HELLO. Each step waits for the event it needs; nothing sleeps.

// otherSession is another broker session with the identity's credentials, subscribed to /out.
type otherSession struct {
	client   paho.Client
	settings carrier.MQTTSettings
	mu       sync.Mutex
	texts    [][]byte
	kinds    []string
	arrived  chan struct{} // signalled on every arrival
}

func newOtherSession(t *testing.T, identity *thalovant.Identity) *otherSession {
	t.Helper()
	m := identity.MQTT
	settings, err := carrier.NewMQTTSettings(m.Endpoint, m.Username, m.Password, m.TopicPrefix, m.QoS, m.TLS)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := carrier.TLSConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	o := &otherSession{settings: settings, arrived: make(chan struct{}, 64)}
	options := paho.NewClientOptions().
		AddBroker("tls://" + net.JoinHostPort(settings.Host, strconv.Itoa(settings.Port))).
		SetClientID("thalovant-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetUsername(settings.Username).SetPassword(settings.Password).SetTLSConfig(tlsConfig).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	o.client = paho.NewClient(options)
	if token := o.client.Connect(); !token.WaitTimeout(30*time.Second) || token.Error() != nil {
		t.Fatalf("the other session cannot connect: %v", token.Error())
	}
	t.Cleanup(func() { o.client.Disconnect(250) })
	token := o.client.Subscribe(settings.Outbound, 1, func(_ paho.Client, message paho.Message) {
		o.mu.Lock()
		o.kinds = append(o.kinds, thalovant.KindOf(message.Payload(), false))
		o.texts = append(o.texts, append([]byte(nil), message.Payload()...))
		o.mu.Unlock()
		select { // a full channel already holds a wake-up for the waiter
		case o.arrived <- struct{}{}:
		default:
		}
	})
	if !token.WaitTimeout(30*time.Second) || token.Error() != nil {
		t.Fatalf("the other session cannot subscribe: %v", token.Error())
	}
	return o
}

func (o *otherSession) publish(t *testing.T, payload []byte) {
	t.Helper()
	if token := o.client.Publish(o.settings.Inbound, 1, false, payload); !token.WaitTimeout(30*time.Second) || token.Error() != nil {
		t.Fatalf("the other session cannot publish: %v", token.Error())
	}
}

// await returns once a message of kind reached the other session.
func (o *otherSession) await(t *testing.T, ctx context.Context, kind string) {
	t.Helper()
	for {
		o.mu.Lock()
		for _, seen := range o.kinds {
			if seen == kind {
				o.mu.Unlock()
				return
			}
		}
		o.mu.Unlock()
		select {
		case <-o.arrived:
		case <-ctx.Done():
			t.Fatalf("no %s reached the other session: %v", kind, ctx.Err())
		}
	}
}

// heldLink starts establishing a link whose HELLO is held; it returns once the HELLO waits,
// with the channel that releases it and the channel of the outcome.
type heldOutcome struct {
	kinds   []string
	pattern string
	err     error
}

func heldLink(t *testing.T, ctx context.Context, identity *thalovant.Identity) (chan<- struct{}, <-chan heldOutcome) {
	t.Helper()
	held, release, outcome := make(chan struct{}), make(chan struct{}), make(chan heldOutcome, 1)
	go func() {
		kinds, pattern, err := thalovant.HeldMQTTLink(ctx, identity, t.TempDir(), held, release)
		outcome <- heldOutcome{kinds, pattern, err}
	}()
	select {
	case <-held: // subscribed to /out; our HELLO waits
	case result := <-outcome:
		t.Fatalf("the link ended before its HELLO: %v", result.err)
	}
	return release, outcome
}

func TestMQTTAHelloAndOfferSentToAnotherSessionFirstStartNoSecondNegotiation(t *testing.T) {
	result, _ := provision(t, "go-mqtt-shared-hello")
	identity := result.Identity
	ctx := ctxTimeout(t, 60*time.Second)
	release, outcome := heldLink(t, ctx, identity)
	other := newOtherSession(t, identity)
	hello, err := protocol.HelloEnvelope("thalovant-go-mqtt-other", identity.SiteID).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	other.publish(t, hello)
	other.await(t, ctx, "offer") // the hub published its HELLO and offer for the other session
	close(release)
	got := <-outcome
	if got.err != nil {
		t.Fatalf("connect: %v (read %v)", got.err, got.kinds) // used to be "duplicate Noise HELLO"
	}
	if want := []string{"hello", "offer", "hello", "offer", "message 2"}; len(got.kinds) < 5 || !reflect.DeepEqual(got.kinds[:5], want) {
		t.Fatalf("read %v, want %v first", got.kinds, want)
	}
}

func TestMQTTAMessage2SentToAnotherSessionFirstIsNotOurs(t *testing.T) {
	result, _ := provision(t, "go-mqtt-shared-message2")
	identity := result.Identity
	ctx := ctxTimeout(t, 60*time.Second)
	// the other session: HELLO, the hub's HELLO and offer (before we subscribe), then its message 1
	other := newOtherSession(t, identity)
	hello, err := protocol.HelloEnvelope("thalovant-go-mqtt-other", identity.SiteID).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	other.publish(t, hello)
	other.await(t, ctx, "offer")
	static, _ := protocol.GenerateKeyPair()
	negotiation, _ := protocol.NewClientNegotiation(static, identity.SiteID, "other", nil, true)
	other.mu.Lock()
	texts := append([][]byte(nil), other.texts...)
	other.mu.Unlock()
	for _, text := range texts {
		if _, err := negotiation.ReceiveText(text); err != nil {
			t.Fatal(err)
		}
	}
	message1, err := negotiation.Start(make([]byte, 32)) // XXpsk2 message 1 does not use the PSK yet
	if err != nil {
		t.Fatal(err)
	}

	release, outcome := heldLink(t, ctx, identity)
	other.publish(t, message1)
	other.await(t, ctx, "message 2") // the hub answered the other session's message 1
	close(release)
	got := <-outcome
	if got.err != nil {
		t.Fatalf("connect: %v (read %v)", got.err, got.kinds) // used to be "Out-of-order Noise negotiation"
	}
	if want := []string{"message 2", "hello", "offer", "message 2"}; len(got.kinds) < 4 || !reflect.DeepEqual(got.kinds[:4], want) {
		t.Fatalf("read %v, want %v first", got.kinds, want)
	}
	if got.pattern != protocol.PatternXX {
		t.Fatalf("pattern %s", got.pattern)
	}
}
