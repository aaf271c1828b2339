package carrier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The MQTT carrier (dataplane.md 4.3) on the Eclipse Paho Go client: MQTT 3.1.1, clean
// session, keepalive 60 s, no automatic reconnect, client id thalovant-<32 hex> (new on every
// connect), TLS mandatory; topics <prefix>/in (client to hub), <prefix>/out (hub to client)
// and <prefix>/status (last will "offline", "online" once authenticated, both QoS 1 and
// retained). Opening is CONNECT, SUBSCRIBE /out, then the cleartext HELLO published on /in.
// Negotiation JSON goes as UTF-8 text, Noise transport messages as raw bytes, one per publish.

// MQTT carrier settings.
const (
	DefaultMQTTTLSPort = 8883
	MQTTKeepAlive      = 60 * time.Second
	MQTTCloseTimeout   = 2 * time.Second
	MaxMQTTInbound     = 256
)

// MQTTSettings are the validated broker settings of one identity.
type MQTTSettings struct {
	Host     string
	Port     int
	Username string
	Password string
	Inbound  string // <prefix>/in
	Outbound string // <prefix>/out
	Status   string // <prefix>/status
	QoS      byte
}

// NewMQTTSettings checks an identity's MQTT block (dataplane.md 4.3 preconditions): a
// mqtt://, mqtts://, tcp:// or ssl:// endpoint with a host, TLS, a usable topic prefix.
func NewMQTTSettings(endpoint, username, password, topicPrefix string, qos int, tls bool) (MQTTSettings, error) {
	target := strings.TrimSpace(endpoint)
	if !strings.Contains(target, "://") {
		target = "mqtt://" + target
	}
	parts, err := url.Parse(target)
	scheme := ""
	if err == nil {
		scheme = strings.ToLower(parts.Scheme)
	}
	if err != nil || (scheme != "mqtt" && scheme != "mqtts" && scheme != "tcp" && scheme != "ssl") || parts.Hostname() == "" {
		return MQTTSettings{}, fmt.Errorf("the MQTT endpoint must be an mqtt://, mqtts://, tcp:// or ssl:// URL with a host")
	}
	if !tls && scheme != "mqtts" && scheme != "ssl" {
		return MQTTSettings{}, fmt.Errorf("HiveMind MQTT requires a broker connection with TLS")
	}
	port := DefaultMQTTTLSPort
	if parts.Port() != "" {
		if port, err = strconv.Atoi(parts.Port()); err != nil || port <= 0 {
			return MQTTSettings{}, fmt.Errorf("the MQTT endpoint has an invalid port")
		}
	}
	prefix := strings.Trim(strings.TrimSpace(strings.Trim(strings.TrimSpace(topicPrefix), "/")), "/")
	if prefix == "" {
		return MQTTSettings{}, fmt.Errorf("the identity's MQTT block has no topic_prefix; MQTT needs one")
	}
	if strings.ContainsAny(prefix, "#+") || strings.IndexFunc(prefix, unicode.IsControl) >= 0 {
		return MQTTSettings{}, fmt.Errorf("the MQTT topic_prefix must not contain '#', '+' or control characters")
	}
	q := byte(1)
	if qos == 0 {
		q = 0
	}
	return MQTTSettings{Host: parts.Hostname(), Port: port, Username: username, Password: password,
		Inbound: prefix + "/in", Outbound: prefix + "/out", Status: prefix + "/status", QoS: q}, nil
}

// MQTT is one MQTT session with a hub through a broker.
type MQTT struct {
	settings      MQTTSettings
	pinID         string
	insecure      bool
	sessionID     string
	siteID        string
	helloText     func(sessionID, siteID string) []byte
	client        paho.Client
	q             *queue
	mu            sync.Mutex
	authenticated bool
	open          bool
	closeOnce     sync.Once
}

// NewMQTT prepares the carrier; helloText builds the cleartext HELLO of a session.
func NewMQTT(settings MQTTSettings, pinID, siteID string, insecure bool, helloText func(sessionID, siteID string) []byte) *MQTT {
	return &MQTT{settings: settings, pinID: pinID, siteID: siteID, insecure: insecure, helloText: helloText,
		sessionID: "thalovant-go-mqtt-" + randomHex(16), q: newQueue(MaxMQTTInbound)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *MQTT) Protocol() string { return "mqtt" }
func (m *MQTT) PinID() string    { return m.pinID }

// SharedInbound is true: <prefix>/out is the identity's, and the negotiation skips another
// session's answers on it.
func (m *MQTT) SharedInbound() bool { return true }

// Endpoint is mqtts://host:port.
func (m *MQTT) Endpoint() string {
	return "mqtts://" + net.JoinHostPort(m.settings.Host, strconv.Itoa(m.settings.Port))
}

// BindSession makes the cleartext HELLO the same object as the encrypted one.
func (m *MQTT) BindSession(sessionID, siteID string) {
	m.sessionID = sessionID
	if siteID != "" {
		m.siteID = siteID
	}
}

func (m *MQTT) Alive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open && !m.q.isFailed() && m.client != nil && m.client.IsConnectionOpen()
}

func wait(ctx context.Context, token paho.Token) error {
	select {
	case <-token.Done():
		return token.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open connects, subscribes to /out and publishes the cleartext HELLO on /in.
func (m *MQTT) Open(ctx context.Context) error {
	tlsConfig, err := TLSConfig(m.insecure)
	if err != nil {
		return &OpenError{Message: err.Error()}
	}
	timeout := SendTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	options := paho.NewClientOptions().
		AddBroker("tls://"+net.JoinHostPort(m.settings.Host, strconv.Itoa(m.settings.Port))).
		SetClientID("thalovant-"+randomHex(16)).
		SetUsername(m.settings.Username).SetPassword(m.settings.Password).
		SetTLSConfig(tlsConfig).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(MQTTKeepAlive).
		SetConnectTimeout(timeout).SetWriteTimeout(SendTimeout).SetOrderMatters(true).
		SetWill(m.settings.Status, "offline", 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			m.q.fail(closed("The MQTT broker connection was lost (%v).", err))
		})
	client := paho.NewClient(options)
	m.mu.Lock()
	m.client = client
	m.mu.Unlock()
	if err := wait(ctx, client.Connect()); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &OpenError{Message: "Cannot reach the MQTT broker: " + err.Error()}
	}
	subscribe := client.Subscribe(m.settings.Outbound, m.settings.QoS, m.onMessage)
	if err := wait(ctx, subscribe); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &OpenError{Message: "Cannot subscribe to the hub's topic: " + err.Error()}
	}
	if sub, ok := subscribe.(*paho.SubscribeToken); ok {
		for _, code := range sub.Result() {
			if code >= 128 {
				return &OpenError{Message: "The MQTT broker refused the subscription to the hub's topic."}
			}
		}
	}
	m.mu.Lock()
	m.open = true
	m.mu.Unlock()
	if err := m.publish(ctx, m.settings.Inbound, m.helloText(m.sessionID, m.siteID), m.settings.QoS, false); err != nil {
		return &OpenError{Message: err.Error()}
	}
	return nil
}

// onMessage runs on paho's router goroutine: it queues without blocking.
func (m *MQTT) onMessage(_ paho.Client, message paho.Message) {
	if message.Topic() != m.settings.Outbound || m.q.isFailed() {
		return
	}
	payload := append([]byte(nil), message.Payload()...)
	m.mu.Lock()
	authenticated := m.authenticated
	m.mu.Unlock()
	binary := authenticated || !isText(payload)
	if binary && !authenticated {
		// The /out topic outlives sessions: a transport message arriving before this session
		// is authenticated belongs to an earlier session of the same identity (answers the
		// hub published after that client left). It can never be part of this handshake.
		return
	}
	select {
	case m.q.inbound <- Message{Binary: binary, Data: payload}:
	default:
		m.q.fail(closed("More than %d MQTT messages queued; disconnecting.", MaxMQTTInbound))
	}
}

// isText tells a negotiation message (a UTF-8 JSON object) from a Noise transport message. A
// sealed message starts with '{' once in 256; without the UTF-8 check such a message (one the
// hub sent an earlier session of the identity) was taken for malformed negotiation text.
func isText(payload []byte) bool {
	return strings.HasPrefix(strings.TrimLeft(string(payload[:min(len(payload), 64)]), " \t\r\n"), "{") && utf8.Valid(payload)
}

func (m *MQTT) publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if m.q.isFailed() {
		return m.q.failure
	}
	m.mu.Lock()
	client, open := m.client, m.open
	m.mu.Unlock()
	if client == nil || !open {
		return closed("The MQTT session is not open.")
	}
	ctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	if err := wait(ctx, client.Publish(topic, qos, retain, payload)); err != nil {
		failure := closed("The broker did not acknowledge a publish: %v", err)
		m.q.fail(failure)
		return failure
	}
	return nil
}

func (m *MQTT) SendText(ctx context.Context, text []byte) error {
	return m.publish(ctx, m.settings.Inbound, text, m.settings.QoS, false)
}

// SendBinary publishes one transport message; after the first (the encrypted HELLO) the
// client announces itself online on the status topic.
func (m *MQTT) SendBinary(ctx context.Context, data []byte) error {
	m.mu.Lock()
	first := !m.authenticated
	m.authenticated = true
	m.mu.Unlock()
	if err := m.publish(ctx, m.settings.Inbound, data, m.settings.QoS, false); err != nil {
		return err
	}
	if first {
		m.mu.Lock()
		client := m.client
		m.mu.Unlock()
		client.Publish(m.settings.Status, 1, true, []byte("online")) // not awaited
	}
	return nil
}

func (m *MQTT) Receive(ctx context.Context) (Message, error) { return m.q.receive(ctx) }

// Close publishes "offline", disconnects and stops paho's goroutines.
func (m *MQTT) Close() {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		client, open := m.client, m.open
		m.mu.Unlock()
		if client != nil {
			if open && !m.q.isFailed() && client.IsConnectionOpen() {
				ctx, cancel := context.WithTimeout(context.Background(), MQTTCloseTimeout)
				_ = wait(ctx, client.Publish(m.settings.Status, 1, true, []byte("offline")))
				cancel()
			}
			client.Disconnect(250)
		}
		m.q.fail(closed("The MQTT session is closed."))
	})
}
