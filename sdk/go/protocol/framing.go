package protocol

import (
	"fmt"
	"slices"
)

// Transport markers: the first byte of every decrypted transport message (spec 3.11).
const (
	MarkerJSON        byte = 0x00
	MarkerBinary      byte = 0x01
	MarkerJSONFirst   byte = 0x02
	MarkerBinaryFirst byte = 0x03
	MarkerMiddle      byte = 0x04
	MarkerLast        byte = 0x05
)

// Framing limits (spec 3.11).
const (
	// ChunkSize is the largest body carried by one transport message.
	ChunkSize = 65000
	// MaxReassembly is the largest body a chunked sequence may reassemble to.
	MaxReassembly = 32 * 1024 * 1024
)

// Frame is one complete application frame: a JSON envelope or (Binary) a WIRE-1 frame.
type Frame struct {
	Binary bool
	Body   []byte
}

// SplitPlaintext returns the marker-prefixed plaintexts that carry body, in sending order: one
// complete frame up to ChunkSize bytes, else a first chunk, middle chunks and a last chunk.
func SplitPlaintext(body []byte, binary bool) [][]byte {
	complete, first := MarkerJSON, MarkerJSONFirst
	if binary {
		complete, first = MarkerBinary, MarkerBinaryFirst
	}
	if len(body) <= ChunkSize {
		return [][]byte{prefixed(complete, body)}
	}
	parts := [][]byte{prefixed(first, body[:ChunkSize])}
	start := ChunkSize
	for len(body)-start > ChunkSize {
		parts = append(parts, prefixed(MarkerMiddle, body[start:start+ChunkSize]))
		start += ChunkSize
	}
	return append(parts, prefixed(MarkerLast, body[start:]))
}

func prefixed(marker byte, body []byte) []byte {
	out := make([]byte, 1+len(body))
	out[0] = marker
	copy(out[1:], body)
	return out
}

// Reassembler turns one direction's plaintexts back into frames. Feed returns a frame when a
// plaintext completes one and nil while a chunked sequence is open; any sequencing violation
// returns an error matching ErrFraming and the stream is dead afterwards.
type Reassembler struct {
	parts  [][]byte
	open   bool
	binary bool
	size   int
	failed bool
}

// Feed consumes one decrypted transport message.
func (r *Reassembler) Feed(plaintext []byte) (*Frame, error) {
	if r.failed {
		return nil, newError(ErrFraming, "the frame stream already failed")
	}
	if len(plaintext) == 0 {
		return nil, r.fail("empty transport plaintext")
	}
	marker, body := plaintext[0], plaintext[1:]
	switch marker {
	case MarkerJSON, MarkerBinary:
		if r.open {
			return nil, r.fail("complete frame inside a chunked sequence")
		}
		return &Frame{Binary: marker == MarkerBinary, Body: body}, nil
	case MarkerJSONFirst, MarkerBinaryFirst:
		if r.open {
			return nil, r.fail("first chunk inside another chunked sequence")
		}
		r.open, r.binary, r.size = true, marker == MarkerBinaryFirst, len(body)
		r.parts = [][]byte{body}
		return nil, nil
	case MarkerMiddle, MarkerLast:
		if !r.open {
			return nil, r.fail("middle or last chunk without a first chunk")
		}
		r.size += len(body)
		if r.size > MaxReassembly {
			return nil, r.fail(fmt.Sprintf("reassembled frame exceeds %d bytes", MaxReassembly))
		}
		r.parts = append(r.parts, body)
		if marker == MarkerMiddle {
			return nil, nil
		}
		whole := make([]byte, 0, r.size)
		for _, part := range r.parts {
			whole = append(whole, part...)
		}
		r.open, r.parts = false, nil
		return &Frame{Binary: r.binary, Body: whole}, nil
	}
	return nil, r.fail(fmt.Sprintf("unknown marker 0x%02x", marker))
}

func (r *Reassembler) fail(reason string) error {
	r.failed, r.open, r.parts = true, false, nil
	return newError(ErrFraming, reason)
}

// SecureChannel is both directions of an established session: Seal* turn one body into the
// transport messages that carry it, Open decrypts one transport message. Messages must be
// opened in the order they were sealed. It is not safe for concurrent use: callers serialise
// sealing (one sender) and opening (one reader) separately.
type SecureChannel struct {
	send *CipherState
	recv *CipherState
	re   Reassembler
}

// NewSecureChannel wraps the cipher states of a finished handshake.
func NewSecureChannel(send, recv *CipherState) *SecureChannel {
	return &SecureChannel{send: send, recv: recv}
}

// AppendJSONPlaintext appends to dst the transport plaintext of a complete JSON frame carrying
// envelope (MarkerJSON, then its JSON), with room after it for the tag SealJSONPlaintext adds.
func AppendJSONPlaintext(dst []byte, envelope HiveMessage) ([]byte, error) {
	out, err := envelope.AppendJSON(append(dst, MarkerJSON))
	if err != nil {
		return nil, newError(ErrEnvelope, "envelope is not JSON-serialisable: "+err.Error())
	}
	return slices.Grow(out, tagLen), nil
}

// SealJSONPlaintext returns the transport messages carrying the JSON frame whose plaintext
// AppendJSONPlaintext made: what SealJSON returns for its body. When the body fits one
// transport message it is sealed over plaintext's own storage.
func (c *SecureChannel) SealJSONPlaintext(plaintext []byte) ([][]byte, error) {
	if len(plaintext) == 0 || plaintext[0] != MarkerJSON {
		return nil, newError(ErrFraming, "not the plaintext of a complete JSON frame")
	}
	if len(plaintext)-1 > ChunkSize {
		return c.seal(plaintext[1:], false)
	}
	sealed, err := c.send.EncryptInPlace(plaintext)
	if err != nil {
		return nil, err
	}
	return [][]byte{sealed}, nil
}

// SealJSON returns the transport messages carrying one JSON envelope body.
func (c *SecureChannel) SealJSON(body []byte) ([][]byte, error) { return c.seal(body, false) }

// SealBinary returns the transport messages carrying one WIRE-1 frame.
func (c *SecureChannel) SealBinary(body []byte) ([][]byte, error) { return c.seal(body, true) }

func (c *SecureChannel) seal(body []byte, binary bool) ([][]byte, error) {
	parts := SplitPlaintext(body, binary)
	out := make([][]byte, len(parts))
	for i, part := range parts {
		sealed, err := c.send.Encrypt(part)
		if err != nil {
			return nil, err
		}
		out[i] = sealed
	}
	return out, nil
}

// Open decrypts one transport message and returns the frame it completes, or nil.
func (c *SecureChannel) Open(message []byte) (*Frame, error) {
	return c.open(message, false)
}

// OpenInPlace is Open decrypting over message's own storage, for a caller that owns message:
// its contents are overwritten, and the frame returned (now or when a chunked sequence
// completes) may share that storage.
func (c *SecureChannel) OpenInPlace(message []byte) (*Frame, error) {
	return c.open(message, true)
}

func (c *SecureChannel) open(message []byte, inPlace bool) (*Frame, error) {
	if len(message) > MaxMessage {
		return nil, newError(ErrFraming, fmt.Sprintf("transport message of %d bytes exceeds %d", len(message), MaxMessage))
	}
	var plaintext []byte
	var err error
	if inPlace {
		plaintext, err = c.recv.DecryptInPlace(message)
	} else {
		plaintext, err = c.recv.Decrypt(message)
	}
	if err != nil {
		return nil, err
	}
	return c.re.Feed(plaintext)
}
