package thalovant

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// Establishing and running one authenticated session with a hub (dataplane.md 2, 3, 4).
//
// establish drives the sans-I/O ClientNegotiation over a fresh carrier: it opens the carrier,
// answers the hub's HELLO and offer, derives (or reuses) the PSK, runs the Noise handshake,
// pins the hub key on first use and sends the encrypted HELLO. A KK attempt the hub cannot
// read is retried at once with XX on a fresh carrier, inside the same call. On a carrier whose
// channel from the hub outlives the session (MQTT), the negotiation skips the hub's answers to
// another session of the identity; an attempt whose message 1 was built on another session's
// HELLO and offer, when the hub's own differ, is retried once the same way. Every failure is
// named here as a stage and the evidence seen; judge (policy.go) turns that into the error
// kind, the XX retry and whether to forget the cached PSK, and failed does what it says.
//
// link is the established session: send seals and sends envelopes; its reader decrypts,
// reassembles and parses what the hub sends and hands it to the client, on the carrier's own
// reader goroutine when the carrier can serve (carrier.Server: WSS), else on a goroutine of
// the link receiving from the carrier. Anything malformed ends the session with an
// ErrConnection error.

// RefusalSettle is how long after an XX handshake a refusal-code close still means "the hub
// refused this client's key".
const RefusalSettle = 750 * time.Millisecond

// pskSlots bounds concurrent argon2id derivations (64 MiB each) to the number of CPUs.
var pskSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

func derivePSK(password, nodeID string) []byte {
	pskSlots <- struct{}{}
	defer func() { <-pskSlots }()
	return protocol.DerivePSK(password, nodeID)
}

type credentials struct {
	AccessKey string
	Password  string
	SiteID    string
}

type linkTimings struct {
	StartedAt   time.Time
	ConnectedAt time.Time
	Handshake   time.Duration
	Connect     time.Duration
	Attempts    int
}

type link struct {
	carrier    carrier.Carrier
	channel    *protocol.SecureChannel
	pattern    string
	sessionID  string
	hubStatic  []byte
	timings    linkTimings
	early      []*protocol.Frame
	sendMu     sync.Mutex
	stateMu    sync.Mutex
	err        error
	closing    bool
	cancel     context.CancelFunc
	done       chan struct{}
	onEnvelope func(protocol.HiveMessage)
	onBinary   func(*protocol.Wire1Frame)
	onLost     func(error)
}

// errNotSent marks a send that found the link down before anything went out: the message may
// be built again for the next link and sent there.
var errNotSent = errors.New("nothing was sent")

// send seals and sends one envelope; the lock keeps nonces and send order together. A send
// that fails reports the link lost (the reader may not have noticed yet); when nothing went out
// the error wraps errNotSent.
func (l *link) send(ctx context.Context, message protocol.HiveMessage) error {
	plaintext, err := protocol.AppendJSONPlaintext(make([]byte, 0, 1024), message)
	if err != nil {
		return wrapErr(ErrConnection, err, "Cannot send this message: %v", err)
	}
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.stateMu.Lock()
	closing, linkErr := l.closing, l.err
	l.stateMu.Unlock()
	if closing || linkErr != nil {
		return wrapErr(ErrConnection, errNotSent, "The hub connection is closed.")
	}
	parts, err := l.channel.SealJSONPlaintext(plaintext)
	if err != nil {
		return wrapErr(ErrConnection, err, "Cannot seal this message: %v", err)
	}
	for i, part := range parts {
		if err := l.carrier.SendBinary(ctx, part); err != nil {
			failure := wrapErr(ErrConnection, err, "Cannot send to the hub: %v", err)
			if ctx.Err() == nil {
				l.lost(failure)
			}
			if i == 0 {
				return wrapErr(ErrConnection, errors.Join(errNotSent, err), "Cannot send to the hub: %v", err)
			}
			return failure
		}
	}
	return nil
}

// start delivers the frames read during the settle window, then starts the reader.
func (l *link) start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	early := l.early
	l.early = nil
	go func() {
		defer close(l.done)
		for _, frame := range early {
			if err := l.dispatch(frame); err != nil {
				l.lost(err)
				return
			}
		}
		l.readLoop(ctx)
	}()
}

func (l *link) alive() bool {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return !l.closing && l.err == nil && l.carrier.Alive()
}

func (l *link) readLoop(ctx context.Context) {
	if server, ok := l.carrier.(carrier.Server); ok {
		err := server.Serve(ctx, l.handle)
		var closedErr *carrier.ClosedError
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &closedErr):
			l.lost(wrapErr(ErrConnection, err, "Connection to the hub dropped: %v", err))
		default:
			l.lost(err)
		}
		return
	}
	for {
		message, err := l.carrier.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.lost(wrapErr(ErrConnection, err, "Connection to the hub dropped: %v", err))
			}
			return
		}
		if err := l.handle(message); err != nil {
			l.lost(err)
			return
		}
	}
}

// handle decrypts, reassembles and dispatches one message from the hub; the error ends the
// link.
func (l *link) handle(message carrier.Message) error {
	if !message.Binary {
		return newErr(ErrConnection, "Plaintext received after Noise authentication.")
	}
	frame, err := l.channel.OpenInPlace(message.Data) // the carrier's message is ours
	if err == nil && frame != nil {
		err = l.dispatch(frame)
	}
	if err != nil {
		return wrapErr(ErrConnection, err, "Malformed data from the hub: %v", err)
	}
	return nil
}

func (l *link) dispatch(frame *protocol.Frame) error {
	if !frame.Binary {
		envelope, err := protocol.ParseEnvelope(frame.Body)
		if err != nil {
			return err
		}
		l.onEnvelope(envelope)
		return nil
	}
	decoded, err := protocol.DecodeWire1(frame.Body)
	if err != nil {
		return err
	}
	if decoded.IsBin {
		l.onBinary(decoded)
		return nil
	}
	envelope, err := decoded.Envelope()
	if err != nil {
		return err
	}
	l.onEnvelope(envelope)
	return nil
}

func (l *link) lost(err error) {
	l.stateMu.Lock()
	if l.closing || l.err != nil {
		l.stateMu.Unlock()
		return
	}
	l.err = err
	l.stateMu.Unlock()
	l.carrier.Close()
	l.onLost(err)
}

// close ends the session normally (1000 on WSS) and waits for the reader; no onLost call.
func (l *link) close() {
	l.stateMu.Lock()
	l.closing = true
	l.stateMu.Unlock()
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	l.carrier.Close()
}

// errRetryWithXX asks establish for an immediate XX attempt.
var errRetryWithXX = errors.New("retry with XX")

// errRetryFresh asks establish for an immediate attempt on a fresh carrier session (the attempt
// answered another session's HELLO and offer on a shared channel).
var errRetryFresh = errors.New("retry on a fresh session")

type establishment struct {
	makeCarrier      func() (carrier.Carrier, error)
	store            *NoiseStore
	credentials      credentials
	sessionID        string
	connectTimeout   time.Duration
	handshakeTimeout time.Duration
	// retriedFresh: this connect already made its attempt on a fresh session after a
	// superseded negotiation (set by establish)
	retriedFresh bool
}

// establish opens a carrier and negotiates; it retries at once, on a fresh carrier, when the
// policy says so: with XX when KK fails, once after a superseded negotiation.
func (e *establishment) establish(ctx context.Context) (*link, error) {
	timings := linkTimings{StartedAt: time.Now()}
	forceXX := false
	e.retriedFresh = false
	for {
		timings.Attempts++
		c, err := e.makeCarrier()
		if err != nil {
			return nil, err
		}
		l, err := e.attempt(ctx, c, forceXX, &timings)
		if errors.Is(err, errRetryWithXX) && !forceXX {
			c.Close()
			forceXX = true
			continue
		}
		if errors.Is(err, errRetryFresh) && !e.retriedFresh {
			c.Close()
			e.retriedFresh = true
			continue
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		timings.Connect = time.Since(timings.StartedAt)
		timings.ConnectedAt = time.Now()
		l.timings = timings
		return l, nil
	}
}

// failed is the error of an attempt that failed at stage s with evidence ev (kk: the attempt
// used KK), as judge rules: errRetryWithXX, or an error of the verdict's kind carrying message
// and cause (a rejected client key says why instead). forget drops the cached PSK when the
// judgement says so; it may be nil where the PSK cannot be at stake.
func (e *establishment) failed(s stage, ev evidence, kk bool, forget func(), cause error, message string) error {
	j := judge(s, ev, kk, e.retriedFresh)
	if j.forgetPSK && forget != nil {
		forget()
	}
	switch j.verdict {
	case verdictRetryWithXX:
		return errRetryWithXX
	case verdictRetryFresh:
		return errRetryFresh
	case verdictKeyRejected:
		when := "as the handshake completed"
		if s == stageSettling {
			when = "right after the handshake"
		}
		if cause != nil {
			when += " (" + cause.Error() + ")"
		}
		return e.keyRejected(when)
	}
	return wrapErr(j.verdict.kind(), cause, "%s", message)
}

func (e *establishment) attempt(ctx context.Context, c carrier.Carrier, forceXX bool, timings *linkTimings) (*link, error) {
	c.BindSession(e.sessionID, e.credentials.SiteID)
	openCtx, cancelOpen := context.WithTimeout(ctx, e.connectTimeout)
	err := c.Open(openCtx)
	cancelOpen()
	if err != nil {
		var refused *carrier.RefusedError
		var openErr *carrier.OpenError
		switch {
		case errors.As(err, &refused):
			return nil, e.failed(stageOpening, evidenceRefusal, false, nil, err, "The hub refused this client's credentials: "+err.Error())
		case errors.As(err, &openErr):
			return nil, e.failed(stageOpening, evidenceClosed, false, nil, err, err.Error())
		case ctx.Err() != nil:
			return nil, e.failed(stageOpening, evidenceTimeout, false, nil, ctx.Err(), fmt.Sprintf("Stopped connecting: %v.", ctx.Err()))
		default:
			return nil, e.failed(stageOpening, evidenceTimeout, false, nil, err,
				fmt.Sprintf("Could not open the %s connection within %s.", c.Protocol(), e.connectTimeout))
		}
	}
	handshakeStart := time.Now()
	pinID := c.PinID()
	hubPin, err := e.store.HubPin(pinID)
	if err != nil {
		return nil, err
	}
	static, err := e.store.StaticKey()
	if err != nil {
		return nil, err
	}
	negotiation, err := protocol.NewClientNegotiation(static, e.credentials.SiteID, e.sessionID, hubPin, forceXX)
	if err != nil {
		return nil, wrapErr(ErrConnection, err, "Cannot start the negotiation: %v", err)
	}
	negotiation.SharedChannel = c.SharedInbound()
	hsCtx, cancelHandshake := context.WithTimeout(ctx, e.handshakeTimeout)
	defer cancelHandshake()
	var psk []byte
	pskCached, started := false, false
	forgetPSK := func() {
		if negotiation.NodeID != "" {
			e.store.ForgetPSK(e.credentials.AccessKey, negotiation.NodeID)
		}
	}
	// at is the stage the attempt has reached; kk whether it is a KK attempt
	at := func() stage {
		switch {
		case negotiation.Complete():
			return stageFinishing
		case started:
			return stageHandshake
		}
		return stageNegotiating
	}
	kk := func() bool { return negotiation.Pattern == protocol.PatternKK && !forceXX }
	classify := func(err error) error {
		fail := func(ev evidence, message string, args ...any) error {
			return e.failed(at(), ev, kk(), forgetPSK, err, fmt.Sprintf(message, args...))
		}
		var closedErr *carrier.ClosedError
		switch {
		case errors.As(err, &closedErr) && closedErr.RefusalSignal && started:
			return fail(evidenceRefusal, "The hub refused this client: %v", err)
		case errors.As(err, &closedErr) && closedErr.RefusalSignal:
			return fail(evidenceRefusal, "The hub refused this client's credentials: %v", err)
		case errors.As(err, &closedErr):
			return fail(evidenceClosed, "The hub closed the connection before the handshake completed: %v", err)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			if ctx.Err() != nil {
				return e.failed(at(), evidenceTimeout, kk(), forgetPSK, ctx.Err(), fmt.Sprintf("Stopped the handshake: %v.", ctx.Err()))
			}
			return fail(evidenceTimeout, "The hub did not complete the handshake within %s.", e.handshakeTimeout)
		case errors.Is(err, protocol.ErrNegotiationSuperseded):
			return fail(evidenceSuperseded, "Malformed HiveMind negotiation: %v", err)
		case errors.Is(err, protocol.ErrKKFailed):
			return fail(evidenceAuthFailed, "The hub could not read this client's KK handshake: %v", err)
		case errors.Is(err, protocol.ErrHubKeyChanged):
			return fail(evidenceKeyChanged, "Trusted Noise server key changed for %s: the hub's key differs from the one pinned in %s. Stop and check; remove that pin only if you trust the new key.",
				pinID, e.store.storePath())
		case errors.Is(err, protocol.ErrHandshake):
			return fail(evidenceAuthFailed, "The hub refused this client (wrong password or tampered negotiation): %v", err)
		case errors.Is(err, protocol.ErrProtocol):
			return fail(evidenceMalformed, "Malformed HiveMind negotiation: %v", err)
		}
		return err
	}
	for !negotiation.Complete() {
		message, err := c.Receive(hsCtx)
		if err != nil {
			return nil, classify(err)
		}
		if message.Binary {
			return nil, e.failed(at(), evidenceMalformed, kk(), forgetPSK, nil, "Application traffic received before Noise authentication.")
		}
		outputs, err := negotiation.ReceiveText(message.Data)
		if err != nil {
			return nil, classify(err)
		}
		if negotiation.NeedsPSK() && !started {
			if psk = e.store.CachedPSK(e.credentials.AccessKey, negotiation.NodeID); psk != nil {
				pskCached = true
			} else {
				psk = derivePSK(e.credentials.Password, negotiation.NodeID)
			}
			started = true
			first, err := negotiation.Start(psk)
			if err != nil {
				return nil, classify(err)
			}
			if err := c.SendText(hsCtx, first); err != nil {
				return nil, classify(err)
			}
		}
		for _, out := range outputs {
			if out.Binary {
				err = c.SendBinary(hsCtx, out.Data)
			} else {
				err = c.SendText(hsCtx, out.Data)
			}
			if err != nil {
				return nil, classify(err)
			}
		}
	}
	timings.Handshake = time.Since(handshakeStart)
	if !pskCached {
		_ = e.store.StorePSK(e.credentials.AccessKey, negotiation.NodeID, psk)
	}
	if hubPin == nil {
		if err := e.store.PinHub(pinID, negotiation.HubStatic); err != nil {
			return nil, err
		}
	}
	l := &link{carrier: c, channel: negotiation.Channel(), pattern: negotiation.Pattern, sessionID: e.sessionID,
		hubStatic: negotiation.HubStatic}
	if negotiation.Pattern != protocol.PatternKK {
		early, err := e.settleAfterXX(ctx, c, l.channel)
		if err != nil {
			return nil, err
		}
		l.early = early
	}
	return l, nil
}

func (e *establishment) keyRejected(when string) error {
	return &ClientKeyRejectedError{
		base: base{Kind: ErrClientKeyRejected, Message: "The hub refused this client's Noise key " + when +
			". The hub has another key pinned for this access key; the key in use is in " + e.store.Directory + "."},
		KeyFolder: e.store.Directory,
	}
}

// settleAfterXX waits up to RefusalSettle for the first authenticated frame after an XX
// handshake: a refusal close in that window means the hub refused this client's static key.
func (e *establishment) settleAfterXX(ctx context.Context, c carrier.Carrier, channel *protocol.SecureChannel) ([]*protocol.Frame, error) {
	settleCtx, cancel := context.WithTimeout(ctx, RefusalSettle)
	defer cancel()
	message, err := c.Receive(settleCtx)
	if err != nil {
		var closedErr *carrier.ClosedError
		switch {
		case errors.As(err, &closedErr) && closedErr.RefusalSignal:
			return nil, e.failed(stageSettling, evidenceRefusal, false, nil, err, "The hub refused this client: "+err.Error())
		case errors.As(err, &closedErr):
			return nil, e.failed(stageSettling, evidenceClosed, false, nil, err, "The hub closed the connection after the handshake: "+err.Error())
		case ctx.Err() != nil:
			return nil, e.failed(stageSettling, evidenceTimeout, false, nil, ctx.Err(), fmt.Sprintf("Stopped the handshake: %v.", ctx.Err()))
		}
		return nil, nil // no frame in the window: the link stands
	}
	if !message.Binary {
		return nil, e.failed(stageSettling, evidenceMalformed, false, nil, nil, "Plaintext received after Noise authentication.")
	}
	frame, err := channel.Open(message.Data)
	if err != nil {
		return nil, e.failed(stageSettling, evidenceMalformed, false, nil, err, "Malformed data from the hub: "+err.Error())
	}
	if frame == nil {
		return nil, nil
	}
	return []*protocol.Frame{frame}, nil
}
