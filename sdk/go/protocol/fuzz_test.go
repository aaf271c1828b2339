package protocol

import (
	"errors"
	"testing"
)

// Hostile input never panics: every engine entry point returns a value or an error matching
// ErrProtocol. `go test` runs the seeds; `go test -fuzz FuzzX ./protocol` explores further.

func FuzzDecodeWire1(f *testing.F) {
	f.Add([]byte{0xC0, 0x42, 0x02, '{', '}', '{', '}'})
	f.Add(buildBinFrame(6, map[string]any{"utterance": "hi"}, []byte("audio")))
	f.Add([]byte{0x80 | BinType<<1 | 1, 3, 0x78, 0x9c, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := DecodeWire1(data); err != nil && !errors.Is(err, ErrWire1) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func FuzzNegotiationText(f *testing.F) {
	f.Add([]byte(`{"msg_type":"hello","payload":{"node_id":"n","pubkey":""}}`), []byte(`{"msg_type":"shake","payload":{"noise":{"patterns":["XXpsk2"],"suites":["25519_AESGCM_SHA256"]}}}`))
	f.Add([]byte(`{"msg_type":"hello","payload":{"node_id":"n","x":1.5e300}}`), []byte(`{"msg_type":"shake","payload":{"noise":{"msg":"00"}}}`))
	f.Add([]byte(`[]`), []byte(`{"msg_type":"handshake","payload":{"noise":{}}}`))
	static, _ := GenerateKeyPair()
	psk := make([]byte, 32)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		n, _ := NewClientNegotiation(static, "s", "sid", nil, false)
		for _, text := range [][]byte{first, second} {
			if _, err := n.ReceiveText(text); err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if n.NeedsPSK() {
				if _, err := n.Start(psk); err != nil && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error kind: %v", err)
				}
			}
		}
	})
}

func FuzzReassembler(f *testing.F) {
	f.Add([]byte{MarkerJSONFirst, 1, MarkerMiddle, 2, MarkerLast, 3})
	f.Add([]byte{MarkerBinary, 9, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Reassembler
		for i := 0; i+2 <= len(data); i += 2 { // each pair of bytes is one plaintext: marker, body
			if _, err := r.Feed(data[i : i+2]); err != nil && !errors.Is(err, ErrFraming) {
				t.Fatalf("unexpected error kind: %v", err)
			}
		}
	})
}

func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"msg_type":"bus","payload":{"type":"speak","data":{"utterance":"x"},"context":[]}}`))
	f.Add([]byte(`{"msg_type":"broadcast","payload":{"msg_type":"bus","payload":7}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		envelope, err := ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrEnvelope) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		_ = envelope.Bus()
		if inner, ok := envelope.Inner(); ok {
			_ = inner.Bus()
		}
		if _, err := envelope.Bytes(); err != nil && !errors.Is(err, ErrEnvelope) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
