package thalovant

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/thalovant/thalovant-go-sdk/internal/jsonvalue"
)

// Outgoing bus messages: ids, the runtime context (dataplane.md 6.1) and utterance contexts
// (6.2), as pure functions over plain maps.

const (
	defaultDestination = "HiveMind"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// connectionSessionID is a new connection SID (never "default").
func connectionSessionID() string { return "thalovant-go-" + randomHex(16) }

func newRequestID() string { return "thalovant-request-" + randomHex(16) }

func newConversationSessionID() string { return "thalovant-session-" + randomHex(16) }

// runtimeContext is the context every outgoing bus message gets; keys are added only when
// missing. source and platform default to the user agent, destination to HiveMind; the
// session gets the connection SID when it has none (or "default") and the identity's site
// id; identity metadata is merged under metadata with the caller's keys winning.
func runtimeContext(context map[string]any, useragent, connectionSID, siteID string, identityMetadata map[string]any) map[string]any {
	return withRuntimeContext(deepCopyMap(context), useragent, connectionSID, siteID, identityMetadata)
}

// withRuntimeContext is runtimeContext applied to result itself (a context the caller owns,
// its session map included) and returned.
func withRuntimeContext(result map[string]any, useragent, connectionSID, siteID string, identityMetadata map[string]any) map[string]any {
	for _, field := range [...]struct{ key, value string }{
		{"source", useragent}, {"platform", useragent}, {"destination", defaultDestination},
	} {
		if _, ok := result[field.key]; !ok {
			result[field.key] = field.value
		}
	}
	session := mapping(result["session"])
	if session == nil {
		session = map[string]any{}
	}
	if sid := nonEmpty(session["session_id"]); sid == "" || sid == "default" {
		if top := nonEmpty(result["session_id"]); top != "" && top != "default" {
			session["session_id"] = top
		} else {
			session["session_id"] = connectionSID
		}
	}
	if nonEmpty(session["site_id"]) == "" {
		session["site_id"] = siteID
	}
	result["session"] = session
	if len(identityMetadata) > 0 {
		merged := deepCopyMap(identityMetadata)
		for key, value := range mapping(result["metadata"]) {
			merged[key] = value
		}
		result["metadata"] = merged
	}
	return result
}

// utteranceMessage is (request id, data, context) of a recognizer_loop:utterance before the
// runtime context applies; carried holds the conversation fields remembered for the session,
// each set unless the caller's context sets it. The context is the message's own, except for
// the carried values, which it shares (they are never modified).
func utteranceMessage(text, lang, sessionID, requestID string, context map[string]any, siteID string, carried map[string]any) (string, map[string]any, map[string]any) {
	rid := requestID
	if rid == "" {
		rid = newRequestID()
	}
	data := map[string]any{"utterances": []any{text}, "lang": lang}
	ctx := deepCopyMap(context)
	session := deepCopyMap(mapping(ctx["session"]))
	explicit := sessionID
	if explicit == "" {
		explicit = nonEmpty(ctx["session_id"])
	}
	if explicit != "" {
		session["session_id"] = explicit
	}
	if nonEmpty(session["site_id"]) == "" {
		session["site_id"] = siteID
	}
	if _, ok := session["lang"]; !ok {
		session["lang"] = lang
	}
	var ridValue any = rid // one string header for the three places
	session["request_id"] = ridValue
	for key, value := range carried {
		if _, ok := session[key]; !ok {
			session[key] = value
		}
	}
	ctx["session"] = session
	ctx["request_id"] = ridValue
	ctx["thalovant_request_id"] = ridValue
	return rid, data, ctx
}

// carriedFields are the truthy conversation fields of a handled event's session, deep copies
// that nothing modifies afterwards (every ask of the session shares them).
func carriedFields(session map[string]any) map[string]any {
	out := map[string]any{}
	for _, key := range ConversationSessionFields {
		if value, ok := session[key]; ok && jsonvalue.Truthy(value) {
			out[key] = deepCopy(value)
		}
	}
	return out
}

// contextSessionID is the caller context's own session id (not "default"), or "".
func contextSessionID(context map[string]any) string {
	if sid := nonEmpty(mapping(context["session"])["session_id"]); sid != "" && sid != "default" {
		return sid
	}
	if sid := nonEmpty(context["session_id"]); sid != "" && sid != "default" {
		return sid
	}
	return ""
}
