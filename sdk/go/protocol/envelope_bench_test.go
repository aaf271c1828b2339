package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// sampleSpeak is a speak envelope as the demo hub sends it in reply to an ask.
const sampleSpeak = `{"msg_type":"bus","payload":{"type":"speak","data":{"utterance":"Why did the hub keep good logs? It wanted every punchline to be traceable.","lang":"en-us","expect_response":false,"meta":{"skill":"jokes","intent":"tell_joke"}},"context":{"destination":"ThalovantGoSDK/0.1.0","platform":"ThalovantGoSDK/0.1.0","request_id":"thalovant-request-242b05459f319cbf017b2a4fb2029868","session":{"lang":"en-us","request_id":"thalovant-request-242b05459f319cbf017b2a4fb2029868","session_id":"thalovant-go-e505a70c69cf4f2f6539a40c8281b196","site_id":"probe","active_skills":[["jokes",1796599512.4033883]],"context":{"thalovant_skills":{"jokes":{"next":1}}}},"source":"HiveMind","thalovant_request_id":"thalovant-request-242b05459f319cbf017b2a4fb2029868","pipeline_id":"thalovant.skills","skill_id":"jokes"}},"metadata":{},"route":[],"node":null,"target_site_id":null,"target_pubkey":null,"source_peer":null}`

func BenchmarkParseEnvelope(b *testing.B) {
	body := []byte(sampleSpeak)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseEnvelope(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeBytes(b *testing.B) {
	obj, err := ParseJSONObject([]byte(sampleSpeak), false)
	if err != nil {
		b.Fatal(err)
	}
	envelope, _ := EnvelopeFromObject(obj)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}

// The same two operations done with encoding/json alone, for comparison.

func BenchmarkParseEnvelopeEncodingJSON(b *testing.B) {
	body := []byte(sampleSpeak)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		decoder := json.NewDecoder(bytes.NewReader(body))
		var value any
		if err := decoder.Decode(&value); err != nil || decoder.More() {
			b.Fatal(err)
		}
		if _, err := EnvelopeFromObject(value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeBytesEncodingJSON(b *testing.B) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(sampleSpeak), &obj); err != nil {
		b.Fatal(err)
	}
	m, _ := EnvelopeFromObject(obj)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(m.onWire()); err != nil {
			b.Fatal(err)
		}
	}
}
