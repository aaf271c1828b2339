package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The conformance vectors live once, at the repository root; every SDK reads that copy.
func loadVector(t *testing.T, name string, into any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "conformance", name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	if err := decoder.Decode(into); err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
}

type noiseVectors struct {
	PSK struct {
		Cases []struct {
			Password string `json:"password"`
			NodeID   string `json:"node_id"`
			PSK      string `json:"psk"`
		} `json:"cases"`
	} `json:"psk"`
	Transport struct {
		Key       string `json:"key"`
		Plaintext string `json:"plaintext_utf8"`
		Cases     []struct {
			Suite      string `json:"suite"`
			Counter    uint64 `json:"counter"`
			Ciphertext string `json:"ciphertext"`
		} `json:"cases"`
	} `json:"transport"`
	Canonical []struct {
		Input  map[string]any `json:"input"`
		Output string         `json:"output"`
	} `json:"canonical_json"`
	Prologue struct {
		Hello        map[string]any `json:"hello"`
		Handshake    map[string]any `json:"handshake"`
		ProtocolName string         `json:"protocol_name"`
		Pattern      string         `json:"pattern"`
		Suite        string         `json:"suite"`
		Bytes        string         `json:"bytes"`
	} `json:"prologue"`
	Selection []struct {
		Patterns []any    `json:"patterns"`
		Suites   []any    `json:"suites"`
		Pinned   bool     `json:"pinned"`
		Expect   []string `json:"expect"`
	} `json:"selection"`
}

func noiseVectorFile(t *testing.T) noiseVectors {
	var v noiseVectors
	loadVector(t, "noise-vectors.json", &v)
	if len(v.PSK.Cases) != 3 || v.PSK.Cases[0].NodeID == "" {
		t.Fatal("noise vectors: no PSK cases read")
	}
	return v
}

func TestPSKVectors(t *testing.T) {
	for _, c := range noiseVectorFile(t).PSK.Cases {
		if got := hex.EncodeToString(DerivePSK(c.Password, c.NodeID)); got != c.PSK {
			t.Errorf("psk(%q, %q) = %s, want %s", c.Password, c.NodeID, got, c.PSK)
		}
	}
}

func TestTransportVectors(t *testing.T) {
	v := noiseVectorFile(t).Transport
	key, _ := hex.DecodeString(v.Key)
	if len(v.Cases) != 6 {
		t.Fatalf("expected 6 transport cases, got %d", len(v.Cases))
	}
	for _, c := range v.Cases {
		enc, err := NewCipherState(c.Suite, key, c.Counter)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := enc.Encrypt([]byte(v.Plaintext))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sealed); got != c.Ciphertext {
			t.Errorf("%s counter %d: %s, want %s", c.Suite, c.Counter, got, c.Ciphertext)
		}
		dec, _ := NewCipherState(c.Suite, key, c.Counter)
		opened, err := dec.Decrypt(sealed)
		if err != nil || string(opened) != v.Plaintext {
			t.Errorf("%s counter %d: decrypt %q, %v", c.Suite, c.Counter, opened, err)
		}
		// the same ciphertext at the next counter does not authenticate
		if _, err := dec.Decrypt(sealed); !errors.Is(err, ErrDecrypt) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: replay gave %v, want ErrDecrypt", c.Suite, err)
		}
	}
}

func TestCanonicalJSONVectors(t *testing.T) {
	cases := noiseVectorFile(t).Canonical
	if len(cases) != 6 {
		t.Fatalf("expected 6 canonical cases, got %d", len(cases))
	}
	for _, c := range cases {
		got, err := CanonicalJSON(c.Input)
		if err != nil || string(got) != c.Output {
			t.Errorf("canonical(%v) = %s (%v), want %s", c.Input, got, err, c.Output)
		}
	}
}

func TestPrologueVector(t *testing.T) {
	p := noiseVectorFile(t).Prologue
	if name := ProtocolName(p.Pattern, p.Suite); name != p.ProtocolName {
		t.Fatalf("protocol name %s, want %s", name, p.ProtocolName)
	}
	got, err := BuildPrologue(p.Hello, p.Handshake, p.ProtocolName)
	if err != nil || hex.EncodeToString(got) != p.Bytes {
		t.Fatalf("prologue %x (%v), want %s", got, err, p.Bytes)
	}
}

func TestSelectionVectors(t *testing.T) {
	for i, c := range noiseVectorFile(t).Selection {
		pattern, suite, err := SelectNoise(map[string]any{"patterns": c.Patterns, "suites": c.Suites}, c.Pinned, false)
		if c.Expect == nil {
			if !errors.Is(err, ErrNegotiation) {
				t.Errorf("case %d: got %s %s, want no match", i, pattern, suite)
			}
			continue
		}
		if err != nil || pattern != c.Expect[0] || suite != c.Expect[1] {
			t.Errorf("case %d: got %s %s %v, want %v", i, pattern, suite, err, c.Expect)
		}
	}
}

type frameCase struct {
	Name             string         `json:"name"`
	Frame            string         `json:"frame"`
	ExpectedKind     string         `json:"expected_kind"`
	ExpectedMetadata map[string]any `json:"expected_metadata"`
	ExpectedPayload  string         `json:"expected_payload"`
}

func TestBinaryFrameVectors(t *testing.T) {
	var v struct {
		Cases    []frameCase `json:"cases"`
		BusFrame string      `json:"bus_frame"`
	}
	loadVector(t, "binary-frames.json", &v)
	if len(v.Cases) < 10 {
		t.Fatalf("expected the reference frames, got %d", len(v.Cases))
	}
	compressed := 0
	for _, c := range v.Cases {
		wire, _ := base64.StdEncoding.DecodeString(c.Frame)
		frame, err := DecodeWire1(wire)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		payload, _ := base64.StdEncoding.DecodeString(c.ExpectedPayload)
		if frame.MsgType != "bin" || frame.Kind() != c.ExpectedKind || !bytes.Equal(frame.Payload, payload) {
			t.Errorf("%s: got %s %s %d bytes", c.Name, frame.MsgType, frame.Kind(), len(frame.Payload))
		}
		if !reflect.DeepEqual(numbersAsFloats(c.ExpectedMetadata), frame.Metadata) {
			t.Errorf("%s: metadata %v, want %v", c.Name, frame.Metadata, c.ExpectedMetadata)
		}
		if frame.Compressed {
			compressed++
		}
	}
	if compressed != 1 {
		t.Errorf("expected exactly one compressed reference frame, got %d", compressed)
	}
	wire, _ := base64.StdEncoding.DecodeString(v.BusFrame)
	frame, err := DecodeWire1(wire)
	if err != nil {
		t.Fatal(err)
	}
	envelope, err := frame.Envelope()
	if err != nil || frame.MsgType != "bus" || frame.Version != 1 || frame.Compressed || len(frame.Metadata) != 0 {
		t.Fatalf("bus frame: %+v %v", frame, err)
	}
	bus := envelope.Bus()
	if bus.Type != "speak" || bus.Data["utterance"] != "Pfffft." {
		t.Fatalf("bus frame payload: %+v", bus)
	}
}

func numbersAsFloats(value map[string]any) map[string]any {
	raw, _ := json.Marshal(value)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// buildBinFrame is the simplest WIRE-1 layout a hub may send (no version, no left padding,
// payload shifted by the 4-bit type): test data for the naming cases.
func buildBinFrame(binType int, metadata map[string]any, payload []byte) []byte {
	meta, _ := json.Marshal(metadata)
	out := []byte{0x80 | BinType<<1, byte(len(meta))}
	out = append(out, meta...)
	bits := append([]byte{byte(binType << 4)}, payload...)
	for i := 0; i < len(payload); i++ {
		bits[i] |= payload[i] >> 4
		bits[i+1] = payload[i] << 4
	}
	return append(out, bits...)
}

func TestBinaryKindVectors(t *testing.T) {
	var v struct {
		PayloadKinds map[string]string `json:"payload_kinds"`
		Cases        []struct {
			Name     string         `json:"name"`
			BinType  int            `json:"bin_type"`
			Metadata map[string]any `json:"metadata"`
			Expected map[string]any `json:"expected"`
		} `json:"cases"`
		Unnamed map[string]string `json:"unnamed_kind_names"`
	}
	loadVector(t, "binary-vectors.json", &v)
	for number, name := range v.PayloadKinds {
		var n int
		_ = json.Unmarshal([]byte(number), &n)
		if PayloadTypeName(n) != name {
			t.Errorf("payload type %d: %s, want %s", n, PayloadTypeName(n), name)
		}
	}
	for number, name := range v.Unnamed {
		var n int
		_ = json.Unmarshal([]byte(number), &n)
		if PayloadTypeName(n) != name {
			t.Errorf("unnamed %d: %s, want %s", n, PayloadTypeName(n), name)
		}
	}
	for _, c := range v.Cases {
		frame, err := DecodeWire1(buildBinFrame(c.BinType, c.Metadata, []byte("\x00\x01audio")))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if frame.Kind() != c.Expected["kind"] || string(frame.Payload) != "\x00\x01audio" {
			t.Errorf("%s: kind %s payload %q", c.Name, frame.Kind(), frame.Payload)
		}
		for _, key := range []string{"utterance", "lang", "file_name"} {
			want, _ := c.Expected[key].(string) // null reads as absent, i.e. ""
			if frame.Text(key) != want {
				t.Errorf("%s: %s = %q, want %q", c.Name, key, frame.Text(key), want)
			}
		}
	}
}
