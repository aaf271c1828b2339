package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects CanonicalJSON accepts.
const MaxDepth = 200

// CanonicalJSON serialises v exactly as Python's json.dumps(v, sort_keys=True,
// separators=(",", ":"), ensure_ascii=False) does, as UTF-8 (data-plane spec 3.6): keys
// sorted by code point, no whitespace, non-ASCII text raw, control characters as lowercase
// \u00xx. Both sides of a handshake must produce the same bytes.
//
// Accepted values: map[string]any, []any, string (valid UTF-8), bool, nil, json.Number,
// the Go integer types and finite float64 (written as Python writes floats, e.g. 1.0 and
// 1e+16). Anything else returns an error matching ErrCanonicalJSON.
func CanonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeCanonical(&buf, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeCanonical(buf *bytes.Buffer, v any, depth int) error {
	switch value := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if value {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case string:
		return writeString(buf, value)
	case json.Number:
		return writeNumber(buf, value)
	case int:
		buf.WriteString(strconv.FormatInt(int64(value), 10))
	case int64:
		buf.WriteString(strconv.FormatInt(value, 10))
	case int32:
		buf.WriteString(strconv.FormatInt(int64(value), 10))
	case uint64:
		buf.WriteString(strconv.FormatUint(value, 10))
	case float64:
		text, err := pythonFloat(value)
		if err != nil {
			return err
		}
		buf.WriteString(text)
	case []any:
		if depth >= MaxDepth {
			return newError(ErrCanonicalJSON, "canonical JSON nests too deeply")
		}
		buf.WriteByte('[')
		for i, item := range value {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, item, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case []string:
		items := make([]any, len(value))
		for i, s := range value {
			items[i] = s
		}
		return writeCanonical(buf, items, depth)
	case map[string]any:
		if depth >= MaxDepth {
			return newError(ErrCanonicalJSON, "canonical JSON nests too deeply")
		}
		keys := make([]string, 0, len(value))
		for key := range value {
			keys = append(keys, key)
		}
		sort.Strings(keys) // UTF-8 byte order is code point order
		buf.WriteByte('{')
		for i, key := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeString(buf, key); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writeCanonical(buf, value[key], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return newError(ErrCanonicalJSON, "canonical JSON cannot carry this Go type")
	}
	return nil
}

const hexDigits = "0123456789abcdef"

func writeString(buf *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return newError(ErrCanonicalJSON, "canonical JSON strings must be valid UTF-8")
	}
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		default:
			if c < 0x20 {
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xf])
			} else {
				buf.WriteByte(c)
			}
		}
	}
	buf.WriteByte('"')
	return nil
}

// writeNumber writes a JSON number literal the way Python re-serialises what json.loads made
// of it: an integer literal as a (big) integer, anything else as a Python float.
func writeNumber(buf *bytes.Buffer, n json.Number) error {
	text := string(n)
	if !strings.ContainsAny(text, ".eE") {
		value, ok := new(big.Int).SetString(text, 10)
		if !ok {
			return newError(ErrCanonicalJSON, "canonical JSON number is malformed")
		}
		buf.WriteString(value.String())
		return nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return newError(ErrCanonicalJSON, "canonical JSON cannot carry NaN or infinity")
	}
	out, err := pythonFloat(f)
	if err != nil {
		return err
	}
	buf.WriteString(out)
	return nil
}

// pythonFloat is Python's repr of a float: the shortest round-tripping digits, fixed notation
// with at least one decimal for exponents in [-4, 16), else d.ddde+XX.
func pythonFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", newError(ErrCanonicalJSON, "canonical JSON cannot carry NaN or infinity")
	}
	sci := strconv.FormatFloat(f, 'e', -1, 64) // e.g. -1.2345e+06
	sign := ""
	if sci[0] == '-' {
		sign, sci = "-", sci[1:]
	}
	mantissa, expText, _ := strings.Cut(sci, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mantissa, ".", "", 1)
	decpt := exp + 1
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits, nil
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0", nil
		default:
			return sign + digits[:decpt] + "." + digits[decpt:], nil
		}
	}
	out := digits[:1]
	if len(digits) > 1 {
		out += "." + digits[1:]
	}
	expSign := "+"
	if exp < 0 {
		expSign, exp = "-", -exp
	}
	return sign + out + "e" + expSign + leftPad2(exp), nil
}

func leftPad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// BuildPrologue is canonical(HELLO payload) || canonical(offer payload) || protocol name.
func BuildPrologue(hello, offer map[string]any, protocolName string) ([]byte, error) {
	a, err := CanonicalJSON(hello)
	if err != nil {
		return nil, err
	}
	b, err := CanonicalJSON(offer)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(a)+len(b)+len(protocolName))
	out = append(out, a...)
	out = append(out, b...)
	return append(out, protocolName...), nil
}
