package carrier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/thalovant/thalovant-go-sdk/internal/jsonvalue"
)

// The HTTPS polling carrier (dataplane.md 4.2). A session is a sequence of short requests
// under the identity's EndpointBase: POST /connect opens it (the hub queues its HELLO and
// offer), POST /send_message carries message=<text> during the handshake and
// message=<base64>&binary=1 after it, a poller goroutine GETs /get_messages (and, once this
// side sent its first transport message, /get_binary_messages), and POST /disconnect ends it
// (and is sent before every reconnect). Every request carries the authorization query item,
// the User-Agent header and, once set by the hub, the hivemind_http_replica cookie. All
// requests of one carrier are serialised, redirects are not followed (a 3xx is a failure) and
// 401/403 are the hub's refusal signal.

// HTTPS carrier timings and limits.
const (
	PollInterval       = 100 * time.Millisecond
	ActivePollInterval = 20 * time.Millisecond
	ActiveWindow       = time.Second
	SendTimeout        = 8 * time.Second
	DisconnectTimeout  = 2 * time.Second
	MaxQueued          = 1024
	ReplicaCookie      = "hivemind_http_replica"
	maxResponseBytes   = 4 * 1024 * 1024
)

// admission is what one (endpoint, access key) keeps across carriers: the replica cookie and
// whether the hub may still hold an admission that no /disconnect has ended.
type admission struct {
	mu     sync.Mutex
	cookie string
	held   bool
}

var (
	admissionsMu sync.Mutex
	admissions   = map[string]*admission{}
)

func admissionFor(base, accessKey string) *admission {
	digest := sha256.Sum256([]byte(accessKey))
	key := base + "\x00" + hex.EncodeToString(digest[:16])
	admissionsMu.Lock()
	defer admissionsMu.Unlock()
	a, ok := admissions[key]
	if !ok {
		a = &admission{}
		admissions[key] = a
	}
	return a
}

// HTTPS is an HTTPS polling session with a hub.
type HTTPS struct {
	base          string
	parsed        *url.URL
	authorization string
	useragent     string
	insecure      bool
	admission     *admission
	client        *http.Client
	transport     *http.Transport
	lock          sync.Mutex // one request at a time
	q             *queue
	wake          chan struct{}
	pollCtx       context.Context
	stopPolling   context.CancelFunc
	closeOnce     sync.Once
	wg            sync.WaitGroup
	stateMu       sync.Mutex
	open          bool
	binaryPhase   bool
	activeUntil   time.Time
	unreachable   bool
}

// NewHTTPS prepares a carrier for the HTTPS base (checked when it opens).
func NewHTTPS(base, accessKey, useragent string, insecure bool) *HTTPS {
	base = strings.TrimSpace(base)
	parsed, err := url.Parse(base)
	if err != nil {
		parsed = &url.URL{}
	}
	query := parsed.Query()
	query.Del("authorization")
	query.Set("authorization", Authorization(useragent, accessKey))
	parsed.RawQuery = query.Encode()
	return &HTTPS{
		base: base, parsed: parsed, authorization: Authorization(useragent, accessKey), useragent: useragent,
		insecure: insecure, admission: admissionFor(base, accessKey), q: newQueue(MaxQueued),
		wake: make(chan struct{}, 1),
	}
}

func (h *HTTPS) Protocol() string        { return "https" }
func (h *HTTPS) PinID() string           { return strings.TrimRight(h.base, "/") }
func (h *HTTPS) BindSession(_, _ string) {}
func (h *HTTPS) SharedInbound() bool     { return false }

// Endpoint is the base without credentials.
func (h *HTTPS) Endpoint() string {
	return (&url.URL{Scheme: h.parsed.Scheme, Host: h.parsed.Host, Path: strings.TrimRight(h.parsed.Path, "/")}).String()
}

func (h *HTTPS) Alive() bool {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	return h.open && !h.q.isFailed()
}

func (h *HTTPS) url(path string) string {
	u := *h.parsed
	u.Path = strings.TrimRight(u.Path, "/") + path
	return u.String()
}

func (h *HTTPS) scrub(text string) string { return scrubCredential(text, h.authorization) }

// call sends one request; it returns the hub's JSON object or a *ClosedError with the evidence.
func (h *HTTPS) call(ctx context.Context, method, path string, form url.Values, timeout time.Duration, alreadyDisconnectedOK bool) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	contentType := ""
	if form != nil {
		body, contentType = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	} else if method == http.MethodPost {
		body, contentType = bytes.NewReader(nil), "application/octet-stream"
	}
	request, err := http.NewRequestWithContext(ctx, method, h.url(path), body)
	if err != nil {
		return nil, closed("Cannot build the HTTPS request %s.", path)
	}
	request.Header.Set("User-Agent", h.useragent)
	if contentType != "" {
		request.Header.Set("Content-Type", contentType)
	}
	h.admission.mu.Lock()
	if h.admission.cookie != "" {
		request.Header.Set("Cookie", h.admission.cookie)
	}
	h.admission.mu.Unlock()
	h.lock.Lock()
	response, err := h.client.Do(request)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(io.LimitReader(response.Body, maxResponseBytes))
		_ = response.Body.Close()
	}
	h.lock.Unlock()
	if err != nil {
		h.stateMu.Lock()
		h.unreachable = true
		h.stateMu.Unlock()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &ClosedError{Message: "The hub did not answer " + path + " in time."}
		}
		return nil, closed("HTTPS request %s failed: %s", path, h.scrub(err.Error()))
	}
	h.keepCookie(response)
	return readHubAnswer(path, response.StatusCode, raw, alreadyDisconnectedOK)
}

func (h *HTTPS) keepCookie(response *http.Response) {
	for _, header := range response.Header.Values("Set-Cookie") {
		pair := strings.TrimSpace(strings.SplitN(header, ";", 2)[0])
		if strings.HasPrefix(pair, ReplicaCookie+"=") {
			h.admission.mu.Lock()
			h.admission.cookie = pair
			h.admission.mu.Unlock()
		}
	}
}

func readHubAnswer(path string, status int, raw []byte, alreadyDisconnectedOK bool) (map[string]any, error) {
	switch {
	case status >= 300 && status < 400:
		return nil, &ClosedError{Message: fmt.Sprintf("The hub answered %s with a redirect (HTTP %d); redirects are not followed.", path, status), Code: status}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, &ClosedError{Message: fmt.Sprintf("The hub refused %s (HTTP %d).", path, status), Code: status, RefusalSignal: true}
	case status < 200 || status >= 300:
		return nil, &ClosedError{Message: fmt.Sprintf("The hub answered %s with HTTP %d.", path, status), Code: status}
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil || data == nil {
		return nil, &ClosedError{Message: "Invalid HiveMind HTTP response to " + path + ": not a JSON object.", Code: status}
	}
	if hubError, present := data["error"]; present && jsonvalue.Truthy(hubError) {
		if alreadyDisconnectedOK && hubError == "Already Disconnected" {
			return data, nil
		}
		shown := fmt.Sprint(hubError)
		if len(shown) > 200 {
			shown = shown[:200]
		}
		return nil, &ClosedError{Message: fmt.Sprintf("The hub answered %s with an error: %s", path, shown), Code: status}
	}
	return data, nil
}

// Open refuses a non-https base, sends the /disconnect a predecessor could not, then /connect,
// and starts the poller.
func (h *HTTPS) Open(ctx context.Context) error {
	if h.parsed.Scheme != "https" || h.parsed.Hostname() == "" {
		return &OpenError{Message: fmt.Sprintf("Refusing to use the HTTP transport over %s:// URL; the hub's endpoint base must be an https:// URL with a host.", h.parsed.Scheme)}
	}
	tlsConfig, err := TLSConfig(h.insecure)
	if err != nil {
		return &OpenError{Message: err.Error()}
	}
	h.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig, ForceAttemptHTTP2: false,
		MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second,
	}
	h.client = &http.Client{
		Transport:     h.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline, ok := ctx.Deadline()
	remaining := SendTimeout
	if ok {
		remaining = time.Until(deadline)
	}
	h.admission.mu.Lock()
	held := h.admission.held
	h.admission.mu.Unlock()
	if held {
		if err := h.disconnect(ctx, min(DisconnectTimeout, remaining)); err != nil {
			return &OpenError{Message: fmt.Sprintf("Previous connection cleanup failed (%v); not reconnecting until /disconnect succeeds.", err)}
		}
	}
	data, err := h.call(ctx, http.MethodPost, "/connect", nil, remaining, false)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var closedErr *ClosedError
		if errors.As(err, &closedErr) && closedErr.RefusalSignal {
			return &RefusedError{Message: closedErr.Message, Status: closedErr.Code}
		}
		return &OpenError{Message: err.Error()}
	}
	if status, present := data["status"]; present && status != "Connected" {
		return &OpenError{Message: fmt.Sprintf("The hub answered /connect with status %v.", status)}
	}
	h.admission.mu.Lock()
	h.admission.held = true
	h.admission.mu.Unlock()
	h.stateMu.Lock()
	h.open = true
	h.stateMu.Unlock()
	h.pollCtx, h.stopPolling = context.WithCancel(context.Background())
	h.wg.Add(1)
	go h.pollLoop(h.pollCtx)
	return nil
}

func (h *HTTPS) disconnect(ctx context.Context, timeout time.Duration) error {
	if _, err := h.call(ctx, http.MethodPost, "/disconnect", nil, timeout, true); err != nil {
		return err
	}
	h.admission.mu.Lock()
	h.admission.held = false
	h.admission.mu.Unlock()
	return nil
}

func (h *HTTPS) SendText(ctx context.Context, text []byte) error {
	return h.send(ctx, url.Values{"message": {string(text)}})
}

func (h *HTTPS) SendBinary(ctx context.Context, data []byte) error {
	h.stateMu.Lock()
	h.binaryPhase = true
	h.stateMu.Unlock()
	return h.send(ctx, url.Values{"message": {base64.StdEncoding.EncodeToString(data)}, "binary": {"1"}})
}

func (h *HTTPS) send(ctx context.Context, form url.Values) error {
	if h.q.isFailed() {
		return h.q.failure
	}
	if !h.Alive() {
		return closed("The HTTPS session is not open.")
	}
	if _, err := h.call(ctx, http.MethodPost, "/send_message", form, SendTimeout, false); err != nil {
		var closedErr *ClosedError
		if errors.As(err, &closedErr) {
			h.q.fail(closedErr)
		}
		return err
	}
	h.stateMu.Lock()
	h.activeUntil = time.Now().Add(ActiveWindow)
	h.stateMu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return nil
}

func (h *HTTPS) Receive(ctx context.Context) (Message, error) { return h.q.receive(ctx) }

// pollLoop is the carrier's goroutine: poll, queue what arrived, idle when nothing did.
func (h *HTTPS) pollLoop(ctx context.Context) {
	defer h.wg.Done()
	for {
		received, err := h.pollOnce(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
			default:
				var closedErr *ClosedError
				if !errors.As(err, &closedErr) {
					closedErr = closed("The HTTPS poller failed: %v", err)
				}
				h.q.fail(closedErr)
			}
			return
		}
		if received {
			continue
		}
		h.stateMu.Lock()
		interval := PollInterval
		if time.Now().Before(h.activeUntil) {
			interval = ActivePollInterval
		}
		h.stateMu.Unlock()
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-h.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

func (h *HTTPS) enqueue(ctx context.Context, message Message) error {
	select {
	case h.q.inbound <- message:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *HTTPS) pollOnce(ctx context.Context) (bool, error) {
	h.stateMu.Lock()
	binaryPhase := h.binaryPhase
	h.stateMu.Unlock()
	data, err := h.call(ctx, http.MethodGet, "/get_messages", nil, SendTimeout, false)
	if err != nil {
		return false, err
	}
	messages, ok := stringList(data, "messages")
	if !ok {
		return false, closed("Invalid HiveMind HTTP response to /get_messages: messages is not a list of strings.")
	}
	for _, message := range messages {
		if err := h.enqueue(ctx, Message{Data: []byte(message)}); err != nil {
			return false, err
		}
	}
	received := len(messages)
	if binaryPhase {
		data, err := h.call(ctx, http.MethodGet, "/get_binary_messages", nil, SendTimeout, false)
		if err != nil {
			return false, err
		}
		encoded, ok := stringList(data, "b64_messages")
		if !ok {
			return false, closed("Invalid HiveMind HTTP response to /get_binary_messages: b64_messages is not a list of strings.")
		}
		for _, item := range encoded {
			raw, err := base64.StdEncoding.Strict().DecodeString(item)
			if err != nil {
				return false, closed("Invalid HiveMind HTTP response to /get_binary_messages: an item is not valid base64.")
			}
			if err := h.enqueue(ctx, Message{Binary: true, Data: raw}); err != nil {
				return false, err
			}
		}
		received += len(encoded)
	}
	return received > 0, nil
}

func stringList(data map[string]any, key string) ([]string, bool) {
	raw, present := data[key]
	if !present {
		return nil, true
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// Close stops the poller, sends /disconnect (unless the hub was unreachable) and waits.
func (h *HTTPS) Close() {
	h.closeOnce.Do(func() {
		if h.stopPolling != nil {
			h.stopPolling()
		}
		h.wg.Wait()
		h.stateMu.Lock()
		wasOpen, unreachable := h.open, h.unreachable
		h.stateMu.Unlock()
		h.admission.mu.Lock()
		held := h.admission.held
		h.admission.mu.Unlock()
		if h.client != nil && wasOpen && held && !unreachable {
			_ = h.disconnect(context.Background(), DisconnectTimeout)
		}
		h.q.fail(closed("The HTTPS session is closed."))
		if h.transport != nil {
			h.transport.CloseIdleConnections()
		}
	})
}
