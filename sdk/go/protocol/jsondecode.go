package protocol

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A single-pass reader of generic JSON, for the envelopes the hub sends. It builds exactly
// what encoding/json's Unmarshal into an `any` builds (objects map[string]any with the last of
// duplicate keys winning, arrays []any, numbers float64, strings, bools, nil), accepts and
// rejects the same documents, and unescapes strings the same way (an unpaired surrogate escape
// reads as U+FFFD). Invalid UTF-8 is the caller's to reject first: raw bytes of a string are
// copied as they are.

// maxJSONDepth is encoding/json's nesting limit: 10000 nested arrays and objects are accepted,
// one more is an error.
const maxJSONDepth = 10000

// The ways a document fails, in the order json.Decoder.Decode followed by More finds them.
var (
	errJSONSyntax    = errors.New("message is not valid JSON")
	errJSONTrailing  = errors.New("message has trailing data after the JSON value")
	errJSONNotObject = errors.New("message is not a JSON object")
)

// commonKeys are object keys of hub envelopes and bus messages, shared instead of allocated
// for every object that carries them.
var commonKeys = func() map[string]string {
	keys := map[string]string{}
	for _, key := range []string{
		"msg_type", "payload", "metadata", "route", "node", "target_site_id", "target_pubkey", "source_peer",
		"type", "data", "context", "session", "session_id", "site_id", "lang", "request_id",
		"thalovant_request_id", "correlation_id", "source", "destination", "platform", "pipeline_id", "skill_id",
		"utterance", "utterances", "text", "expect_response", "meta", "skill", "intent", "name",
		"active_skills", "converse_handlers", "active_handlers", "utterance_states", "response_mode",
		"user_id", "user", "auth", "device", "channel", "locale", "id", "roles", "input", "kind",
		"title", "value", "label", "silent", "reason", "error", "code", "binary_data", "next",
	} {
		keys[key] = key
	}
	return keys
}()

type jsonReader struct {
	data  []byte
	pos   int
	depth int
}

// decodeJSONObject reads data as one JSON value followed only by whitespace, or by anything
// that starts with '}' or ']' (what json.Decoder.Decode followed by More accepts); the value
// must be an object.
func decodeJSONObject(data []byte) (map[string]any, error) {
	r := jsonReader{data: data}
	r.skipSpace()
	value, err := r.value()
	if err != nil {
		return nil, err
	}
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] != '}' && r.data[r.pos] != ']' {
		return nil, errJSONTrailing
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return nil, errJSONNotObject
	}
	return obj, nil
}

func (r *jsonReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *jsonReader) value() (any, error) {
	if r.pos >= len(r.data) {
		return nil, errJSONSyntax
	}
	switch c := r.data[r.pos]; {
	case c == '{':
		return r.object()
	case c == '[':
		return r.array()
	case c == '"':
		return r.str(false)
	case c == '-' || (c >= '0' && c <= '9'):
		return r.number()
	case c == 't':
		return true, r.literal("true")
	case c == 'f':
		return false, r.literal("false")
	case c == 'n':
		return nil, r.literal("null")
	}
	return nil, errJSONSyntax
}

func (r *jsonReader) literal(word string) error {
	if len(r.data)-r.pos < len(word) || string(r.data[r.pos:r.pos+len(word)]) != word {
		return errJSONSyntax
	}
	r.pos += len(word)
	return nil
}

func (r *jsonReader) enter() error {
	r.depth++
	if r.depth > maxJSONDepth {
		return errJSONSyntax
	}
	return nil
}

func (r *jsonReader) object() (map[string]any, error) {
	if err := r.enter(); err != nil {
		return nil, err
	}
	r.pos++ // '{'
	out := map[string]any{}
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == '}' {
		r.pos++
		r.depth--
		return out, nil
	}
	for {
		if r.pos >= len(r.data) || r.data[r.pos] != '"' {
			return nil, errJSONSyntax
		}
		key, err := r.str(true)
		if err != nil {
			return nil, err
		}
		r.skipSpace()
		if r.pos >= len(r.data) || r.data[r.pos] != ':' {
			return nil, errJSONSyntax
		}
		r.pos++
		r.skipSpace()
		value, err := r.value()
		if err != nil {
			return nil, err
		}
		out[key] = value
		r.skipSpace()
		if r.pos >= len(r.data) {
			return nil, errJSONSyntax
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.skipSpace()
		case '}':
			r.pos++
			r.depth--
			return out, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

func (r *jsonReader) array() ([]any, error) {
	if err := r.enter(); err != nil {
		return nil, err
	}
	r.pos++ // '['
	out := []any{}
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == ']' {
		r.pos++
		r.depth--
		return out, nil
	}
	for {
		value, err := r.value()
		if err != nil {
			return nil, err
		}
		out = append(out, value)
		r.skipSpace()
		if r.pos >= len(r.data) {
			return nil, errJSONSyntax
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.skipSpace()
		case ']':
			r.pos++
			r.depth--
			return out, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

func (r *jsonReader) number() (float64, error) {
	start := r.pos
	digits := func() int {
		n := 0
		for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
			r.pos++
			n++
		}
		return n
	}
	if r.data[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(r.data) && r.data[r.pos] == '0':
		r.pos++
	case digits() == 0:
		return 0, errJSONSyntax
	}
	if r.pos < len(r.data) && r.data[r.pos] == '.' {
		r.pos++
		if digits() == 0 {
			return 0, errJSONSyntax
		}
	}
	if r.pos < len(r.data) && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.data) && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if digits() == 0 {
			return 0, errJSONSyntax
		}
	}
	f, err := strconv.ParseFloat(string(r.data[start:r.pos]), 64)
	if err != nil { // out of float64 range: encoding/json fails the whole document too
		return 0, errJSONSyntax
	}
	return f, nil
}

// str reads a string at r.pos (the opening quote); a key from commonKeys is shared.
func (r *jsonReader) str(key bool) (string, error) {
	r.pos++ // '"'
	start := r.pos
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			raw := r.data[start:r.pos]
			r.pos++
			if key {
				if shared, ok := commonKeys[string(raw)]; ok {
					return shared, nil
				}
			}
			return string(raw), nil
		case c == '\\':
			return r.escapedStr(start)
		case c < ' ':
			return "", errJSONSyntax
		}
		r.pos++
	}
	return "", errJSONSyntax
}

// escapedStr finishes a string that has an escape; r.pos is at its first backslash.
func (r *jsonReader) escapedStr(start int) (string, error) {
	out := make([]byte, 0, r.pos-start+16)
	out = append(out, r.data[start:r.pos]...)
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			return string(out), nil
		case c < ' ':
			return "", errJSONSyntax
		case c != '\\':
			out = append(out, c)
			r.pos++
			continue
		}
		r.pos++
		if r.pos >= len(r.data) {
			return "", errJSONSyntax
		}
		switch e := r.data[r.pos]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			rr := hex4(r.data[r.pos+1:])
			if rr < 0 {
				return "", errJSONSyntax
			}
			r.pos += 4
			if utf16.IsSurrogate(rr) {
				next := r.data[r.pos+1:]
				if len(next) >= 6 && next[0] == '\\' && next[1] == 'u' {
					if dec := utf16.DecodeRune(rr, hex4(next[2:])); dec != unicode.ReplacementChar {
						r.pos += 6
						out = utf8.AppendRune(out, dec)
						break
					}
				}
				rr = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, rr)
		default:
			return "", errJSONSyntax
		}
		r.pos++
	}
	return "", errJSONSyntax
}

// hex4 is the value of the four hex digits b starts with, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
