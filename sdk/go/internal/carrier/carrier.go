// Package carrier holds the client-side carriers: I/O adapters that move the cleartext
// negotiation (text) and Noise transport messages (binary) between a hub and the protocol
// engine, over WSS, HTTPS polling or MQTT. A carrier knows nothing of Noise, envelopes or bus
// messages. Each carrier owns its connection through one goroutine (a reader, a poller or the
// MQTT client's callbacks feeding an inbound queue, or, once served (Server), running the
// receiver's handler); Close stops it and waits for it.
//
// Close and refusal signals are reported as *ClosedError / *RefusedError with the carrier's own
// evidence (a WebSocket close code, an HTTP status); the connection layer decides, with its
// clocks, whether that means "credentials refused" or "link dropped".
package carrier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
)

// Message is one message from the hub: cleartext negotiation text, or (Binary) a Noise
// transport message. Data is the receiver's: the carrier keeps no reference to it.
type Message struct {
	Binary bool
	Data   []byte
}

// Carrier is one session with a hub over one transport; use a fresh one per connect attempt.
type Carrier interface {
	// Protocol is "wss", "https" or "mqtt".
	Protocol() string
	// PinID is the endpoint id the hub's Noise key is pinned under (dataplane.md 1.8).
	PinID() string
	// Endpoint is the endpoint dialled, without credentials (safe to print).
	Endpoint() string
	// BindSession gives the session and site id of the negotiation's HELLO before Open; only
	// a carrier that sends a cleartext HELLO of its own (MQTT) uses them.
	BindSession(sessionID, siteID string)
	// Open opens the session; *RefusedError, *OpenError, or ctx's error on its deadline.
	Open(ctx context.Context) error
	// SendText sends one cleartext negotiation message.
	SendText(ctx context.Context, text []byte) error
	// SendBinary sends one Noise transport message.
	SendBinary(ctx context.Context, data []byte) error
	// Receive returns the next message from the hub; *ClosedError when the session ended,
	// ctx's error when ctx ends first (the session stays open).
	Receive(ctx context.Context) (Message, error)
	// Close ends the session normally and waits for the carrier's goroutines; idempotent.
	Close()
	// Alive is true while the session is open and the transport healthy.
	Alive() bool
	// SharedInbound is true when the hub's channel to this client outlives the session (MQTT's
	// <prefix>/out, one topic per identity): what the hub sent another session of the same
	// identity may arrive before the answers to this session's HELLO. False: the channel is this
	// session's own.
	SharedInbound() bool
}

// Server is a carrier whose reader goroutine can run the receiver's handling of each message
// itself, instead of handing the message over to a goroutine waiting in Receive.
type Server interface {
	Carrier
	// Serve hands every message from the hub to handle, in order and one at a time: what is
	// queued for Receive first, then each message as it is read, on the carrier's reader
	// goroutine. It returns the error of handle that stopped it (the carrier then reads no
	// further), the *ClosedError that ended the session, or ctx's error once ctx ends; no
	// call to handle starts after ctx ended, and Close waits for one still running. Call it
	// once, after Open, in place of any further Receive.
	Serve(ctx context.Context, handle func(Message) error) error
}

// OpenError: the carrier could not open (DNS, TCP, TLS, an unexpected upgrade status).
type OpenError struct{ Message string }

func (e *OpenError) Error() string { return e.Message }

// RefusedError: the hub refused the carrier credential while opening (HTTP 401 or 403).
type RefusedError struct {
	Message string
	Status  int
}

func (e *RefusedError) Error() string { return e.Message }

// ClosedError: the session ended. Code is the carrier's evidence (a WebSocket close code, an
// HTTP status, 0 when there was none); RefusalSignal is true when that evidence is of the kind
// a hub uses to refuse credentials (WSS 1000/1005/1008, HTTPS 401/403).
type ClosedError struct {
	Message       string
	Code          int
	RefusalSignal bool
}

func (e *ClosedError) Error() string { return e.Message }

func closed(format string, args ...any) *ClosedError {
	return &ClosedError{Message: fmt.Sprintf(format, args...)}
}

var authorizationItem = regexp.MustCompile(`authorization=[^&"'\s]*`)

// scrubCredential removes the carrier credential (in every spelling a URL gives it) from text.
func scrubCredential(text, authorization string) string {
	text = authorizationItem.ReplaceAllString(text, "authorization=<redacted>")
	for _, secret := range []string{url.QueryEscape(authorization), authorization} {
		text = strings.ReplaceAll(text, secret, "<redacted>")
	}
	return text
}

// TrustVariables name the CA bundle files a client trusts, the first one set winning.
var TrustVariables = []string{"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"}

// TLSConfig is the client TLS configuration: verified against the CA bundle named by the
// first trust variable set to a file, else the system store; verification is off only when
// insecure is true (development only).
func TLSConfig(insecure bool) (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if insecure {
		config.InsecureSkipVerify = true //nolint:gosec // explicit development opt-in
		return config, nil
	}
	for _, variable := range TrustVariables {
		path := strings.TrimSpace(os.Getenv(variable))
		if path == "" {
			continue
		}
		info, err := os.Stat(path)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read the CA bundle named by %s: %w", variable, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the CA bundle named by %s holds no PEM certificate", variable)
		}
		config.RootCAs = pool
		break
	}
	return config, nil
}

// queue is the inbound side shared by the carriers: a bounded channel of messages fed by the
// carrier's goroutine, and the failure that ended the session.
type queue struct {
	inbound  chan Message
	failed   chan struct{}
	failOnce sync.Once
	failure  *ClosedError // set once, before failed is closed
}

func newQueue(size int) *queue {
	return &queue{inbound: make(chan Message, size), failed: make(chan struct{})}
}

// fail records the first failure and wakes every receiver; later calls, from any goroutine
// (the carrier's reader and Close race when the link ends), are ignored.
func (q *queue) fail(err *ClosedError) {
	q.failOnce.Do(func() {
		q.failure = err
		close(q.failed)
	})
}

func (q *queue) isFailed() bool {
	select {
	case <-q.failed:
		return true
	default:
		return false
	}
}

// receive returns queued messages first, then the failure.
func (q *queue) receive(ctx context.Context) (Message, error) {
	select {
	case message := <-q.inbound:
		return message, nil
	default:
	}
	select {
	case message := <-q.inbound:
		return message, nil
	case <-q.failed:
		select {
		case message := <-q.inbound:
			return message, nil
		default:
		}
		return Message{}, q.failure
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}
