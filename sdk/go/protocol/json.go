package protocol

import (
	"bytes"
	"encoding/json"
	"errors"

	gojson "github.com/goccy/go-json"
)

// Envelopes are read and written with github.com/goccy/go-json, a drop-in for encoding/json
// (same values, same bytes); what it refuses is handed to encoding/json, whose reading of a
// frame stays the contract (json_test.go checks the two against each other).

// The ways a document fails, in the order decodeJSONObjectStd finds them.
var (
	errJSONSyntax    = errors.New("message is not valid JSON")
	errJSONTrailing  = errors.New("message has trailing data after the JSON value")
	errJSONNotObject = errors.New("message is not a JSON object")
)

// decodeJSONObject reads data as one JSON object followed only by JSON whitespace (what
// json.Unmarshal accepts), into what encoding/json builds for an `any`: map[string]any (the
// last of duplicate keys wins), []any, float64, string, bool and nil. Invalid UTF-8 is the
// caller's to reject first.
func decodeJSONObject(data []byte) (map[string]any, error) {
	var value any
	if err := gojson.Unmarshal(data, &value); err != nil {
		// not one value alone (or not JSON): encoding/json decides, as it always did
		return decodeJSONObjectStd(data, false)
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return nil, errJSONNotObject
	}
	return obj, nil
}

// decodeJSONObjectStd is decodeJSONObject done by encoding/json's Decoder alone; with
// useNumber the numbers are json.Number.
func decodeJSONObjectStd(data []byte, useNumber bool) (map[string]any, error) {
	decoder := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		decoder.UseNumber()
	}
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, errJSONSyntax
	}
	if len(bytes.TrimLeft(data[decoder.InputOffset():], " \t\r\n")) > 0 {
		return nil, errJSONTrailing
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return nil, errJSONNotObject
	}
	return obj, nil
}

// envelopeJSON is the layout of an envelope on the wire: the eight fields in this order.
type envelopeJSON struct {
	MsgType      string         `json:"msg_type"`
	Payload      map[string]any `json:"payload"`
	Metadata     map[string]any `json:"metadata"`
	Route        []any          `json:"route"`
	Node         any            `json:"node"`
	TargetSiteID any            `json:"target_site_id"`
	TargetPubkey any            `json:"target_pubkey"`
	SourcePeer   any            `json:"source_peer"`
}

// appendWriter is an io.Writer appending to its buffer.
type appendWriter struct{ buf []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// appendJSON appends to dst what json.Marshal writes for value (keys of maps sorted, HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD), with json.Marshal's errors.
func appendJSON(dst []byte, value any) ([]byte, error) {
	w := appendWriter{buf: dst}
	if err := gojson.NewEncoder(&w).Encode(value); err != nil {
		return nil, err
	}
	return w.buf[:len(w.buf)-1], nil // without the newline Encode ends with
}
