package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Differential tests: envelopes are read and written by github.com/goccy/go-json (json.go),
// and must come out as encoding/json reads and writes them.

// maxJSONDepth is encoding/json's nesting limit when reading: 10000 nested arrays and objects
// are accepted, one more is an error. goccy/go-json writes no more than that either.
const maxJSONDepth = 10000

// referenceObject is the reading decodeJSONObject must match: encoding/json's Decoder into an
// `any`, then nothing but whitespace after it, then the object check (decodeJSONObjectStd, the
// fallback path).
func referenceObject(data []byte) (map[string]any, error) {
	return decodeJSONObjectStd(data, false)
}

func checkSameAsReference(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := referenceObject(data)
	got, gotErr := decodeJSONObject(data)
	if gotErr != wantErr {
		t.Fatalf("%.200q: error %v, encoding/json gives %v", data, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q:\n got  %#v\n want %#v", data, got, want)
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

func TestDecodeJSONObjectRefusesAnythingButWhitespaceAfterTheObject(t *testing.T) {
	for _, data := range []string{`{"a":1}}`, `{"a":1}]`, `{"a":1}]x`, `{"a":1} }`, `{"a":1},`, `{"a":1} {"b":2}`} {
		if _, err := decodeJSONObject([]byte(data)); !errors.Is(err, errJSONTrailing) {
			t.Errorf("%q: error %v, want %v", data, err, errJSONTrailing)
		}
	}
	for _, data := range []string{`{"a":1}`, "{\"a\":1} \t\r\n"} {
		if _, err := decodeJSONObject([]byte(data)); err != nil {
			t.Errorf("%q: %v", data, err)
		}
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

// Every object in the repository's conformance vectors reads as encoding/json reads it, and
// is written back as json.Marshal writes it.
func TestJSONConformanceVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "conformance", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance vectors found: %v", err)
	}
	count := 0
	check := func(body []byte) {
		checkSameAsReference(t, body)
		if obj, err := decodeJSONObject(body); err == nil {
			checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Payload: obj})
		}
		count++
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		check(raw)
		var whole any
		if err := json.Unmarshal(raw, &whole); err != nil {
			t.Fatal(err)
		}
		var walk func(value any)
		walk = func(value any) {
			switch v := value.(type) {
			case map[string]any:
				body, _ := json.Marshal(v)
				check(body)
				for _, item := range v {
					walk(item)
				}
			case []any:
				for _, item := range v {
					walk(item)
				}
			case string: // some vectors carry envelopes as JSON text
				if strings.HasPrefix(strings.TrimSpace(v), "{") {
					check([]byte(v))
				}
			}
		}
		walk(whole)
	}
	if count == 0 {
		t.Fatal("the conformance vectors held no object")
	}
}

// The envelope read from a hub reply is the one the encoding/json reading gives, and is
// written back as json.Marshal writes it.
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
	checkEncodesAsReference(t, envelope)
}

// referenceEnvelope is the serialisation AppendJSON must match: json.Marshal of the eight
// fields in order.
func referenceEnvelope(m HiveMessage) ([]byte, error) {
	return json.Marshal(m.onWire())
}

func checkEncodesAsReference(t *testing.T, m HiveMessage) {
	t.Helper()
	want, wantErr := referenceEnvelope(m)
	got, gotErr := m.MarshalJSON()
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%.300v: error %v, json.Marshal gives %v", m, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%.300v:\n got  %s\n want %s", m, got, want)
	}
	viaMarshal, err := json.Marshal(m)
	if wantErr == nil && (err != nil || !bytes.Equal(viaMarshal, want)) {
		t.Fatalf("json.Marshal(envelope) %s, %v", viaMarshal, err)
	}
	plaintext, err := AppendJSONPlaintext([]byte("x"), m)
	if wantErr == nil && (err != nil || string(plaintext) != "x"+string(MarkerJSON)+string(want)) {
		t.Fatalf("AppendJSONPlaintext %q, %v", plaintext, err)
	}
}

type textKey string

type withMarshaler struct{ N int }

func (w withMarshaler) MarshalJSON() ([]byte, error) {
	return []byte(`{ "n" : ` + strings.Repeat("1", w.N) + ` }`), nil
}

var encodeValueCases = []any{
	nil, true, false, "", "plain", "quote\" back\\ slash/", "ctl \b\f\n\r\t \x00 \x01 \x1f \x7f",
	"html <script>&amp;</script>", "line\u2028para\u2029", "é中😀", "bad \xff utf8 \xed\xa0\x80 \xe2\x82",
	0.0, math.Copysign(0, -1), 1.0, -1.5, 1e20, 1e21, 123456789012345678901234.0, 1e-6, 1e-7, 9.999e-7,
	5e-324, math.MaxFloat64, 1796599512.4033883, 0.1, 1.0 / 3, float32(0.1), float32(1e21),
	math.NaN(), math.Inf(1), math.Inf(-1),
	0, -7, int64(1) << 62, int32(5), uint8(9), uint64(math.MaxUint64), json.Number("12.50"), json.Number(""),
	json.Number("x"), textKey("named"),
	[]any{}, []any(nil), []any{1.0, "a", nil, []any{map[string]any{}}},
	map[string]any{}, map[string]any(nil),
	map[string]any{"b": 1.0, "a": 2.0, "A": 3.0, "": 4.0, "é": 5.0, "<k>": 6.0, "a\u2028": 7.0, "\xff": 8.0},
	map[string]string{"z": "1", "y": "<2>"}, []string{"x"}, []int(nil), map[string]int{"k": 1},
	map[int]string{2: "b", 10: "a"}, []byte("bytes"), [2]int{1, 2},
	withMarshaler{N: 3}, &withMarshaler{N: 2}, struct{ A, b int }{1, 2},
	make(chan int), func() {}, complex(1, 2),
	map[string]any{"nested": map[string]any{"bad": math.NaN()}},
	[]any{map[string]any{"f": func() {}}},
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, value := range encodeValueCases {
		checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Payload: map[string]any{"type": "x", "data": map[string]any{"v": value}}})
		checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Node: value, Route: []any{value}, Metadata: map[string]any{"m": value}})
	}
	checkEncodesAsReference(t, HiveMessage{})
	checkEncodesAsReference(t, HiveMessage{MsgType: "<&>\u2028\xff", TargetSiteID: "site", TargetPubkey: "key", SourcePeer: 1.0})
	checkEncodesAsReference(t, BusEnvelope("recognizer_loop:utterance", map[string]any{"utterances": []any{"Tell me a joke."}, "lang": "en-us"},
		map[string]any{"session": map[string]any{"active_skills": []any{[]any{"jokes", 1796599512.4033883}}}}))
}

// Deep values are written as json.Marshal writes them as long as a reader could take them
// back (encoding/json reads at most maxJSONDepth levels); past that goccy/go-json refuses,
// where json.Marshal would write a document no encoding/json reader accepts. Cycles are the
// same error as json.Marshal's.
func TestAppendJSONDeepAndCyclic(t *testing.T) {
	deepMap := func(levels int) map[string]any { // levels nested objects
		deep := map[string]any{"leaf": "x"}
		for i := 1; i < levels; i++ {
			deep = map[string]any{"d": deep, "l": []any{1.0}}
		}
		return deep
	}
	for _, levels := range []int{999, 1001, 1005, maxJSONDepth - 1} { // +1 for the envelope itself
		checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Payload: deepMap(levels)})
	}
	if _, err := (HiveMessage{MsgType: "bus", Payload: deepMap(maxJSONDepth)}).Bytes(); !errors.Is(err, ErrEnvelope) {
		t.Fatalf("%d levels: %v", maxJSONDepth+1, err)
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Payload: cyclic})
	list := []any{nil}
	list[0] = list
	checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Route: list})
	if _, err := (HiveMessage{MsgType: "bus", Payload: cyclic}).Bytes(); err == nil || !strings.Contains(err.Error(), "not JSON-serialisable") {
		t.Fatalf("cycle: %v", err)
	}
}

// Any document is read as encoding/json reads it, and what is read is written back as
// json.Marshal writes it. `go test` runs the seeds; `go test -fuzz FuzzJSON ./protocol`
// explores further.
func FuzzJSON(f *testing.F) {
	for _, data := range jsonObjectCases {
		f.Add([]byte(data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // ParseJSONObject rejects it before decoding
		}
		checkSameAsReference(t, data)
		if obj, err := decodeJSONObject(data); err == nil {
			checkEncodesAsReference(t, HiveMessage{MsgType: string(data), Payload: obj, Route: []any{string(data)}})
		}
	})
}
