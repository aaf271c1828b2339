package protocol

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// WIRE-1 binary frames (spec 5.2): the bitstring carried after marker 0x01 or 0x03. Layout,
// most significant bit first:
//
//	0* 1                  left padding ended by a one bit
//	v [version:8]         versioned bit, then the version (<= 1) when it is set
//	type:5                message type number
//	compressed:1          metadata (and a JSON payload) are zlib streams
//	metalen:8             metadata length in bytes, as on the wire
//	metadata              JSON object
//	bin:  ptype:4, payload  payload type, then every remaining whole byte, never inflated
//	else: payload           JSON object (inflated when compressed)
//
// The SDK only decodes: a client never sends binary frames.

const (
	// BinType is the message type number of bin frames.
	BinType = 12
	// MaxInflated caps every zlib inflation of frame content.
	MaxInflated = 32 * 1024 * 1024
)

// PayloadTypes names the binary payload type numbers.
var PayloadTypes = map[int]string{
	1: "raw_audio", 2: "numpy_image", 3: "file", 4: "stt_transcribe", 5: "stt_handle", 6: "tts_audio",
}

// PayloadTypeName is the name of a payload type number; unnamed numbers read as binary:<n>.
func PayloadTypeName(number int) string {
	if name, ok := PayloadTypes[number]; ok {
		return name
	}
	return "binary:" + strconv.Itoa(number)
}

// Wire1Frame is a decoded WIRE-1 frame. For bin frames Payload holds the raw bytes and
// BinType the 4-bit payload type; for every other type JSON holds the payload object.
type Wire1Frame struct {
	MsgType    string
	Metadata   map[string]any
	Payload    []byte
	JSON       map[string]any
	BinType    int
	IsBin      bool
	Version    int // -1 when the frame is not versioned
	Compressed bool
}

// Kind is the payload type name of a bin frame (binary:<n> if unnamed), else "".
func (f *Wire1Frame) Kind() string {
	if !f.IsBin {
		return ""
	}
	return PayloadTypeName(f.BinType)
}

// Text is a string metadata value; absent, empty or non-string values read as "".
func (f *Wire1Frame) Text(key string) string {
	value, _ := f.Metadata[key].(string)
	return value
}

// Envelope is the JSON envelope {msg_type, payload, metadata} a non-bin frame stands for.
func (f *Wire1Frame) Envelope() (HiveMessage, error) {
	if f.IsBin {
		return HiveMessage{}, newError(ErrWire1, "a bin frame carries no JSON envelope")
	}
	return HiveMessage{MsgType: f.MsgType, Payload: f.JSON, Metadata: f.Metadata, Route: []any{}}, nil
}

type bitReader struct {
	data []byte
	pos  int // absolute bit offset
}

func (r *bitReader) take(count int) (int, error) {
	if r.pos+count > 8*len(r.data) {
		return 0, newError(ErrWire1, "binary frame truncated")
	}
	value := 0
	for i := 0; i < count; i++ {
		bit := (r.data[r.pos/8] >> (7 - uint(r.pos%8))) & 1
		value = value<<1 | int(bit)
		r.pos++
	}
	return value, nil
}

// wholeBytes returns every whole byte from the reader's position (tail bits dropped).
func (r *bitReader) wholeBytes() []byte {
	start, shift := r.pos/8, uint(r.pos%8)
	tail := r.data[start:]
	if shift == 0 {
		return append([]byte(nil), tail...)
	}
	if len(tail) < 2 {
		return []byte{}
	}
	out := make([]byte, len(tail)-1)
	for i := range out {
		out[i] = tail[i]<<shift | tail[i+1]>>(8-shift)
	}
	return out
}

func inflate(data []byte) ([]byte, error) {
	reader, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, newError(ErrWire1, "corrupt zlib stream")
	}
	out, err := io.ReadAll(io.LimitReader(reader, MaxInflated+1))
	if err != nil {
		return nil, newError(ErrWire1, "corrupt or truncated zlib stream")
	}
	if len(out) > MaxInflated {
		return nil, newError(ErrWire1, fmt.Sprintf("inflated content exceeds %d bytes", MaxInflated))
	}
	return out, nil
}

func wireObject(data []byte, what string) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, newError(ErrWire1, what+" is not valid UTF-8")
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, newError(ErrWire1, what+" is not a JSON object")
	}
	return obj, nil
}

// DecodeWire1 decodes one WIRE-1 frame; every malformation returns an error matching ErrWire1.
func DecodeWire1(data []byte) (*Wire1Frame, error) {
	first := 0
	for first < len(data) && data[first] == 0 {
		first++
	}
	if first == len(data) {
		return nil, newError(ErrWire1, "no start bit in binary frame")
	}
	r := &bitReader{data: data, pos: 8 * first}
	for (data[first]>>(7-uint(r.pos%8)))&1 == 0 {
		r.pos++
	}
	r.pos++ // the start bit
	frame := &Wire1Frame{Version: -1}
	versioned, err := r.take(1)
	if err != nil {
		return nil, err
	}
	if versioned == 1 {
		if frame.Version, err = r.take(8); err != nil {
			return nil, err
		}
		if frame.Version > 1 {
			return nil, newError(ErrWire1, fmt.Sprintf("unsupported WIRE-1 version %d", frame.Version))
		}
	}
	typeNumber, err := r.take(5)
	if err != nil {
		return nil, err
	}
	compressed, err := r.take(1)
	if err != nil {
		return nil, err
	}
	frame.Compressed = compressed == 1
	metaLen, err := r.take(8)
	if err != nil {
		return nil, err
	}
	meta := make([]byte, metaLen)
	for i := range meta {
		b, err := r.take(8)
		if err != nil {
			return nil, err
		}
		meta[i] = byte(b)
	}
	if frame.Compressed && len(meta) > 0 {
		if meta, err = inflate(meta); err != nil {
			return nil, err
		}
	}
	frame.Metadata = map[string]any{}
	if len(meta) > 0 {
		if frame.Metadata, err = wireObject(meta, "frame metadata"); err != nil {
			return nil, err
		}
	}
	frame.MsgType = MessageTypeName(typeNumber)
	if typeNumber == BinType {
		if frame.BinType, err = r.take(4); err != nil {
			return nil, err
		}
		frame.IsBin = true
		frame.Payload = r.wholeBytes()
		return frame, nil
	}
	body := r.wholeBytes()
	if frame.Compressed {
		if body, err = inflate(body); err != nil {
			return nil, err
		}
	}
	if frame.JSON, err = wireObject(body, "frame payload"); err != nil {
		return nil, err
	}
	return frame, nil
}
