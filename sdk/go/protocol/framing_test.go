package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// DecryptInPlace opens the transport vectors as Decrypt does, and fails a replay the same way.
func TestDecryptInPlaceTransportVectors(t *testing.T) {
	v := noiseVectorFile(t).Transport
	key, _ := hex.DecodeString(v.Key)
	for _, c := range v.Cases {
		sealed, _ := hex.DecodeString(c.Ciphertext)
		dec, _ := NewCipherState(c.Suite, key, c.Counter)
		opened, err := dec.DecryptInPlace(bytes.Clone(sealed))
		if err != nil || string(opened) != v.Plaintext {
			t.Errorf("%s counter %d: decrypt in place %q, %v", c.Suite, c.Counter, opened, err)
		}
		if _, err := dec.DecryptInPlace(bytes.Clone(sealed)); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: replay gave %v, want ErrDecrypt", c.Suite, err)
		}
	}
}

// OpenInPlace gives the frames Open gives, whole and chunked, for both suites.
func TestOpenInPlaceMatchesOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	small := []byte(sampleSpeak)
	large := bytes.Repeat([]byte("0123456789"), 2*ChunkSize/10+7)
	for _, suite := range []string{SuiteChaCha, SuiteAESGCM} {
		for _, body := range [][]byte{small, large} {
			for _, binary := range []bool{false, true} {
				send, _ := NewCipherState(suite, key, 0)
				sender := NewSecureChannel(send, nil)
				var parts [][]byte
				var err error
				if binary {
					parts, err = sender.SealBinary(body)
				} else {
					parts, err = sender.SealJSON(body)
				}
				if err != nil {
					t.Fatal(err)
				}
				recvA, _ := NewCipherState(suite, key, 0)
				recvB, _ := NewCipherState(suite, key, 0)
				copying, inPlace := NewSecureChannel(nil, recvA), NewSecureChannel(nil, recvB)
				for i, part := range parts {
					want, err := copying.Open(part)
					if err != nil {
						t.Fatal(err)
					}
					got, err := inPlace.OpenInPlace(bytes.Clone(part))
					if err != nil {
						t.Fatal(err)
					}
					if (want == nil) != (got == nil) || (i < len(parts)-1) != (got == nil) {
						t.Fatalf("%s part %d: frame %v, Open gives %v", suite, i, got, want)
					}
					if got != nil && (got.Binary != binary || !bytes.Equal(got.Body, body) || !bytes.Equal(want.Body, body)) {
						t.Fatalf("%s: the frame read in place differs", suite)
					}
				}
			}
		}
	}
}

// SealJSONPlaintext seals what SealJSON seals for the same envelope, whole and chunked.
func TestSealJSONPlaintextMatchesSealJSON(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	small := BusEnvelope("speak", map[string]any{"utterance": "hi <there>"}, nil)
	large := BusEnvelope("speak", map[string]any{"utterance": strings.Repeat("x", 2*ChunkSize+5)}, nil)
	for _, suite := range []string{SuiteChaCha, SuiteAESGCM} {
		for _, envelope := range []HiveMessage{small, large} {
			body, err := envelope.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			sendA, _ := NewCipherState(suite, key, 3)
			sendB, _ := NewCipherState(suite, key, 3)
			want, err := NewSecureChannel(sendA, nil).SealJSON(body)
			if err != nil {
				t.Fatal(err)
			}
			for _, dst := range [][]byte{nil, make([]byte, 0, 1024)} {
				plaintext, err := AppendJSONPlaintext(dst, envelope)
				if err != nil {
					t.Fatal(err)
				}
				if cap(plaintext)-len(plaintext) < tagLen || plaintext[0] != MarkerJSON || !bytes.Equal(plaintext[1:], body) {
					t.Fatalf("plaintext of %d bytes (cap %d) is not the marker and the body", len(plaintext), cap(plaintext))
				}
			}
			plaintext, _ := AppendJSONPlaintext(make([]byte, 0, 1024), envelope)
			got, err := NewSecureChannel(sendB, nil).SealJSONPlaintext(plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d messages, SealJSON gives %d", suite, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%s: message %d differs", suite, i)
				}
			}
		}
	}
	if _, err := NewSecureChannel(nil, nil).SealJSONPlaintext([]byte("{}")); !errors.Is(err, ErrFraming) {
		t.Fatalf("a plaintext without the marker: %v", err)
	}
}
