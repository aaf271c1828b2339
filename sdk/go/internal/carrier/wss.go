package carrier

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// WSS carrier limits (dataplane.md 4.1).
const (
	PingInterval = 20 * time.Second
	PingTimeout  = 10 * time.Second
	MaxWSMessage = 256*1024 + 1024
	wssQueue     = 64
	maxScratch   = 64 * 1024
)

var refusalCloseCodes = map[websocket.StatusCode]bool{
	websocket.StatusNormalClosure: true, websocket.StatusNoStatusRcvd: true, websocket.StatusPolicyViolation: true,
}

// Authorization is base64 (standard, padded) of "<useragent>:<access key>".
func Authorization(useragent, accessKey string) string {
	return base64.StdEncoding.EncodeToString([]byte(useragent + ":" + accessKey))
}

// AuthorizedURL is the endpoint with any authorization query item replaced by this client's.
func AuthorizedURL(endpoint, useragent, accessKey string) (string, error) {
	parts, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	query := parts.Query()
	query.Del("authorization")
	query.Set("authorization", Authorization(useragent, accessKey))
	parts.RawQuery = query.Encode()
	parts.Fragment = ""
	if parts.Path == "" {
		parts.Path = "/"
	}
	return parts.String(), nil
}

// WSSPinID is <scheme>://<host>:<port> of a WSS endpoint (IPv6 hosts bracketed).
func WSSPinID(endpoint string) string {
	parts, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil {
		return endpoint
	}
	scheme := strings.ToLower(parts.Scheme)
	port := parts.Port()
	if port == "" {
		port = map[string]string{"wss": "443", "ws": "80"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(parts.Hostname(), port)
}

// WSS is a WebSocket session with a hub's WSS endpoint (coder/websocket).
type WSS struct {
	endpoint      string
	url           string
	authorization string
	useragent     string
	insecure      bool
	conn          *websocket.Conn
	q             *queue
	// handover passes Serve's handler to the reader; served is the reader's report of the
	// handler error that stopped it
	handover  chan serving
	served    chan error
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewWSS checks the endpoint (ws:// or wss:// with a host) and prepares the carrier.
func NewWSS(endpoint, accessKey, useragent string, insecure bool) (*WSS, error) {
	parts, err := url.Parse(endpoint)
	if err != nil || (parts.Scheme != "ws" && parts.Scheme != "wss") || parts.Hostname() == "" {
		return nil, &OpenError{Message: "The WSS endpoint must be a ws:// or wss:// URL with a host."}
	}
	authorized, err := AuthorizedURL(endpoint, useragent, accessKey)
	if err != nil {
		return nil, &OpenError{Message: "The WSS endpoint is not a valid URL."}
	}
	return &WSS{endpoint: endpoint, url: authorized, authorization: Authorization(useragent, accessKey), useragent: useragent, insecure: insecure,
		q: newQueue(wssQueue), handover: make(chan serving), served: make(chan error, 1), closing: make(chan struct{})}, nil
}

func (w *WSS) Protocol() string                             { return "wss" }
func (w *WSS) PinID() string                                { return WSSPinID(w.endpoint) }
func (w *WSS) Endpoint() string                             { return w.endpoint }
func (w *WSS) BindSession(_, _ string)                      {}
func (w *WSS) SharedInbound() bool                          { return false }
func (w *WSS) Alive() bool                                  { return w.conn != nil && !w.q.isFailed() }
func (w *WSS) scrub(text string) string                     { return scrubCredential(text, w.authorization) }
func (w *WSS) Receive(ctx context.Context) (Message, error) { return w.q.receive(ctx) }

// Open dials the WebSocket (TLS verified, no compression, no subprotocol).
func (w *WSS) Open(ctx context.Context) error {
	tlsConfig, err := TLSConfig(w.insecure)
	if err != nil {
		return &OpenError{Message: err.Error()}
	}
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig, ForceAttemptHTTP2: false}
	conn, response, err := websocket.Dial(ctx, w.url, &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: transport},
		HTTPHeader:      http.Header{"User-Agent": []string{w.useragent}},
		CompressionMode: websocket.CompressionDisabled,
	})
	if response != nil && response.Body != nil {
		_ = response.Body.Close()
	}
	if err != nil {
		transport.CloseIdleConnections()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if response != nil && response.StatusCode != http.StatusSwitchingProtocols {
			status := response.StatusCode
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				return &RefusedError{Message: fmt.Sprintf("The hub refused the WebSocket upgrade (HTTP %d).", status), Status: status}
			}
			return &OpenError{Message: fmt.Sprintf("The hub answered the WebSocket upgrade with HTTP %d.", status)}
		}
		return &OpenError{Message: "Cannot open the WebSocket: " + w.scrub(err.Error())}
	}
	conn.SetReadLimit(MaxWSMessage)
	w.conn = conn
	w.wg.Add(2)
	go w.readLoop()
	go w.pingLoop()
	return nil
}

// serving is what Serve hands the reader: the handler and the context that bounds it.
type serving struct {
	ctx    context.Context
	handle func(Message) error
}

// readLoop reads the WebSocket until it fails or the carrier closes: it queues each message
// for Receive until Serve hands over a handler, then runs the handler itself.
func (w *WSS) readLoop() {
	defer w.wg.Done()
	var scratch bytes.Buffer
	var s serving
	for {
		kind, data, err := w.read(&scratch)
		if err != nil {
			w.q.fail(closeEvidence(err))
			return
		}
		message := Message{Binary: kind == websocket.MessageBinary, Data: data}
		if s.handle == nil {
			select {
			case w.q.inbound <- message:
				continue
			case s = <-w.handover:
				// Serve has stopped taking messages from the queue: what it left there comes first
				if err := w.drain(s); err != nil {
					w.served <- err
					return
				}
			case <-w.closing:
				return
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		if err := s.handle(message); err != nil {
			w.served <- err
			return
		}
	}
}

// drain runs the handler of s on the queued messages.
func (w *WSS) drain(s serving) error {
	for {
		select {
		case message := <-w.q.inbound:
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			if err := s.handle(message); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// Serve implements Server: it handles queued messages itself until the reader has the
// handler, which happens when the reader has the next message in hand.
func (w *WSS) Serve(ctx context.Context, handle func(Message) error) error {
	if w.conn == nil {
		return closed("The WebSocket is not open.")
	}
	s := serving{ctx: ctx, handle: handle}
	for handed := false; !handed; {
		select {
		case message := <-w.q.inbound:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := handle(message); err != nil {
				return err
			}
		case w.handover <- s:
			handed = true
		case <-w.q.failed:
			if err := w.drain(s); err != nil {
				return err
			}
			return w.q.failure
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case err := <-w.served:
		return err
	case <-w.q.failed:
		return w.q.failure
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read returns the next message in a slice of its own size, read through scratch (a buffer
// kept between calls while its capacity stays within maxScratch).
func (w *WSS) read(scratch *bytes.Buffer) (websocket.MessageType, []byte, error) {
	kind, reader, err := w.conn.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	scratch.Reset()
	if _, err := scratch.ReadFrom(reader); err != nil {
		return 0, nil, err
	}
	data := bytes.Clone(scratch.Bytes())
	if scratch.Cap() > maxScratch {
		*scratch = bytes.Buffer{}
	}
	return kind, data, nil
}

func closeEvidence(err error) *ClosedError {
	status := websocket.CloseStatus(err)
	if status == -1 {
		return &ClosedError{Message: "The hub closed the WebSocket (1006)."}
	}
	return &ClosedError{
		Message:       "The hub closed the WebSocket (" + strconv.Itoa(int(status)) + ").",
		Code:          int(status),
		RefusalSignal: refusalCloseCodes[status],
	}
}

// pingLoop pings every PingInterval and drops the link when a pong is late.
func (w *WSS) pingLoop() {
	defer w.wg.Done()
	ticker := time.NewTicker(PingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-w.closing:
			return
		case <-w.q.failed:
			return
		case <-ticker.C:
			ctx, cancel := context.WithTimeout(context.Background(), PingTimeout)
			err := w.conn.Ping(ctx)
			cancel()
			if err != nil {
				w.q.fail(closed("The hub did not answer a WebSocket ping."))
				_ = w.conn.CloseNow()
				return
			}
		}
	}
}

func (w *WSS) send(ctx context.Context, kind websocket.MessageType, data []byte) error {
	if w.conn == nil {
		return closed("The WebSocket is not open.")
	}
	if w.q.isFailed() {
		return w.q.failure
	}
	if err := w.conn.Write(ctx, kind, data); err != nil {
		if w.q.isFailed() {
			return w.q.failure
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return closeEvidence(err)
		}
		return closed("Cannot send on the WebSocket: %s", w.scrub(err.Error()))
	}
	return nil
}

func (w *WSS) SendText(ctx context.Context, text []byte) error {
	return w.send(ctx, websocket.MessageText, text)
}

func (w *WSS) SendBinary(ctx context.Context, data []byte) error {
	return w.send(ctx, websocket.MessageBinary, data)
}

// Close sends a normal close (1000) and waits for the reader and the pinger.
func (w *WSS) Close() {
	w.closeOnce.Do(func() {
		close(w.closing)
		if w.conn != nil {
			if w.q.isFailed() {
				_ = w.conn.CloseNow()
			} else {
				_ = w.conn.Close(websocket.StatusNormalClosure, "")
			}
		}
		w.q.fail(closed("The WebSocket is closed."))
		w.wg.Wait()
	})
}
