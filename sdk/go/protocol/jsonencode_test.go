package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// referenceEnvelope is the serialisation AppendJSON must match: json.Marshal of the eight
// fields in order.
func referenceEnvelope(m HiveMessage) ([]byte, error) {
	m = m.withDefaults()
	return json.Marshal(struct {
		MsgType      string         `json:"msg_type"`
		Payload      map[string]any `json:"payload"`
		Metadata     map[string]any `json:"metadata"`
		Route        []any          `json:"route"`
		Node         any            `json:"node"`
		TargetSiteID any            `json:"target_site_id"`
		TargetPubkey any            `json:"target_pubkey"`
		SourcePeer   any            `json:"source_peer"`
	}{m.MsgType, m.Payload, m.Metadata, m.Route, m.Node, m.TargetSiteID, m.TargetPubkey, m.SourcePeer})
}

func checkEncodesAsReference(t *testing.T, m HiveMessage) {
	t.Helper()
	want, wantErr := referenceEnvelope(m)
	got, gotErr := m.MarshalJSON()
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%#v: error %v, json.Marshal gives %v", m, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%#v:\n got  %s\n want %s", m, got, want)
	}
	viaMarshal, err := json.Marshal(m)
	if wantErr == nil && (err != nil || !bytes.Equal(viaMarshal, want)) {
		t.Fatalf("json.Marshal(envelope) %s, %v", viaMarshal, err)
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
	5e-324, math.MaxFloat64, 1796599512.4033883, 0.1, 1.0 / 3,
	math.NaN(), math.Inf(1), math.Inf(-1),
	0, -7, int64(1) << 62, int32(5), uint8(9), json.Number("12.50"), json.Number(""), textKey("named"),
	[]any{}, []any(nil), []any{1.0, "a", nil, []any{map[string]any{}}},
	map[string]any{}, map[string]any(nil),
	map[string]any{"b": 1.0, "a": 2.0, "A": 3.0, "": 4.0, "é": 5.0, "<k>": 6.0, "a\u2028": 7.0, "\xff": 8.0},
	map[string]string{"z": "1", "y": "<2>"}, []string{"x"}, []int(nil), map[string]int{"k": 1},
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
	checkEncodesAsReference(t, HiveMessage{MsgType: "<&>\u2028", TargetSiteID: "site", TargetPubkey: "key", SourcePeer: 1.0})
	checkEncodesAsReference(t, BusEnvelope("recognizer_loop:utterance", map[string]any{"utterances": []any{"Tell me a joke."}, "lang": "en-us"},
		map[string]any{"session": map[string]any{"active_skills": []any{[]any{"jokes", 1796599512.4033883}}}}))
	// a sample reply, decoded then written again
	obj, err := decodeJSONObject([]byte(sampleSpeak))
	if err != nil {
		t.Fatal(err)
	}
	envelope, _ := EnvelopeFromObject(obj)
	checkEncodesAsReference(t, envelope)
	if got, _ := envelope.Bytes(); string(got) != sampleSpeak && !json.Valid(got) {
		t.Fatalf("sample re-encoded as %s", got)
	}
}

func TestAppendJSONDeepAndCyclic(t *testing.T) {
	for _, depth := range []int{maxNativeDepth - 1, maxNativeDepth + 1, maxNativeDepth + 5} {
		deep := map[string]any{"leaf": "x"}
		for i := 0; i < depth; i++ {
			deep = map[string]any{"d": deep, "l": []any{1.0}}
		}
		checkEncodesAsReference(t, HiveMessage{MsgType: "bus", Payload: deep})
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

// Every document the decoder reads is written back as json.Marshal writes it.
func FuzzAppendJSON(f *testing.F) {
	for _, data := range jsonObjectCases {
		f.Add([]byte(data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := decodeJSONObject(data)
		if err != nil {
			return
		}
		checkEncodesAsReference(t, HiveMessage{MsgType: string(data), Payload: obj, Route: []any{string(data)}})
	})
}
