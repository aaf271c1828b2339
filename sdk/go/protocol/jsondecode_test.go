package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceObject is the generic decoding decodeJSONObject must match: json.Decoder into an
// `any`, then More, then the object check.
func referenceObject(data []byte) (map[string]any, error) {
	decoder := json.NewDecoder(bytes.NewReader(data))
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, errJSONSyntax
	}
	if decoder.More() {
		return nil, errJSONTrailing
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return nil, errJSONNotObject
	}
	return obj, nil
}

func checkSameAsReference(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := referenceObject(data)
	got, gotErr := decodeJSONObject(data)
	if gotErr != wantErr {
		t.Fatalf("%q: error %v, encoding/json gives %v", data, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got  %#v\n want %#v", data, got, want)
	}
}

var jsonObjectCases = []string{
	sampleSpeak,
	`{}`, ` {} `, "\t{\"a\":1}\r\n", `{"a":1}}`, `{"a":1}]x`, `{"a":1}x`, `{"a":1} {"b":2}`, `{"a":1},`,
	`[]`, `[1]`, `"x"`, `1`, `-0`, `true`, `null`, `truex`, `123}`, ``, ` `, `{`, `}`, `{"a"}`, `{"a":}`,
	`{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{a:1}`, `{'a':1}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`,
	`{"a":1,"a":2}`, `{"A":1,"a":2}`, `{"msg_type":"x","MSG_TYPE":"y"}`,
	`{"n":[0,-0,1.5,-1.5e3,1E+2,2e-2,12345678901234567890,1e308,5e-324,1e-400]}`,
	`{"n":1e400}`, `{"n":-1e400}`, `{"n":01}`, `{"n":1.}`, `{"n":.5}`, `{"n":-}`, `{"n":1e}`, `{"n":1e+}`,
	`{"n":+1}`, `{"n":0x10}`, `{"n":Infinity}`, `{"n":NaN}`, `{"n":1.5.2}`, `{"n":--1}`,
	`{"b":[true,false,null]}`, `{"b":tru}`, `{"b":nul}`, `{"b":falsey}`, `{"b":True}`,
	`{"s":"\"\\\/\b\f\n\r\t"}`, `{"s":"\u00e9\u4e2d\uD83D\uDE00"}`, `{"s":"\ud83d"}`, `{"s":"\ud83dx"}`,
	`{"s":"\ud83d\u0041"}`, `{"s":"\udc00\ud800"}`, `{"s":"\ud800\ud800\udc00"}`, `{"s":"\u12"}`,
	`{"s":"\u12g4"}`, `{"s":"\x"}`, `{"s":"\'"}`, `{"s":"tab	in"}`, "{\"s\":\"nl\nin\"}", `{"s":"\u0000"}`,
	`{"s":"é中😀"}`, `{"s":"unterminated}`, `{"s":"\"}`, `{"s":"\`, `{"s":"a\\"}`, `{"\u0061":1,"a":2}`,
	`{"x":{"y":{"z":[[[]]]}}}`, `{"x":[{}]}`, `{"k":"v"}   ` + "\n",
	"{\"del\":\"\x7f\"}",
}

func TestDecodeJSONObjectMatchesEncodingJSON(t *testing.T) {
	for _, data := range jsonObjectCases {
		checkSameAsReference(t, []byte(data))
	}
}

func TestDecodeJSONObjectDepthLimit(t *testing.T) {
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closing := "]"
			if open != "[" {
				closing = "}"
			}
			inner := strings.Repeat(open, depth-1) + "1" + strings.Repeat(closing, depth-1)
			checkSameAsReference(t, []byte(`{"d":`+inner+`}`))
		}
	}
}

// Every object in the repository's conformance vectors decodes as encoding/json decodes it.
func TestDecodeJSONObjectConformanceVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "conformance", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance vectors found: %v", err)
	}
	count := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		checkSameAsReference(t, raw)
		var whole any
		if err := json.Unmarshal(raw, &whole); err != nil {
			t.Fatal(err)
		}
		var walk func(value any)
		walk = func(value any) {
			switch v := value.(type) {
			case map[string]any:
				body, _ := json.Marshal(v)
				checkSameAsReference(t, body)
				count++
				for _, item := range v {
					walk(item)
				}
			case []any:
				for _, item := range v {
					walk(item)
				}
			case string: // some vectors carry envelopes as JSON text
				if strings.HasPrefix(strings.TrimSpace(v), "{") {
					checkSameAsReference(t, []byte(v))
					count++
				}
			}
		}
		walk(whole)
	}
	if count == 0 {
		t.Fatal("the conformance vectors held no object")
	}
}

// The envelope read from a hub reply is the one the encoding/json reading gives.
func TestParseEnvelopeSampleReply(t *testing.T) {
	envelope, err := ParseEnvelope([]byte(sampleSpeak))
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := referenceObject([]byte(sampleSpeak))
	want, _ := EnvelopeFromObject(obj)
	if !reflect.DeepEqual(envelope, want) {
		t.Fatalf("got %#v\nwant %#v", envelope, want)
	}
	bus := envelope.Bus()
	if bus.Type != "speak" || bus.Data["utterance"] != "Why did the hub keep good logs? It wanted every punchline to be traceable." ||
		bus.Context["skill_id"] != "jokes" {
		t.Fatalf("unexpected bus message %#v", bus)
	}
}

func FuzzDecodeJSONObject(f *testing.F) {
	for _, data := range jsonObjectCases {
		f.Add([]byte(data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // ParseJSONObject rejects it before decoding
		}
		checkSameAsReference(t, data)
	})
}
