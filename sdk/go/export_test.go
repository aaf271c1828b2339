package thalovant

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
)

// WaitConnected returns once c's link is up (nil) or ctx ends (its error); it waits on the
// client's link-state changes, never polls.
func WaitConnected(ctx context.Context, c *Client) error {
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if c.Connected() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitWaiting returns once at least n requests of c wait for its link (nil) or ctx ends.
func WaitWaiting(ctx context.Context, c *Client, n int) error {
	for {
		c.mu.Lock()
		changed, waiting := c.changed, c.waiting
		c.mu.Unlock()
		if waiting >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Resent is how many asks c sent again after the hub closed for a restart.
func Resent(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resent
}

// HeldMQTTLink establishes one link over MQTT for identity the way Client.Connect does (Noise
// state in noiseDir), the SDK's MQTT carrier watched: its cleartext HELLO, published once /out is
// subscribed, waits (held is closed then) until release is closed. It returns the kinds of the
// hub's messages the negotiation read, in order ("hello", "offer", "message 2", "binary") and
// the link's Noise pattern, and closes the link.
func HeldMQTTLink(ctx context.Context, identity *Identity, noiseDir string, held chan<- struct{}, release <-chan struct{}) ([]string, string, error) {
	c, err := NewClientWithOptions(identity, ClientOptions{Protocol: ProtocolMQTT, NoiseStateDir: noiseDir})
	if err != nil {
		return nil, "", err
	}
	m := identity.MQTT
	settings, err := carrier.NewMQTTSettings(m.Endpoint, m.Username, m.Password, m.TopicPrefix, m.QoS, m.TLS)
	if err != nil {
		return nil, "", err
	}
	watched := &watchedCarrier{}
	holding := true
	est := &establishment{
		makeCarrier: func() (carrier.Carrier, error) {
			hello := helloText
			if holding {
				holding = false
				hello = func(sessionID, siteID string) []byte {
					close(held)
					select {
					case <-release:
					case <-ctx.Done():
					}
					return helloText(sessionID, siteID)
				}
			}
			watched.Carrier = carrier.NewMQTT(settings, strings.TrimRight(identity.EndpointBase(), "/"), identity.SiteID, false, hello)
			return watched, nil
		},
		store:       c.store,
		credentials: credentials{AccessKey: identity.AccessKey, Password: identity.Password, SiteID: identity.SiteID},
		sessionID:   connectionSessionID(), connectTimeout: 2 * DefaultHandshakeTimeout, handshakeTimeout: DefaultHandshakeTimeout,
	}
	l, err := est.establish(ctx)
	if err != nil {
		return watched.read(), "", err
	}
	l.close()
	return watched.read(), l.pattern, nil
}

// watchedCarrier records the kind of every message the negotiation reads from its carrier.
type watchedCarrier struct {
	carrier.Carrier
	mu    sync.Mutex
	kinds []string
}

func (w *watchedCarrier) Receive(ctx context.Context) (carrier.Message, error) {
	message, err := w.Carrier.Receive(ctx)
	if err == nil {
		w.mu.Lock()
		w.kinds = append(w.kinds, KindOf(message.Data, message.Binary))
		w.mu.Unlock()
	}
	return message, err
}

func (w *watchedCarrier) read() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.kinds...)
}

// KindOf names a message from the hub the way a test can without keys: "hello", "offer",
// "message 2", or "binary".
func KindOf(data []byte, binary bool) string {
	var message struct {
		MsgType string `json:"msg_type"`
		Payload struct {
			Noise map[string]any `json:"noise"`
		} `json:"payload"`
	}
	if binary || json.Unmarshal(data, &message) != nil {
		return "binary"
	}
	if message.MsgType == "hello" {
		return "hello"
	}
	if _, ok := message.Payload.Noise["msg"].(string); ok {
		return "message 2"
	}
	return "offer"
}
