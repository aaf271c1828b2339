package thalovant

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// Version is this SDK's version; DefaultUserAgent goes in the carrier credential, the
// User-Agent header and the default source/platform of every bus context.
const (
	Version          = "0.1.0"
	DefaultUserAgent = "ThalovantGoSDK/" + Version
)

// Runtime client timings (dataplane.md 4, 6, 13).
const (
	DefaultConnectTimeout   = 4 * time.Second
	DefaultHandshakeTimeout = 20 * time.Second
	CarryGrace              = 2 * time.Second
	UntrackedGrace          = 10 * time.Second
	// DefaultSendTimeout is how long Emit, SendUtterance, SendAction and SendCode wait for a
	// link that is down when neither the call nor ClientOptions.SendTimeout says otherwise.
	DefaultSendTimeout = 8 * time.Second
)

// ClientOptions configure a runtime client; the zero value of every field is the default.
type ClientOptions struct {
	// Protocol forces a carrier; "" chooses WSS, then HTTPS, then MQTT (dataplane.md 1.6).
	Protocol HubProtocol
	// NoiseStateDir overrides where the client keeps its Noise key, hub pins and PSK cache.
	NoiseStateDir string
	// ReplySettle is how long Ask keeps collecting speech after the first sentence (0: 250
	// ms; negative: return at the first sentence).
	ReplySettle time.Duration
	// EmptyReplyWait is the window after handled/unmatched without speech (0: 5 s).
	EmptyReplyWait   time.Duration
	ConnectTimeout   time.Duration // 0: 4 s
	HandshakeTimeout time.Duration // 0: 20 s
	UserAgent        string        // "": DefaultUserAgent
	// SendTimeout is how long Emit and the Send* calls wait for a link that is down before
	// they fail (0: DefaultSendTimeout); a context deadline that comes first wins.
	SendTimeout time.Duration
	// DisableAutoReconnect stops the background redial of a dropped link; a request made
	// while the link is down then makes one connect attempt itself and fails with its error.
	DisableAutoReconnect bool
	// InsecureSkipVerify turns TLS verification off (development only; never the default).
	InsecureSkipVerify bool
}

// RequestOptions are the per-request options of Ask and SendUtterance.
type RequestOptions struct {
	Lang      string         // "": en-us
	SessionID string         // "": the conversation's or the connection's session
	RequestID string         // "": a new thalovant-request-<hex>
	Context   map[string]any // caller context (see BuildClientContext)
	// Timeout bounds the request, a wait for a link that is down included: for Ask the wait
	// and the reply (0: DefaultAskTimeout), for SendUtterance the wait (0: the client's
	// SendTimeout). A context deadline that comes first wins.
	Timeout time.Duration
}

// ActionOptions are the options of SendAction.
type ActionOptions struct {
	Title     string // "": the payload
	SessionID string
	Context   map[string]any
	Lang      string
}

// CodeOptions are the options of SendCode.
type CodeOptions struct {
	Kind      string // "": code
	Label     string // "": the kind
	SessionID string
	Context   map[string]any
	Lang      string
}

// ConversationOptions are the options of Conversation.
type ConversationOptions struct {
	Lang      string
	SessionID string // "": a new thalovant-session-<hex>
}

// SelectProtocol is the carrier a client of identity uses (dataplane.md 1.6): a forced one if
// the identity can use it; else WSS (flag on and an endpoint), then HTTPS, then MQTT.
func SelectProtocol(identity *Identity, forced HubProtocol) (HubProtocol, error) {
	if forced != "" {
		wanted := CanonicalProtocol(string(forced))
		switch {
		case wanted == "" || strings.EqualFold(string(forced), "websocket") || strings.EqualFold(string(forced), "mqtts"):
			return "", newErr(ErrUnsupportedProtocol, "Unknown protocol %q; use one of wss, https, mqtt.", forced)
		case wanted == ProtocolWSS && identity.EndpointFor(ProtocolWSS) == "":
			return "", newErr(ErrUnsupportedProtocol, "This identity has no WSS endpoint; it cannot use wss.")
		case wanted == ProtocolMQTT && identity.MQTT == nil:
			return "", newErr(ErrUnsupportedProtocol, "This identity has no MQTT broker credentials; it cannot use mqtt.")
		}
		return wanted, nil
	}
	switch {
	case identity.SupportsProtocol(ProtocolWSS) && identity.EndpointFor(ProtocolWSS) != "":
		return ProtocolWSS, nil
	case identity.SupportsProtocol(ProtocolHTTPS):
		return ProtocolHTTPS, nil
	case identity.SupportsProtocol(ProtocolMQTT) && identity.MQTT != nil:
		return ProtocolMQTT, nil
	}
	return ProtocolHTTPS, nil // EndpointBase is never empty: the fallback of dataplane.md 1.6
}

// Client is a runtime client for one hub identity. It owns at most one link at a time. Every
// loss of the link, however it is noticed (the reader, a failed send, a request finding it
// dead), starts the same background reconnect loop unless DisableAutoReconnect is set; the
// loop follows the schedule and the stopping rules of the failure policy (policy.go: every
// 0.5-1 s during the first minute of an outage, then backing off to 15-30 s; it stops for a
// changed hub key, a rejected client key, or ten minutes of refusals).
//
// A request made while the link is down (Ask, Emit, the Send* calls, conversation asks) waits
// for the loop to bring the link back, up to its own timeout (RequestOptions.Timeout,
// ClientOptions.SendTimeout or the context deadline), and is then sent; it fails at once with
// the policy's error when the hub refuses this client or a key is rejected or changed, or
// when the loop has stopped for good (Connect starts over). A message already sent is never
// sent again, except that an ask with nothing received for its request yet is sent again,
// with the same request id, on the next link when the hub closed the link saying it is going
// away or restarting (WebSocket 1001 or 1012). Close ends every goroutine the client started
// and waits for them.
type Client struct {
	Identity  *Identity
	Protocol  HubProtocol
	Transport *Transport

	options   ClientOptions
	useragent string
	store     *NoiseStore

	connectMu sync.Mutex // one connect at a time
	mu        sync.Mutex
	link      *link
	lastError string
	closed    bool
	reconnect *supervisor
	// downSince is when the link was lost (or the first attempt failed), zero while it is up;
	// refusedSince is when the hub began refusing without a break, zero otherwise.
	downSince    time.Time
	refusedSince time.Time
	// attempts counts finished connect attempts; attemptErr is the error of the last one (nil
	// after a success); stopped is the error that stopped the reconnect loop for good.
	attempts   int
	attemptErr error
	stopped    error
	waiting    int           // requests waiting for the link
	resent     int           // asks sent again after a restart close
	changed    chan struct{} // closed and replaced whenever the link or an attempt's outcome changes

	collectors map[string]*replyCollector
	// carryWatch maps the request id of an ask to its session while a handled event for it
	// still updates the conversation state: from the send until CarryGrace after the ask
	// ended, the time carryEnds holds for it (in the order the asks ended)
	carryWatch    map[string]string
	carryEnds     []carryEnd
	carried       map[string]map[string]any // per session, carriedFields: replaced, never modified
	lastUntracked time.Time
}

// NewClient is NewClientWithOptions with the default options.
func NewClient(identity *Identity) (*Client, error) {
	return NewClientWithOptions(identity, ClientOptions{})
}

// NewClientWithOptions makes a client (no I/O yet); ErrUnsupportedProtocol when the identity
// cannot use the forced protocol.
func NewClientWithOptions(identity *Identity, options ClientOptions) (*Client, error) {
	if identity == nil {
		return nil, newErr(ErrIdentity, "A client needs an identity.")
	}
	protocolName, err := SelectProtocol(identity, options.Protocol)
	if err != nil {
		return nil, err
	}
	c := &Client{
		Identity: identity, Protocol: protocolName, Transport: newTransport(protocolName), options: options,
		useragent: options.UserAgent, changed: make(chan struct{}),
		collectors: map[string]*replyCollector{}, carryWatch: map[string]string{}, carried: map[string]map[string]any{},
	}
	if c.useragent == "" {
		c.useragent = DefaultUserAgent
	}
	if _, err := c.newCarrier(); err != nil { // fail early on a carrier this identity lacks
		return nil, err
	}
	hubHost := ""
	if parts, err := url.Parse(identity.EndpointFor(protocolName)); err == nil {
		hubHost = parts.Hostname()
	}
	c.store = noiseStoreFor(options.NoiseStateDir, identity.SourcePath, hubHost)
	return c, nil
}

// NewClientFromFile is a client for an identity file (0600).
func NewClientFromFile(path string) (*Client, error) {
	identity, err := IdentityFromFile(path)
	if err != nil {
		return nil, err
	}
	return NewClient(identity)
}

// NewClientFromConfig is a client for the identity of a config profile ("" for the defaults).
func NewClientFromConfig(path, profile string) (*Client, error) {
	identity, err := IdentityFromConfig(path, profile)
	if err != nil {
		return nil, err
	}
	return NewClient(identity)
}

// NewClientFromEnv is a client for the identity in the THALOVANT_* variables.
func NewClientFromEnv() (*Client, error) {
	identity, err := IdentityFromEnv()
	if err != nil {
		return nil, err
	}
	return NewClient(identity)
}

// NoiseStore is where this client keeps its Noise key, hub pins and PSK cache.
func (c *Client) NoiseStore() *NoiseStore { return c.store }

func (c *Client) newCarrier() (carrier.Carrier, error) {
	id := c.Identity
	switch c.Protocol {
	case ProtocolWSS:
		endpoint := id.EndpointFor(ProtocolWSS)
		if endpoint == "" {
			return nil, newErr(ErrUnsupportedProtocol, "This identity has no WSS endpoint.")
		}
		w, err := carrier.NewWSS(endpoint, id.AccessKey, c.useragent, c.options.InsecureSkipVerify)
		if err != nil {
			return nil, wrapErr(ErrUnsupportedProtocol, err, "%v", err)
		}
		return w, nil
	case ProtocolMQTT:
		m := id.MQTT
		if m == nil {
			return nil, newErr(ErrUnsupportedProtocol, "This identity has no MQTT broker credentials; it cannot use mqtt.")
		}
		settings, err := carrier.NewMQTTSettings(m.Endpoint, m.Username, m.Password, m.TopicPrefix, m.QoS, m.TLS)
		if err != nil {
			return nil, wrapErr(ErrUnsupportedProtocol, err, "%s.", capitalise(err.Error()))
		}
		// MQTT shares the HTTPS pin (dataplane.md 1.8)
		return carrier.NewMQTT(settings, strings.TrimRight(id.EndpointBase(), "/"), id.SiteID, c.options.InsecureSkipVerify, helloText), nil
	}
	return carrier.NewHTTPS(id.EndpointBase(), id.AccessKey, c.useragent, c.options.InsecureSkipVerify), nil
}

func capitalise(text string) string {
	if text == "" {
		return text
	}
	return strings.ToUpper(text[:1]) + text[1:]
}

func helloText(sessionID, siteID string) []byte {
	body, _ := protocol.HelloEnvelope(sessionID, siteID).Bytes()
	return body
}

func (c *Client) durations() (connect, handshake, settle, emptyWait time.Duration) {
	connect, handshake, settle, emptyWait = c.options.ConnectTimeout, c.options.HandshakeTimeout, c.options.ReplySettle, c.options.EmptyReplyWait
	if connect <= 0 {
		connect = DefaultConnectTimeout
	}
	if handshake <= 0 {
		handshake = DefaultHandshakeTimeout
	}
	if settle == 0 {
		settle = DefaultReplySettle
	}
	if emptyWait <= 0 {
		emptyWait = DefaultEmptyReplyWait
	}
	return
}

// Connected is true while the link is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	l := c.link
	c.mu.Unlock()
	return l != nil && l.alive()
}

// SessionID is the connection SID of the live link (the default session of its messages).
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link == nil {
		return ""
	}
	return c.link.sessionID
}

// NoisePattern is the Noise pattern of the live link (XXpsk2 on first contact, KKpsk0 after).
func (c *Client) NoisePattern() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link == nil {
		return ""
	}
	return c.link.pattern
}

// Connect connects and authenticates, unless already connected. It returns the typed
// errors: ErrHubRefused, ErrClientKeyRejected, ErrHubKeyChanged, ErrTimeout, ErrConnection.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.closed = false
		c.Transport.reopen()
	}
	c.mu.Unlock()
	return c.connect(ctx)
}

func (c *Client) connect(ctx context.Context) error {
	c.connectMu.Lock()
	defer c.connectMu.Unlock()
	if c.Connected() {
		return nil
	}
	c.mu.Lock()
	old := c.link
	c.mu.Unlock()
	if old != nil {
		old.lost(newErr(ErrConnection, "The hub connection dropped."))
		c.mu.Lock()
		c.link = nil
		c.mu.Unlock()
		old.close()
	}
	connectTimeout, handshakeTimeout, _, _ := c.durations()
	est := &establishment{
		makeCarrier: c.newCarrier, store: c.store,
		credentials: credentials{AccessKey: c.Identity.AccessKey, Password: c.Identity.Password, SiteID: c.Identity.SiteID},
		sessionID:   connectionSessionID(), connectTimeout: connectTimeout, handshakeTimeout: handshakeTimeout,
	}
	l, err := est.establish(ctx)
	if err != nil {
		c.recordFailure(err)
		return err
	}
	l.onEnvelope = c.onEnvelope
	l.onBinary = func(*protocol.Wire1Frame) {}
	l.onLost = c.onLost
	c.mu.Lock()
	if c.closed { // closed while connecting
		c.mu.Unlock()
		l.close()
		return newErr(ErrConnection, "The client was closed.")
	}
	c.link, c.lastError = l, ""
	c.downSince, c.refusedSince = time.Time{}, time.Time{}
	c.attempts++
	c.attemptErr, c.stopped = nil, nil
	c.signalChange()
	c.mu.Unlock()
	l.start()
	return nil
}

// recordFailure notes a failed connect attempt for the reconnect loop: the outage began now
// unless it already had, and a refusal extends (anything else breaks) the run of refusals.
func (c *Client) recordFailure(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastError = err.Error()
	c.attempts++
	c.attemptErr = err
	now := time.Now()
	if c.downSince.IsZero() {
		c.downSince = now
	}
	if verdictOf(err) != verdictRefused {
		c.refusedSince = time.Time{}
	} else if c.refusedSince.IsZero() {
		c.refusedSince = now
	}
	c.signalChange()
}

// signalChange wakes whoever waits for the link to come up or go down. Called with c.mu held.
func (c *Client) signalChange() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitLink is the live link, waiting up to timeout (and ctx) while it is down. A link found
// dead is reported lost first, so that it ends in the reconnect loop like every other loss;
// the loop is started (first attempt at once) if it is not running. The wait ends early with
// the policy's error when an attempt made meanwhile fails in a way waiting cannot help
// (waiterGivesUp), or the loop has stopped for good. Without auto-reconnect it is one connect
// attempt.
func (c *Client) waitLink(ctx context.Context, timeout time.Duration) (*link, error) {
	c.mu.Lock()
	closed, l := c.closed, c.link
	c.mu.Unlock()
	if closed {
		return nil, newErr(ErrConnection, "The client is closed; call Connect to use it again.")
	}
	if l != nil && l.alive() {
		return l, nil
	}
	if l != nil {
		l.lost(newErr(ErrConnection, "The hub connection dropped."))
	}
	if c.options.DisableAutoReconnect {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.link == nil {
			return nil, newErr(ErrConnection, "The hub connection is down.")
		}
		return c.link, nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c.mu.Lock()
	c.waiting++
	c.signalChange()
	defer func() {
		c.waiting--
		c.mu.Unlock()
	}()
	seen := c.attempts
	for {
		switch {
		case c.closed:
			return nil, newErr(ErrConnection, "The client was closed.")
		case c.link != nil && c.link.alive():
			return c.link, nil
		case c.stopped != nil:
			return nil, c.stopped
		case c.attempts > seen && c.attemptErr != nil && waiterGivesUp(c.attemptErr):
			return nil, c.attemptErr
		case waitCtx.Err() != nil:
			last := ""
			if c.lastError != "" {
				last = " (last error: " + redactError(c.lastError) + ")"
			}
			if ctx.Err() != nil {
				return nil, wrapErr(ErrConnection, ctx.Err(), "Stopped waiting for the hub link: %v%s.", ctx.Err(), last)
			}
			return nil, wrapErr(ErrConnection, waitCtx.Err(), "The hub link was not back within %s%s.", timeout.Round(time.Millisecond), last)
		}
		if c.reconnect == nil {
			c.reconnect = newSupervisor(func(ctx context.Context) { c.reconnectLoop(ctx, true) })
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-waitCtx.Done():
		}
		c.mu.Lock()
	}
}

// deliver sends the message build makes for the live link, waiting up to timeout for the link
// (waitLink). A message that found the link down before anything went out is built again for
// the next link and sent there; nothing that went out is sent again.
func (c *Client) deliver(ctx context.Context, timeout time.Duration, build func(*link) protocol.HiveMessage) error {
	deadline := time.Now().Add(timeout)
	for {
		l, err := c.waitLink(ctx, time.Until(deadline))
		if err != nil {
			return err
		}
		c.Transport.markPublication()
		err = l.send(ctx, build(l))
		if err == nil || !errors.Is(err, errNotSent) || ctx.Err() != nil || !time.Now().Before(deadline) {
			return err
		}
	}
}

// sendTimeout is how long a send without a timeout of its own waits for the link.
func (c *Client) sendTimeout() time.Duration {
	if c.options.SendTimeout > 0 {
		return c.options.SendTimeout
	}
	return DefaultSendTimeout
}

// onLost handles the loss of an established link: asks waiting for a reply fail (their
// message went out), except that, when the hub closed saying it is going away or restarting
// (resendUnanswered), an ask with nothing received yet is told to send again; the reconnect
// loop starts.
func (c *Client) onLost(err error) {
	var closedErr *carrier.ClosedError
	code := 0
	if errors.As(err, &closedErr) {
		code = closedErr.Code
	}
	resend := resendUnanswered(code) && !c.options.DisableAutoReconnect
	c.mu.Lock()
	c.lastError = err.Error()
	c.downSince = time.Now()
	c.signalChange()
	collectors := make([]*replyCollector, 0, len(c.collectors))
	for _, collector := range c.collectors {
		collectors = append(collectors, collector)
	}
	closed := c.closed
	start := !closed && !c.options.DisableAutoReconnect && c.reconnect == nil
	if start {
		c.reconnect = newSupervisor(func(ctx context.Context) { c.reconnectLoop(ctx, false) })
	}
	c.mu.Unlock()
	for _, collector := range collectors {
		if resend && collector.abortIfUnanswered(errSendAgain) {
			continue
		}
		collector.abort(wrapErr(ErrConnection, err, "The hub connection dropped before the reply: %v", err))
	}
}

// reconnectLoop redials until the link is up, the client is closed, or nextStep says stop
// (then stopped holds the error and waiters get it); each attempt comes after the delay of
// defaultRetrySchedule, the first at once when immediate (a waiter found no loop running).
func (c *Client) reconnectLoop(ctx context.Context, immediate bool) {
	defer func() {
		c.mu.Lock()
		c.reconnect = nil
		c.mu.Unlock()
	}()
	schedule, late := defaultRetrySchedule, 0
	for {
		c.mu.Lock()
		downFor := sinceOrZero(c.downSince)
		c.mu.Unlock()
		wait := schedule.delay(late, downFor, rand.Float64)
		if immediate {
			wait, immediate = 0, false
		} else if downFor >= schedule.restartWindow {
			late++
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if c.Connected() {
			return
		}
		err := c.connect(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		refusedFor := sinceOrZero(c.refusedSince)
		stop := nextStep(err, refusedFor) == stepStop
		if stop {
			c.stopped = err
			c.signalChange()
		}
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

// sinceOrZero is the time since t, or 0 for the zero time.
func sinceOrZero(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}

// IsFatalConnectError is true for errors no retry can fix (hub key changed, client key
// rejected): supervisors stop. It is the failure policy's stopping rule without the time limit
// on refusals (policy.go, nextStep).
func IsFatalConnectError(err error) bool {
	return err != nil && nextStep(err, 0) == stepStop
}

// Close closes the link (normal close), stops reconnecting, ends pending asks and event
// channels, and waits for every goroutine the client started. Idempotent.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.signalChange()
	reconnect := c.reconnect
	collectors := make([]*replyCollector, 0, len(c.collectors))
	for _, collector := range c.collectors {
		collectors = append(collectors, collector)
	}
	c.mu.Unlock()
	if reconnect != nil {
		reconnect.stop()
	}
	for _, collector := range collectors {
		collector.abort(newErr(ErrConnection, "The client was closed."))
	}
	c.connectMu.Lock() // a connect in progress finishes (and sees closed) first
	c.mu.Lock()
	l := c.link
	c.link = nil
	c.mu.Unlock()
	c.connectMu.Unlock()
	if l != nil {
		l.close()
	}
	c.Transport.shutdown()
	return ctx.Err()
}

// Healthcheck connects if needed, then reports the link state (no network round trip).
func (c *Client) Healthcheck() Health {
	errText := ""
	if !c.Connected() {
		connectTimeout, handshakeTimeout, _, _ := c.durations()
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout+handshakeTimeout+RefusalSettle)
		if err := c.connect(ctx); err != nil {
			errText = err.Error()
		}
		cancel()
	}
	c.mu.Lock()
	l, closed, lastError := c.link, c.closed, c.lastError
	c.mu.Unlock()
	health := Health{Protocol: c.Protocol, Endpoint: c.Identity.EndpointFor(c.Protocol)}
	if l != nil {
		health.Connected = !closed
		health.HandshakeComplete = l.pattern != ""
		health.TransportAlive = l.alive()
		health.NoisePattern = l.pattern
	}
	if errText == "" && !health.TransportAlive {
		errText = lastError
	}
	health.LastError = redactError(errText)
	return health
}

// redactError cuts everything after '?' (URLs carry the credential).
func redactError(text string) string {
	if i := strings.Index(text, "?"); i >= 0 {
		return text[:i]
	}
	return text
}

// ------------------------------------------------------------------ inbound

func (c *Client) onEnvelope(envelope protocol.HiveMessage) {
	bus, ok := busOf(envelope, c.Identity.SiteID)
	if !ok {
		return
	}
	event := Event{Name: bus.Type, Data: bus.Data, Context: normaliseContext(bus.Context)} // the envelope is ours alone
	rid := event.RequestID()
	c.mu.Lock()
	var target *replyCollector
	if rid != "" {
		target = c.collectors[rid]
		if event.Name == EventUtteranceHandled {
			c.endCarryWatches(time.Now())
			if sid, watched := c.carryWatch[rid]; watched {
				c.rememberConversation(sid, event)
			}
		}
	} else if event.Name == EventPolicyDenied {
		target = c.deniedAsk(event)
	}
	c.mu.Unlock()
	answered := false
	if target != nil && !target.finished() {
		target.feed(event)
		answered = target.finished()
	}
	c.Transport.deliver(event)
	if answered {
		// The asker is ready to run: let it, before this reader goes on to the hub's next
		// messages (often already read: the rest of the reply). With one processor it would
		// otherwise wait for them.
		runtime.Gosched()
	}
}

// busOf is the bus message an inbound envelope delivers to this client, if any.
func busOf(envelope protocol.HiveMessage, siteID string) (protocol.BusMessage, bool) {
	switch envelope.MsgType {
	case "bus":
		return envelope.Bus(), true
	case "broadcast":
		if inner, ok := envelope.Inner(); ok && inner.MsgType == "bus" && envelope.TargetSiteID == siteID {
			return inner.Bus(), true
		}
	}
	return protocol.BusMessage{}, false
}

// normaliseContext drops hivemind_verified_source_peer and renames destination to source
// (dataplane.md 7.3), in context itself, and returns it. (destination goes before source is
// set: a map full at eight keys would otherwise grow for the assignment.)
func normaliseContext(context map[string]any) map[string]any {
	delete(context, "hivemind_verified_source_peer")
	if destination, ok := context["destination"]; ok {
		delete(context, "destination")
		context["source"] = destination
	}
	return context
}

// deniedAsk is the only ask in flight, for a denial without a request id, when no untracked
// utterance went out in the last 10 s (dataplane.md 6.5). Called with c.mu held.
func (c *Client) deniedAsk(event Event) *replyCollector {
	if nonEmpty(event.Data["denied_type"]) != EventRecognizerLoopUtterance || len(c.collectors) != 1 {
		return nil
	}
	if time.Since(c.lastUntracked) < UntrackedGrace {
		return nil
	}
	for _, collector := range c.collectors {
		return collector
	}
	return nil
}

// carryEnd is when the carry watch of an ask's request id ends.
type carryEnd struct {
	requestID string
	at        time.Time
}

// endCarryWatches drops the carry watches whose time is up at now. Called with c.mu held.
func (c *Client) endCarryWatches(now time.Time) {
	ended := 0
	for ended < len(c.carryEnds) && !c.carryEnds[ended].at.After(now) {
		delete(c.carryWatch, c.carryEnds[ended].requestID)
		ended++
	}
	if ended > 0 {
		clear(c.carryEnds[:ended])
		c.carryEnds = c.carryEnds[ended:]
	}
}

// rememberConversation keeps the carried session fields under the request's session id and
// the one the hub answered with. Called with c.mu held.
func (c *Client) rememberConversation(requestSession string, event Event) {
	session := mapping(event.Context["session"])
	fields := carriedFields(session)
	keys := []string{requestSession}
	if answered := nonEmpty(session["session_id"]); answered != "" && answered != requestSession {
		keys = append(keys, answered)
	}
	for _, key := range keys {
		if len(fields) > 0 {
			c.carried[key] = fields
		} else {
			delete(c.carried, key)
		}
	}
}

// ------------------------------------------------------------------ publishing

func (c *Client) runtimeContext(context map[string]any, l *link) map[string]any {
	return runtimeContext(context, c.useragent, l.sessionID, c.Identity.SiteID, c.Identity.Metadata)
}

// Emit sends a raw bus event with data and the runtime context (dataplane.md 6.7), waiting up
// to the client's SendTimeout for a link that is down.
func (c *Client) Emit(ctx context.Context, name string, data, context map[string]any) error {
	if strings.TrimSpace(name) == "" {
		return newErr(ErrRuntime, "An event name is a non-empty string.")
	}
	payload := deepCopyMap(data)
	return c.deliver(ctx, c.sendTimeout(), func(l *link) protocol.HiveMessage {
		return protocol.BusEnvelope(name, payload, c.runtimeContext(context, l))
	})
}

type utterance struct {
	text, lang, sessionID, requestID string
	context                          map[string]any
	dataExtra, contextExtra          map[string]any
	ask                              bool
	timeout                          time.Duration // the wait for a link that is down
}

// sendUtterance sends one utterance (waiting up to u.timeout for the link) and returns its
// request id; for an ask, also the collector of its reply, registered before it went out.
func (c *Client) sendUtterance(ctx context.Context, u utterance) (string, *replyCollector, error) {
	if strings.TrimSpace(u.text) == "" {
		return "", nil, newErr(ErrRuntime, "An utterance is a non-empty string.")
	}
	if u.lang == "" {
		u.lang = "en-us"
	}
	rid := u.requestID
	if rid == "" {
		rid = newRequestID()
	}
	var collector *replyCollector
	build := func(l *link) protocol.HiveMessage {
		sid := u.sessionID
		if sid == "" {
			sid = contextSessionID(u.context)
		}
		if sid == "" {
			sid = l.sessionID
		}
		c.mu.Lock()
		var carried map[string]any
		if u.ask {
			carried = c.carried[sid]
		}
		_, data, msgContext := utteranceMessage(strings.TrimSpace(u.text), u.lang, u.sessionID, rid, u.context, c.Identity.SiteID, carried)
		for key, value := range u.dataExtra {
			data[key] = deepCopy(value)
		}
		for key, value := range u.contextExtra {
			msgContext[key] = deepCopy(value)
		}
		if u.ask {
			_, _, settle, emptyWait := c.durations()
			collector = newReplyCollector(rid, sid, settle, emptyWait)
			c.collectors[rid] = collector
			c.carryWatch[rid] = sid
		} else {
			c.lastUntracked = time.Now()
		}
		c.mu.Unlock()
		// msgContext and its session are this message's own (utteranceMessage copies)
		return protocol.BusEnvelope(EventRecognizerLoopUtterance, data,
			withRuntimeContext(msgContext, c.useragent, l.sessionID, c.Identity.SiteID, c.Identity.Metadata))
	}
	if err := c.deliver(ctx, u.timeout, build); err != nil {
		if u.ask {
			c.mu.Lock()
			delete(c.collectors, rid)
			delete(c.carryWatch, rid)
			c.mu.Unlock()
		}
		return "", nil, err
	}
	return rid, collector, nil
}

// Ask sends an utterance and collects the hub's spoken reply (dataplane.md 6.3). While the
// link is down the ask waits for it; options.Timeout covers the wait and the reply. An ask
// with nothing received yet when the hub closes for a restart is sent again (same request id)
// once the link is back.
func (c *Client) Ask(ctx context.Context, text string, options RequestOptions) (*Reply, error) {
	timeout := options.Timeout
	if timeout <= 0 {
		timeout = DefaultAskTimeout
	}
	deadline := time.Now().Add(timeout)
	rid := options.RequestID
	if rid == "" {
		rid = newRequestID()
	}
	defer func() {
		c.mu.Lock()
		delete(c.collectors, rid)
		now := time.Now()
		c.carryEnds = append(c.carryEnds, carryEnd{requestID: rid, at: now.Add(CarryGrace)})
		c.endCarryWatches(now)
		c.mu.Unlock()
	}()
	for {
		_, collector, err := c.sendUtterance(ctx, utterance{text: text, lang: options.Lang, sessionID: options.SessionID,
			requestID: rid, context: options.Context, ask: true, timeout: time.Until(deadline)})
		if err != nil {
			return nil, err
		}
		reply, err := collector.resultWithin(ctx, time.Until(deadline), timeout)
		if !errors.Is(err, errSendAgain) {
			return reply, err
		}
		c.mu.Lock()
		c.resent++
		c.mu.Unlock()
	}
}

// SendUtterance sends speech or chat text without waiting for an answer; while the link is
// down it waits for it up to options.Timeout (0: the client's SendTimeout).
func (c *Client) SendUtterance(ctx context.Context, text string, options RequestOptions) error {
	timeout := options.Timeout
	if timeout <= 0 {
		timeout = c.sendTimeout()
	}
	_, _, err := c.sendUtterance(ctx, utterance{text: text, lang: options.Lang, sessionID: options.SessionID,
		requestID: options.RequestID, context: options.Context, timeout: timeout})
	return err
}

// SendAction sends a button, menu pick or command (context.input.kind = "action"); while the
// link is down it waits for it up to the client's SendTimeout.
func (c *Client) SendAction(ctx context.Context, payload string, options ActionOptions) error {
	title := options.Title
	if title == "" {
		title = payload
	}
	_, _, err := c.sendUtterance(ctx, utterance{text: payload, lang: options.Lang, sessionID: options.SessionID, timeout: c.sendTimeout(),
		context: options.Context, contextExtra: map[string]any{"input": map[string]any{"kind": "action", "title": title, "payload": payload}}})
	return err
}

// SendCode sends an exact value (QR, barcode, serial): input = {kind, label, value, exact};
// while the link is down it waits for it up to the client's SendTimeout.
func (c *Client) SendCode(ctx context.Context, value string, options CodeOptions) error {
	kind := options.Kind
	if kind == "" {
		kind = "code"
	}
	label := options.Label
	if label == "" {
		label = kind
	}
	input := map[string]any{"kind": kind, "label": label, "value": value, "exact": true}
	_, _, err := c.sendUtterance(ctx, utterance{text: value, lang: options.Lang, sessionID: options.SessionID, timeout: c.sendTimeout(),
		context: options.Context, dataExtra: map[string]any{"input": input}, contextExtra: map[string]any{"input": input}})
	return err
}

// Conversation is a series of turns sharing one session id; Ask carries the conversation
// state from turn to turn (dataplane.md 6.6).
type Conversation struct {
	client    *Client
	Lang      string
	SessionID string
}

// Conversation starts a conversation (no I/O).
func (c *Client) Conversation(options ConversationOptions) *Conversation {
	sid := options.SessionID
	if sid == "" {
		sid = newConversationSessionID()
	}
	return &Conversation{client: c, Lang: options.Lang, SessionID: sid}
}

// Ask asks within the conversation's session (options.SessionID is ignored).
func (v *Conversation) Ask(ctx context.Context, text string, options RequestOptions) (*Reply, error) {
	options.SessionID = v.SessionID
	if options.Lang == "" {
		options.Lang = v.Lang
	}
	return v.client.Ask(ctx, text, options)
}

// SendUtterance sends within the conversation's session without waiting.
func (v *Conversation) SendUtterance(ctx context.Context, text string, options RequestOptions) error {
	options.SessionID = v.SessionID
	if options.Lang == "" {
		options.Lang = v.Lang
	}
	return v.client.SendUtterance(ctx, text, options)
}

// Forget drops the carried conversation state of this session.
func (v *Conversation) Forget() {
	v.client.mu.Lock()
	delete(v.client.carried, v.SessionID)
	v.client.mu.Unlock()
}

// supervisor runs one background loop until it returns or stop is called; stop waits for it.
type supervisor struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newSupervisor(loop func(context.Context)) *supervisor {
	ctx, cancel := context.WithCancel(context.Background())
	s := &supervisor{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		loop(ctx)
	}()
	return s
}

func (s *supervisor) stop() {
	s.cancel()
	<-s.done
}
