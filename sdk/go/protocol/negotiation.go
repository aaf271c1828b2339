package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// The HiveMind v3 negotiation, client (initiator) side (spec 3.1-3.10):
//
//	AWAIT_HELLO --HELLO--> AWAIT_OFFER --offer--> NEEDS_PSK --Start(psk)--> AWAIT_MSG2
//	AWAIT_MSG2 --message 2--> COMPLETE (returns message 3 for XX, then the encrypted HELLO)
//
// Any error moves the machine to DEAD; every later call returns an error too. With
// SharedChannel (MQTT's <prefix>/out) the machine also skips the hub's answers to another
// session of the same identity; see ReceiveText.

type clientState int

const (
	stateAwaitHello clientState = iota
	stateAwaitOffer
	stateNeedsPSK
	stateAwaitMsg2
	stateComplete
	stateDead
)

// MaxHandshakeHex is the longest hex string a handshake envelope may carry (65535 bytes).
const MaxHandshakeHex = 2 * MaxMessage

// Message1Payload is the client's message 1 payload: canonical {"binarize":false,"encodings":[]}.
var Message1Payload = []byte(`{"binarize":false,"encodings":[]}`)

const (
	msgMalformed      = "Malformed HiveMind negotiation"
	msgMalformedShake = "Malformed Noise handshake envelope"
	msgOutOfOrder     = "Out-of-order Noise negotiation"
	msgNoMatch        = "No supported Noise pattern and cipher suite."
)

// SelectNoise picks (pattern, suite) from an offer's noise object (spec 3.4): the first of
// ChaChaPoly, AESGCM the hub offers; KKpsk0 when pinned, offered and not an XX retry, else
// XXpsk2 if offered. No match returns an error matching ErrNegotiation.
func SelectNoise(noise map[string]any, pinned, forceXX bool) (string, string, error) {
	patterns := stringSet(noise["patterns"])
	suites := stringSet(noise["suites"])
	suite := ""
	for _, candidate := range Suites {
		if suites[candidate] {
			suite = candidate
			break
		}
	}
	pattern := ""
	if pinned && !forceXX && patterns[PatternKK] {
		pattern = PatternKK
	} else if patterns[PatternXX] {
		pattern = PatternXX
	}
	if suite == "" || pattern == "" {
		return "", "", newError(ErrNegotiation, msgNoMatch)
	}
	return pattern, suite, nil
}

func stringSet(value any) map[string]bool {
	set := map[string]bool{}
	items, _ := value.([]any)
	for _, item := range items {
		if s, ok := item.(string); ok {
			set[s] = true
		}
	}
	return set
}

// ClientNegotiation is one negotiation attempt of the client. Feed every hub message to
// ReceiveText (cleartext) or ReceiveBinary. After the offer NeedsPSK is true and NodeID known:
// derive the PSK and call Start for message 1. Message 2 yields message 3 (XX only) and the
// encrypted HELLO, to send in that order.
//
// Errors: ErrKKFailed (retry at once with forceXX on a fresh carrier session), ErrHubKeyChanged
// (the hub key contradicts the pin), ErrDecrypt (an XX message 2 that does not authenticate: a
// refusal), ErrNegotiationSuperseded (SharedChannel only: retry at once on a fresh carrier
// session), ErrNegotiation / ErrHandshake for everything malformed or out of order.
type ClientNegotiation struct {
	static    KeyPair
	SiteID    string
	SessionID string
	hubPin    []byte
	forceXX   bool
	state     clientState
	handshake *Handshake
	channel   *SecureChannel

	// SharedChannel says the hub's channel to this client outlives the session (MQTT's
	// <prefix>/out): what the hub sent another session of the same identity may arrive before
	// the answers to this session's HELLO. Set it before the first ReceiveText; off, every
	// message out of order ends the negotiation.
	SharedChannel bool

	NodeID       string
	HelloPayload map[string]any
	OfferPayload map[string]any
	Pattern      string
	Suite        string
	HubStatic    []byte
}

// NewClientNegotiation starts an attempt; hubPin is the pinned hub key or nil.
func NewClientNegotiation(static KeyPair, siteID, sessionID string, hubPin []byte, forceXX bool) (*ClientNegotiation, error) {
	if hubPin != nil && len(hubPin) != keyLen {
		return nil, newError(ErrNegotiation, "a pinned hub key is 32 bytes")
	}
	return &ClientNegotiation{static: static, SiteID: siteID, SessionID: sessionID, hubPin: hubPin, forceXX: forceXX}, nil
}

// NeedsPSK is true between the offer and Start.
func (n *ClientNegotiation) NeedsPSK() bool { return n.state == stateNeedsPSK }

// Complete is true once the handshake finished and the encrypted HELLO was produced.
func (n *ClientNegotiation) Complete() bool { return n.state == stateComplete }

// Channel is the session's secure channel after completion, else nil.
func (n *ClientNegotiation) Channel() *SecureChannel {
	if n.state != stateComplete {
		return nil
	}
	return n.channel
}

func (n *ClientNegotiation) die(err error) error {
	n.state = stateDead
	n.handshake = nil
	return err
}

func (n *ClientNegotiation) checkAlive() error {
	if n.state == stateDead {
		return newError(ErrNegotiation, "the negotiation already ended")
	}
	return nil
}

// Outbound is one message the client must send: cleartext negotiation text, or (Binary) a
// Noise transport message.
type Outbound struct {
	Binary bool
	Data   []byte
}

// ReceiveText handles one cleartext hub message; it returns what to send, in order (after
// message 2 only: message 3 for XX, then the encrypted HELLO).
//
// With SharedChannel the hub's answers to another session of the same identity may come first,
// and nothing in the hub's HELLO or offer names the session it answers (they read the same for
// every session). All of that arrives before the hub's answer to this session's HELLO: the hub
// answers a prefix's messages in order and stops answering a session when a newer HELLO comes.
// So, instead of ending the negotiation:
//
//   - before message 1 goes out, the newest HELLO and offer win; an offer without a HELLO before
//     it is skipped (its HELLO went to an earlier subscriber), and so is any message 2 (none of
//     ours is out to be answered);
//   - after message 1, a HELLO or offer equal to the pair it was built on is skipped (message 1
//     was built on another session's copy of the pair, and the hub reads it against its own,
//     which is the same); one that differs is an ErrNegotiationSuperseded.
func (n *ClientNegotiation) ReceiveText(text []byte) ([]Outbound, error) {
	if err := n.checkAlive(); err != nil {
		return nil, err
	}
	if n.state == stateComplete {
		return nil, n.die(newError(ErrNegotiation, "Plaintext received after Noise authentication"))
	}
	obj, err := ParseJSONObject(text, true)
	if err != nil {
		return nil, n.die(newError(ErrNegotiation, msgMalformed))
	}
	payload, ok := obj["payload"].(map[string]any)
	if !ok {
		return nil, n.die(newError(ErrNegotiation, msgMalformed))
	}
	msgType, _ := obj["msg_type"].(string)
	if msgType == "hello" {
		if n.SharedChannel && n.state != stateAwaitHello {
			return nil, n.repeatedHello(payload)
		}
		return nil, n.hello(payload)
	}
	if msgType != "shake" && msgType != "handshake" {
		shown := fmt.Sprint(obj["msg_type"])
		if len(shown) > 40 {
			shown = shown[:40]
		}
		return nil, n.die(newError(ErrNegotiation, fmt.Sprintf("Unexpected %q message before Noise authentication", shown)))
	}
	noise, ok := payload["noise"].(map[string]any)
	if !ok {
		return nil, n.die(newError(ErrNegotiation, "The hub did not offer HiveMind v3 Noise."))
	}
	if _, has := noise["msg"]; !has {
		if n.SharedChannel && n.state != stateAwaitOffer {
			return nil, n.repeatedOffer(payload, noise)
		}
		return nil, n.offer(payload, noise)
	}
	if n.state != stateAwaitMsg2 {
		if n.SharedChannel {
			return nil, nil // another session's: no message 1 of ours is out yet
		}
		return nil, n.die(newError(ErrNegotiation, msgOutOfOrder))
	}
	return n.message2(noise)
}

// ReceiveBinary is an error before authentication; after it, the channel's Open.
func (n *ClientNegotiation) ReceiveBinary(message []byte) (*Frame, error) {
	if err := n.checkAlive(); err != nil {
		return nil, err
	}
	if n.state != stateComplete {
		return nil, n.die(newError(ErrNegotiation, "Application traffic received before Noise authentication"))
	}
	frame, err := n.channel.Open(message)
	if err != nil {
		return nil, n.die(err)
	}
	return frame, nil
}

func (n *ClientNegotiation) hello(payload map[string]any) error {
	nodeID, _ := payload["node_id"].(string)
	if n.state != stateAwaitHello || nodeID == "" {
		return n.die(newError(ErrNegotiation, "Missing node_id or duplicate Noise HELLO"))
	}
	if _, err := CanonicalJSON(payload); err != nil {
		return n.die(newError(ErrNegotiation, msgMalformed))
	}
	n.NodeID, n.HelloPayload, n.state = nodeID, payload, stateAwaitOffer
	return nil
}

func (n *ClientNegotiation) offer(payload, noise map[string]any) error {
	if n.state != stateAwaitOffer {
		return n.die(newError(ErrNegotiation, msgOutOfOrder))
	}
	if _, err := CanonicalJSON(payload); err != nil {
		return n.die(newError(ErrNegotiation, msgMalformed))
	}
	pattern, suite, err := SelectNoise(noise, n.hubPin != nil, n.forceXX)
	if err != nil {
		return n.die(err)
	}
	n.Pattern, n.Suite, n.OfferPayload, n.state = pattern, suite, payload, stateNeedsPSK
	return nil
}

// repeatedHello handles a HELLO after the first one on a shared channel (see ReceiveText).
func (n *ClientNegotiation) repeatedHello(payload map[string]any) error {
	if n.state == stateAwaitMsg2 {
		return n.checkSamePair(payload, n.HelloPayload)
	}
	// before message 1 (awaiting the offer, or holding one): start over from the newest HELLO
	n.OfferPayload, n.Pattern, n.Suite, n.state = nil, "", "", stateAwaitHello
	return n.hello(payload)
}

// repeatedOffer handles, on a shared channel, an offer that does not follow a HELLO of this
// negotiation at once.
func (n *ClientNegotiation) repeatedOffer(payload, noise map[string]any) error {
	switch n.state {
	case stateAwaitHello:
		return nil // its HELLO went to an earlier subscriber
	case stateNeedsPSK:
		n.state = stateAwaitOffer // message 1 is not out yet: the newest offer wins
		return n.offer(payload, noise)
	}
	return n.checkSamePair(payload, n.OfferPayload)
}

// checkSamePair: after message 1, received must equal the payload message 1 was built on.
func (n *ClientNegotiation) checkSamePair(received, used map[string]any) error {
	got, err := CanonicalJSON(received)
	if err != nil {
		return n.die(newError(ErrNegotiation, msgMalformed))
	}
	want, err := CanonicalJSON(used)
	if used == nil || err != nil || !bytes.Equal(got, want) {
		return n.die(newError(ErrNegotiationSuperseded,
			"The hub restarted the negotiation with another HELLO or offer than the one message 1 was built on."))
	}
	return nil
}

// Start returns the message 1 text once the PSK for NodeID is derived.
func (n *ClientNegotiation) Start(psk []byte) ([]byte, error) {
	if err := n.checkAlive(); err != nil {
		return nil, err
	}
	if n.state != stateNeedsPSK {
		return nil, n.die(newError(ErrNegotiation, "Start needs a received offer and may run once"))
	}
	prologue, err := BuildPrologue(n.HelloPayload, n.OfferPayload, ProtocolName(n.Pattern, n.Suite))
	if err != nil {
		return nil, n.die(err)
	}
	var remote []byte
	if n.Pattern == PatternKK {
		remote = n.hubPin
	}
	handshake, err := NewInitiatorHandshake(n.Pattern, n.Suite, prologue, psk, n.static, remote)
	if err != nil {
		return nil, n.die(err)
	}
	message, err := handshake.WriteMessage(Message1Payload)
	if err != nil {
		return nil, n.die(err)
	}
	n.handshake, n.state = handshake, stateAwaitMsg2
	return shakeText(map[string]any{"pattern": n.Pattern, "suite": n.Suite, "msg": hex.EncodeToString(message)})
}

// shakeText is a cleartext shake envelope (compact JSON; the bytes do not enter the prologue).
func shakeText(noise map[string]any) ([]byte, error) {
	out, err := json.Marshal(map[string]any{"msg_type": "shake", "payload": map[string]any{"noise": noise}, "metadata": map[string]any{}, "route": []any{}})
	if err != nil {
		return nil, newError(ErrNegotiation, "cannot serialise a shake message")
	}
	return out, nil
}

func (n *ClientNegotiation) message2(noise map[string]any) ([]Outbound, error) {
	msg, ok := noise["msg"].(string)
	if !ok || len(msg) > MaxHandshakeHex {
		return nil, n.die(newError(ErrNegotiation, msgMalformedShake))
	}
	message, err := hex.DecodeString(msg)
	if err != nil {
		return nil, n.die(newError(ErrNegotiation, msgMalformedShake))
	}
	handshake := n.handshake
	if _, err := handshake.ReadMessage(message); err != nil {
		if n.Pattern == PatternKK {
			return nil, n.die(newError(ErrKKFailed, "KKpsk0 message 2 failed: "+err.Error()))
		}
		return nil, n.die(err)
	}
	var out []Outbound
	if !handshake.Finished() {
		message3, err := handshake.WriteMessage(nil)
		if err != nil {
			return nil, n.die(err)
		}
		text, err := shakeText(map[string]any{"msg": hex.EncodeToString(message3)})
		if err != nil {
			return nil, n.die(err)
		}
		out = append(out, Outbound{Data: text})
	}
	hubKey := handshake.RemoteStatic()
	if n.hubPin != nil && !bytes.Equal(hubKey, n.hubPin) {
		return nil, n.die(newError(ErrHubKeyChanged, "Trusted Noise server key changed"))
	}
	send, recv, err := handshake.Split()
	if err != nil {
		return nil, n.die(err)
	}
	n.HubStatic = append([]byte(nil), hubKey...)
	n.channel = NewSecureChannel(send, recv)
	n.handshake, n.state = nil, stateComplete
	body, err := n.EncryptedHelloBody()
	if err != nil {
		return nil, n.die(err)
	}
	sealed, err := n.channel.SealJSON(body)
	if err != nil {
		return nil, n.die(err)
	}
	for _, part := range sealed {
		out = append(out, Outbound{Binary: true, Data: part})
	}
	return out, nil
}

// EncryptedHelloBody is the JSON body of the client's HELLO (spec 3.10); MQTT also sends it in
// the clear before the negotiation.
func (n *ClientNegotiation) EncryptedHelloBody() ([]byte, error) {
	return HelloEnvelope(n.SessionID, n.SiteID).Bytes()
}

// HelloEnvelope is the client HELLO envelope for a session and site.
func HelloEnvelope(sessionID, siteID string) HiveMessage {
	return HiveMessage{MsgType: "hello", Payload: map[string]any{
		"pubkey": "", "session": map[string]any{"session_id": sessionID}, "site_id": siteID,
	}}
}
