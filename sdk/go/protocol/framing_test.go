package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
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
