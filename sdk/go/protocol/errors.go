// Package protocol is the sans-I/O data-plane engine: canonical JSON and the Noise prologue,
// the argon2id pre-shared key, Noise XXpsk2/KKpsk0 (client role), transport framing, the
// HiveMind envelope and WIRE-1 binary frames, and the client negotiation state machine.
//
// Bytes and parsed JSON go in, bytes and results come out: no sockets, no goroutines, no
// clocks. Every malformed input yields an error that matches ErrProtocol (and a more precise
// sentinel) with errors.Is; nothing panics on hostile input.
package protocol

import "errors"

// Sentinel errors of the engine. Each error the engine returns matches ErrProtocol and exactly
// one of the more precise sentinels below (ErrDecrypt also matches ErrHandshake, and
// ErrNegotiationSuperseded also matches ErrNegotiation).
var (
	ErrProtocol      = errors.New("protocol error")
	ErrCanonicalJSON = errors.New("canonical JSON error")
	ErrHandshake     = errors.New("noise handshake error")
	ErrDecrypt       = errors.New("noise message failed to authenticate")
	ErrNegotiation   = errors.New("negotiation error")
	ErrHubKeyChanged = errors.New("hub key changed")
	ErrKKFailed      = errors.New("KKpsk0 attempt failed")
	ErrFraming       = errors.New("framing error")
	ErrEnvelope      = errors.New("envelope error")
	ErrWire1         = errors.New("WIRE-1 frame error")

	// ErrNegotiationSuperseded (also an ErrNegotiation): on a channel shared across sessions
	// (MQTT), a HELLO or offer unlike the pair message 1 was built on arrived after message 1
	// went out. That pair was another session's, so the hub cannot read this message 1: retry
	// at once on a fresh carrier session.
	ErrNegotiationSuperseded = errors.New("negotiation superseded")
)

// Error is the engine's error: a kind (one of the sentinels) and a message.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is reports whether target is ErrProtocol, the error's kind, or its parent kind (ErrHandshake
// for ErrDecrypt, ErrNegotiation for ErrNegotiationSuperseded).
func (e *Error) Is(target error) bool {
	if target == ErrProtocol || target == e.Kind {
		return true
	}
	return (e.Kind == ErrDecrypt && target == ErrHandshake) ||
		(e.Kind == ErrNegotiationSuperseded && target == ErrNegotiation)
}

func newError(kind error, message string) *Error { return &Error{Kind: kind, Message: message} }
