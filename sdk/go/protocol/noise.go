package protocol

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/flynn/noise"
	"golang.org/x/crypto/curve25519"
)

// Patterns and suites this engine speaks (data-plane spec 3.7).
const (
	PatternXX   = "XXpsk2"
	PatternKK   = "KKpsk0"
	SuiteChaCha = "25519_ChaChaPoly_SHA256"
	SuiteAESGCM = "25519_AESGCM_SHA256"
	// MaxMessage is the largest Noise message (handshake or transport), in bytes.
	MaxMessage = 65535
	keyLen     = 32
	tagLen     = 16
)

// Suites is the client's suite preference; the hub's order is ignored (spec 3.4).
var Suites = []string{SuiteChaCha, SuiteAESGCM}

// ProtocolName is the full Noise protocol name, e.g. Noise_XXpsk2_25519_ChaChaPoly_SHA256.
func ProtocolName(pattern, suite string) string { return "Noise_" + pattern + "_" + suite }

func cipherSuite(suite string) (noise.CipherSuite, error) {
	switch suite {
	case SuiteChaCha:
		return noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256), nil
	case SuiteAESGCM:
		return noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256), nil
	}
	return nil, newError(ErrHandshake, fmt.Sprintf("unsupported Noise cipher suite %q", suite))
}

// KeyPair is an X25519 key pair as raw 32-byte slices.
type KeyPair struct {
	Private []byte
	Public  []byte
}

// GenerateKeyPair returns a fresh random X25519 key pair.
func GenerateKeyPair() (KeyPair, error) {
	private := make([]byte, keyLen)
	if _, err := io.ReadFull(rand.Reader, private); err != nil {
		return KeyPair{}, err
	}
	return KeyPairFromPrivate(private)
}

// KeyPairFromPrivate derives the key pair of a raw 32-byte private key.
func KeyPairFromPrivate(private []byte) (KeyPair, error) {
	if len(private) != keyLen {
		return KeyPair{}, newError(ErrHandshake, "an X25519 private key is 32 bytes")
	}
	public, err := curve25519.X25519(private, curve25519.Basepoint)
	if err != nil {
		return KeyPair{}, newError(ErrHandshake, "invalid X25519 private key")
	}
	return KeyPair{Private: append([]byte(nil), private...), Public: public}, nil
}

// CipherState is one direction's AEAD key with its nonce counter (4 zero bytes then the
// 64-bit counter: little-endian for ChaChaPoly, big-endian for AESGCM).
type CipherState struct{ cs *noise.CipherState }

// NewCipherState is a transport cipher state for suite and key starting at counter (used by
// the conformance vectors; handshakes produce their own).
func NewCipherState(suite string, key []byte, counter uint64) (*CipherState, error) {
	cs, err := cipherSuite(suite)
	if err != nil {
		return nil, err
	}
	if len(key) != keyLen {
		return nil, newError(ErrHandshake, "a Noise cipher key is 32 bytes")
	}
	var k [32]byte
	copy(k[:], key)
	return &CipherState{cs: noise.UnsafeNewCipherState(cs, k, counter)}, nil
}

// Encrypt seals plaintext at the current nonce (empty associated data) and advances it.
func (c *CipherState) Encrypt(plaintext []byte) ([]byte, error) {
	out, err := c.cs.Encrypt(nil, nil, plaintext)
	if err != nil {
		return nil, newError(ErrHandshake, "cannot encrypt: "+err.Error())
	}
	return out, nil
}

// Decrypt opens ciphertext at the current nonce; the counter advances on success only.
func (c *CipherState) Decrypt(ciphertext []byte) ([]byte, error) {
	out, err := c.cs.Decrypt(nil, nil, ciphertext)
	if err != nil {
		return nil, newError(ErrDecrypt, "Noise message failed to authenticate")
	}
	return out, nil
}

// EncryptInPlace is Encrypt over plaintext's own storage (the tag is appended, in place when
// plaintext has 16 bytes of spare capacity): plaintext's contents are overwritten.
func (c *CipherState) EncryptInPlace(plaintext []byte) ([]byte, error) {
	out, err := c.cs.Encrypt(plaintext[:0], nil, plaintext)
	if err != nil {
		return nil, newError(ErrHandshake, "cannot encrypt: "+err.Error())
	}
	return out, nil
}

// DecryptInPlace is Decrypt over ciphertext's own storage: the plaintext returned aliases
// ciphertext, whose contents are overwritten whether or not it authenticates.
func (c *CipherState) DecryptInPlace(ciphertext []byte) ([]byte, error) {
	out, err := c.cs.Decrypt(ciphertext[:0], nil, ciphertext)
	if err != nil {
		return nil, newError(ErrDecrypt, "Noise message failed to authenticate")
	}
	return out, nil
}

// Handshake is the initiator side of a Noise XXpsk2 or KKpsk0 handshake. Write and read in
// the pattern's order; after the last message Finished is true and Split returns the
// (send, recv) cipher states. A handshake that failed once refuses every later call.
type Handshake struct {
	Pattern  string
	Suite    string
	state    *noise.HandshakeState
	messages int
	index    int
	failed   bool
	send     *CipherState
	recv     *CipherState
}

// NewInitiatorHandshake starts the client side. remoteStatic is required for KKpsk0 (the
// pinned hub key) and ignored for XXpsk2.
func NewInitiatorHandshake(pattern, suite string, prologue, psk []byte, static KeyPair, remoteStatic []byte) (*Handshake, error) {
	cs, err := cipherSuite(suite)
	if err != nil {
		return nil, err
	}
	if len(psk) != PSKLength {
		return nil, newError(ErrHandshake, "the Noise pre-shared key is 32 bytes")
	}
	config := noise.Config{
		CipherSuite:   cs,
		Random:        rand.Reader,
		Initiator:     true,
		Prologue:      prologue,
		PresharedKey:  psk,
		StaticKeypair: noise.DHKey{Private: static.Private, Public: static.Public},
	}
	messages := 0
	switch pattern {
	case PatternXX:
		config.Pattern, config.PresharedKeyPlacement, messages = noise.HandshakeXX, 2, 3
	case PatternKK:
		if len(remoteStatic) != keyLen {
			return nil, newError(ErrHandshake, "KKpsk0 needs the 32-byte remote static key")
		}
		config.Pattern, config.PresharedKeyPlacement, messages = noise.HandshakeKK, 0, 2
		config.PeerStatic = append([]byte(nil), remoteStatic...)
	default:
		return nil, newError(ErrHandshake, fmt.Sprintf("unsupported Noise pattern %q", pattern))
	}
	state, err := noise.NewHandshakeState(config)
	if err != nil {
		return nil, newError(ErrHandshake, "cannot start the Noise handshake: "+err.Error())
	}
	return &Handshake{Pattern: pattern, Suite: suite, state: state, messages: messages}, nil
}

// Finished reports whether every handshake message was written or read.
func (h *Handshake) Finished() bool { return h.index >= h.messages }

// RemoteStatic is the peer's static public key (known for KK, learned during XX).
func (h *Handshake) RemoteStatic() []byte { return h.state.PeerStatic() }

func (h *Handshake) check(writing bool) error {
	switch {
	case h.failed:
		return newError(ErrHandshake, "the Noise handshake already failed")
	case h.Finished():
		return newError(ErrHandshake, "the Noise handshake is already finished")
	case (h.index%2 == 0) != writing:
		return newError(ErrHandshake, "not this side's turn in the Noise handshake")
	}
	return nil
}

// WriteMessage returns the next handshake message carrying payload.
func (h *Handshake) WriteMessage(payload []byte) ([]byte, error) {
	if err := h.check(true); err != nil {
		return nil, err
	}
	out, send, recv, err := h.state.WriteMessage(nil, payload)
	if err != nil || len(out) > MaxMessage {
		h.failed = true
		return nil, newError(ErrHandshake, "cannot write the Noise handshake message")
	}
	h.finish(send, recv)
	return out, nil
}

// ReadMessage processes the peer's next handshake message and returns its payload. An
// authentication failure matches ErrDecrypt.
func (h *Handshake) ReadMessage(message []byte) ([]byte, error) {
	if err := h.check(false); err != nil {
		return nil, err
	}
	if len(message) > MaxMessage {
		h.failed = true
		return nil, newError(ErrHandshake, "Noise handshake message exceeds 65535 bytes")
	}
	payload, send, recv, err := h.state.ReadMessage(nil, message)
	if err != nil {
		h.failed = true
		if err == noise.ErrShortMessage {
			return nil, newError(ErrHandshake, "Noise handshake message is too short")
		}
		return nil, newError(ErrDecrypt, "Noise handshake message failed to authenticate")
	}
	h.finish(send, recv)
	return payload, nil
}

func (h *Handshake) finish(first, second *noise.CipherState) {
	h.index++
	if first != nil && second != nil {
		// Split: the first cipher state is the initiator's send key.
		h.send, h.recv = &CipherState{cs: first}, &CipherState{cs: second}
	}
}

// Split returns the transport cipher states (send, recv) once the handshake is finished.
func (h *Handshake) Split() (*CipherState, *CipherState, error) {
	if h.failed || h.send == nil {
		return nil, nil, newError(ErrHandshake, "the Noise handshake is not finished")
	}
	return h.send, h.recv, nil
}
