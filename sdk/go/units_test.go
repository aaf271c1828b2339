package thalovant

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// Unit tests of the pure parts: no hub needed.

func TestAPIErrorVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "conformance", "api-error-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var document struct {
		Cases []struct {
			Name     string `json:"name"`
			Response struct {
				Status      int    `json:"status"`
				ContentType string `json:"content_type"`
				Body        string `json:"body"`
			} `json:"response"`
			Expect struct {
				Status  int            `json:"status"`
				Code    *string        `json:"code"`
				Detail  *string        `json:"detail"`
				Problem map[string]any `json:"problem"`
			} `json:"expect"`
			MessageExcludes []string `json:"message_excludes"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &document); err != nil {
		t.Fatal(err)
	}
	if len(document.Cases) < 15 {
		t.Fatalf("expected the API error vectors, got %d cases", len(document.Cases))
	}
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	for _, c := range document.Cases {
		e := APIErrorFromResponse(c.Response.Status, []byte(c.Response.Body), func(string) string { return "" })
		if e.StatusCode != c.Expect.Status || e.Code != deref(c.Expect.Code) || e.Detail != deref(c.Expect.Detail) {
			t.Errorf("%s: status %d code %q detail %q", c.Name, e.StatusCode, e.Code, e.Detail)
		}
		if !reflect.DeepEqual(e.Problem, c.Expect.Problem) {
			t.Errorf("%s: problem %v, want %v", c.Name, e.Problem, c.Expect.Problem)
		}
		for _, secret := range c.MessageExcludes {
			if strings.Contains(e.Error(), secret) {
				t.Errorf("%s: the message repeats %q", c.Name, secret)
			}
		}
		if !strings.HasPrefix(e.Error(), "Thalovant API request failed with HTTP ") || !errors.Is(e, ErrAPI) {
			t.Errorf("%s: message %q", c.Name, e.Error())
		}
	}
}

func TestAPIErrorKinds(t *testing.T) {
	cases := map[*Kind]struct {
		status int
		body   string
	}{
		ErrAuth:          {401, `{"detail":"Could not validate credentials"}`},
		ErrPlan:          {403, `{"detail":"Free plan allows up to 1 connection.","code":"plan_limit"}`},
		ErrAlreadyLinked: {409, `{"detail":"linked","code":"home_assistant_already_linked","client_id":"c-1"}`},
	}
	for kind, c := range cases {
		e := APIErrorFromResponse(c.status, []byte(c.body), nil)
		if !errors.Is(e, kind) || !errors.Is(e, ErrAPI) || errors.Is(e, ErrConnection) {
			t.Errorf("%v: got %v", kind, e.Kind)
		}
	}
	if e := APIErrorFromResponse(403, []byte(`{"detail":"Insufficient scopes"}`), nil); !errors.Is(e, ErrAuth) {
		t.Error("403 Insufficient scopes is an auth error")
	}
	e := APIErrorFromResponse(429, []byte(`Too Many Requests`), func(name string) string {
		return map[string]string{"RateLimit-Reset": "7"}[name]
	})
	if e.RetryAfterSeconds == nil || *e.RetryAfterSeconds != 7 || e.Problem != nil {
		t.Errorf("429: %+v", e)
	}
	linked := APIErrorFromResponse(409, []byte(`{"detail":{"code":"home_assistant_already_linked","existing_client_id":"c-9"}}`), nil)
	if linked.ClientID != "c-9" || !errors.Is(linked, ErrAlreadyLinked) {
		t.Errorf("linked: %+v", linked)
	}
	var asAPI *APIError
	if !errors.As(error(linked), &asAPI) || asAPI.Code != "home_assistant_already_linked" {
		t.Error("errors.As reaches the APIError fields")
	}
}

func TestErrorHierarchy(t *testing.T) {
	rejected := &ClientKeyRejectedError{base: base{Kind: ErrClientKeyRejected, Message: "m"}, KeyFolder: "/k"}
	for _, kind := range []*Kind{ErrClientKeyRejected, ErrHubRefused, ErrConnection, ErrThalovant} {
		if !errors.Is(rejected, kind) {
			t.Errorf("client key rejected is %v", kind)
		}
	}
	if errors.Is(rejected, ErrHubKeyChanged) || errors.Is(rejected, ErrAPI) {
		t.Error("client key rejected is not a hub key change nor an API error")
	}
	denied := policyDeniedFromEvent(&Event{Name: EventPolicyDenied, Data: map[string]any{
		"denied_type": EventRecognizerLoopUtterance, "code": "intent_quota_exceeded", "reason": "quota used",
		"data": map[string]any{"period": "daily", "limit": 10.0, "used": 10.0, "reset_after": 3600.0},
	}})
	if !errors.Is(denied, ErrPolicyDenied) || !errors.Is(denied, ErrRuntime) || denied.Quota == nil || denied.Quota.Limit != 10 {
		t.Errorf("policy denied: %+v", denied)
	}
	if strings.Contains(denied.Error(), "Allowed types") || !strings.Contains(denied.Error(), "(intent_quota_exceeded)") {
		t.Errorf("policy denied message: %s", denied.Error())
	}
}

func TestIdentityParsing(t *testing.T) {
	id, err := IdentityFromMapping(map[string]any{
		"apiKey": " key ", "password": " pw ", "host": "wss://hub.example.com/base/", "siteId": "kiosk",
		"hub_http_port": "443", "path": "/hivemind//public/", "metadata": map[string]any{"api_token": "s", "room": "lobby"},
		"mqtt": map[string]any{"broker_url": "mqtts://user:pw@broker.example.com", "username": "u", "password": "p", "topic_prefix": " a/b/ "},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	if id.AccessKey != "key" || id.Password != " pw " || id.SiteID != "kiosk" || id.DefaultPort != 443 || id.DefaultPath != "/hivemind/public" {
		t.Fatalf("aliases: %+v", id)
	}
	if got := id.EndpointFor(ProtocolHTTPS); got != "https://hub.example.com:443/base/hivemind/public" {
		t.Errorf("endpoint base: %s", got)
	}
	if got := id.EndpointFor(ProtocolWSS); got != "wss://hub.example.com/base" {
		t.Errorf("wss endpoint from a wss master: %s", got)
	}
	if id.MQTT == nil || id.MQTT.Host != "broker.example.com" || id.MQTT.Port != 8883 || !id.MQTT.TLS || id.MQTT.TopicPrefix != "a/b" {
		t.Errorf("mqtt: %+v", id.MQTT)
	}
	if got := id.EnabledProtocols(); !reflect.DeepEqual(got, []HubProtocol{ProtocolWSS}) {
		t.Errorf("default flags: %v", got)
	}
	public := id.AsMap(false)
	text, _ := json.Marshal(public)
	if _, has := public["access_key"]; has || strings.Contains(string(text), "user:pw") || strings.Contains(string(text), `"password"`) ||
		mapping(public["metadata"])["api_token"] != redacted || strings.Contains(id.String(), " pw ") {
		t.Errorf("secrets shown: %s / %s", text, id)
	}
	for name, bad := range map[string]map[string]any{
		"missing key":  {"password": "p", "default_master": "https://h", "site_id": "s"},
		"bad port":     {"access_key": "k", "password": "p", "default_master": "https://h", "site_id": "s", "default_port": "x"},
		"bool port":    {"access_key": "k", "password": "p", "default_master": "https://h", "site_id": "s", "default_port": true},
		"bad metadata": {"access_key": "k", "password": "p", "default_master": "https://h", "site_id": "s", "metadata": "x"},
	} {
		if _, err := IdentityFromMapping(bad, ""); !errors.Is(err, ErrIdentity) {
			t.Errorf("%s: %v", name, err)
		}
	}
	defaults, _ := IdentityFromMapping(map[string]any{"access_key": "k", "password": "p", "default_master": "https://h", "site_id": "s"}, "")
	if defaults.EndpointBase() != "https://h:5679" || defaults.EndpointFor(ProtocolWSS) != "" {
		t.Errorf("the 5679 port trap: %s", defaults.EndpointBase())
	}
	if p, _ := SelectProtocol(defaults, ""); p != ProtocolHTTPS {
		t.Errorf("no wss endpoint selects https, got %s", p)
	}
	if _, err := SelectProtocol(defaults, ProtocolMQTT); !errors.Is(err, ErrUnsupportedProtocol) {
		t.Errorf("mqtt without credentials: %v", err)
	}
}

func TestIdentityFromEnvAndConfig(t *testing.T) {
	env := map[string]string{"THALOVANT_ACCESS_KEY": "k", "THALOVANT_PASSWORD": "p", "THALOVANT_SITE_ID": "s",
		"THALOVANT_HUB_HTTP_HOST": "https://h", "THALOVANT_HUB_HTTP_PORT": "8443", "THALOVANT_HUB_WSS_HOST": "wss://h:8443/x"}
	id, err := identityFromEnv("THALOVANT_", func(name string) string { return env[name] })
	if err != nil || id.DefaultPort != 8443 || id.EndpointFor(ProtocolWSS) != "wss://h:8443/x" || id.EndpointBase() != "https://h:8443" {
		t.Fatalf("env identity: %v %+v", err, id)
	}
	if _, err := identityFromEnv("THALOVANT_", func(string) string { return "" }); !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), "THALOVANT_ACCESS_KEY") {
		t.Fatalf("empty env: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	config := filepath.Join(dir, "thalovant", "config.yaml")
	_ = os.MkdirAll(filepath.Dir(config), 0o700)
	document := "default_profile: dev\nprofiles:\n  dev:\n    access_key: k1\n    password: p1\n    site_id: dev-site\n    default_master: https://dev\n  prod:\n    identity: {access_key: k2, password: p2, site_id: prod-site, default_master: 'https://prod'}\n"
	_ = os.WriteFile(config, []byte(document), 0o600)
	if id, err := IdentityFromConfig("", ""); err != nil || id.SiteID != "dev-site" {
		t.Fatalf("selected profile: %v %+v", err, id)
	}
	if id, err := IdentityFromConfig("", "prod"); err != nil || id.SiteID != "prod-site" || id.SourcePath != config {
		t.Fatalf("prod profile: %v %+v", err, id)
	}
	if _, err := IdentityFromConfig("", "nope"); !errors.Is(err, ErrIdentity) {
		t.Fatalf("unknown profile: %v", err)
	}
	_ = os.Chmod(config, 0o640)
	if _, err := IdentityFromConfig("", "prod"); !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), "too permissive") {
		t.Fatalf("0640 config: %v", err)
	}
	_ = os.WriteFile(config, []byte("profiles: [unclosed"), 0o600)
	_ = os.Chmod(config, 0o600)
	if _, err := IdentityFromConfig("", "prod"); !errors.Is(err, ErrIdentity) {
		t.Fatalf("bad YAML: %v", err)
	}
}

func TestNoiseStoreLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hivemind")
	store := &NoiseStore{Directory: dir}
	pair, err := store.StaticKey()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := store.StaticKey()
	if string(again.Private) != string(pair.Private) {
		t.Fatal("the static key is created once")
	}
	key := make([]byte, 32)
	key[0] = 7
	if err := store.PinHub("wss://h:443", key); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 32)
	if err := store.PinHub("wss://h:443", other); err != nil {
		t.Fatal(err)
	}
	if pin, _ := store.HubPin("wss://h:443"); pin[0] != 7 {
		t.Fatal("an existing pin is never replaced")
	}
	if err := store.StorePSK("access", "node", key); err != nil || store.CachedPSK("access", "node")[0] != 7 {
		t.Fatalf("psk cache: %v", err)
	}
	store.ForgetPSK("access", "node")
	if store.CachedPSK("access", "node") != nil {
		t.Fatal("forgotten PSK")
	}
	for i := 0; i < MaxPSKEntries+5; i++ {
		_ = store.StorePSK("access", "node-"+string(rune('a'+i)), key)
	}
	path, _ := store.pskPath()
	if len(store.pskEntries(path)) != MaxPSKEntries {
		t.Fatal("the PSK cache is bounded")
	}
	for _, name := range []string{"_identity.json", "unnamed-node_noise.key", "unnamed-node_noise_psks.json"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, err, info)
		}
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", info.Mode())
	}
	var document map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "_identity.json"))
	if json.Unmarshal(raw, &document) != nil || document["name"] != "unnamed-node" || mapping(document["pinned_noise_keys"])["wss://h:443"] == nil {
		t.Fatalf("store document: %s", raw)
	}
	// a symlinked state file is refused
	_ = os.Remove(filepath.Join(dir, "_identity.json"))
	_ = os.Symlink(filepath.Join(t.TempDir(), "elsewhere.json"), filepath.Join(dir, "_identity.json"))
	if _, err := store.Pins(); !errors.Is(err, ErrIdentity) {
		t.Fatalf("symlink: %v", err)
	}
}

func TestEventsAndDisplayItems(t *testing.T) {
	event := Event{Name: "speak", Data: map[string]any{
		"utterance": "<speak>Hello <b>there</b></speak>", "request_id": "in-data",
		"rich_media": `{"table":{"title":"T"},"quick_replies":["yes",{"label":"No","value":"n"}],"images":["https://i/1.png"]}`,
	}, Context: map[string]any{"session": map[string]any{"request_id": "in-session", "session_id": "s"}}}
	if event.RequestID() != "in-session" || event.SessionID() != "s" || event.Text() != "<speak>Hello <b>there</b></speak>" {
		t.Fatalf("accessors: %s %s", event.RequestID(), event.SessionID())
	}
	items := event.DisplayItems()
	kinds := []string{}
	for _, item := range items {
		kinds = append(kinds, item.Kind)
	}
	if !reflect.DeepEqual(kinds, []string{"text", "table", "choices", "image"}) || items[0].Text != "Hello there" {
		t.Fatalf("display items: %+v", items)
	}
	if items[2].String() != "[choices] yes, No" {
		t.Errorf("choices: %s", items[2])
	}
	reply := newReply(Reply{Text: "x", Events: []Event{event}})
	if got := reply.DisplayItems(2); len(got) != 2 || got[0].Kind != "table" {
		t.Errorf("reply display items: %+v", got)
	}
	if got := reply.DisplayItems(600); len(got) != 3 {
		t.Errorf("reply display items: %+v", got)
	}
}

func TestContextAndBusRules(t *testing.T) {
	ctx := BuildClientContext(map[string]any{"metadata": map[string]any{"a": 1}}, ClientContextOptions{
		UserID: "user-42", UserName: "Ada", Source: "kiosk", Platform: "kiosk", Locale: "en-US", Channel: "chat",
		DeviceID: "d1", Metadata: map[string]any{"trace_id": "t"}, SessionID: "sess",
	})
	if mapping(ctx["user"])["id"] != "user-42" || ctx["user_name"] != "Ada" || mapping(ctx["device"])["platform"] != "kiosk" ||
		mapping(ctx["metadata"])["a"] != 1 || mapping(ctx["session"])["session_id"] != "sess" {
		t.Fatalf("context: %v", ctx)
	}
	rid, data, msg := utteranceMessage("hi", "en-us", "", "", ctx, "site", map[string]any{"active_skills": []any{"x"}})
	full := runtimeContext(msg, "UA/1", "conn-sid", "site", map[string]any{"room": "r", "trace_id": "identity"})
	session := mapping(full["session"])
	if session["session_id"] != "sess" || session["request_id"] != rid || full["thalovant_request_id"] != rid ||
		full["source"] != "kiosk" || full["destination"] != "HiveMind" || session["active_skills"] == nil ||
		mapping(full["metadata"])["trace_id"] != "t" || mapping(full["metadata"])["room"] != "r" || data["lang"] != "en-us" {
		t.Fatalf("utterance context: %v", full)
	}
	plain := runtimeContext(nil, "UA/1", "conn-sid", "site", nil)
	if mapping(plain["session"])["session_id"] != "conn-sid" || plain["source"] != "UA/1" {
		t.Fatalf("runtime context: %v", plain)
	}
	if got := carriedFields(map[string]any{"active_skills": []any{"a"}, "lang": "en", "context": map[string]any{}}); len(got) != 1 {
		t.Fatalf("carried fields: %v", got)
	}
}

func TestReplyCollectorRules(t *testing.T) {
	speak := func(text string) Event { return Event{Name: EventSpeak, Data: map[string]any{"utterance": text}} }
	c := newReplyCollector("r", "s", 20*time.Millisecond, 50*time.Millisecond)
	c.feed(speak("one  two"))
	c.feed(speak("one two"))
	c.feed(speak("three"))
	reply, err := c.result(t.Context(), time.Second)
	if err != nil || reply.Text != "one two three" || !reply.Handled {
		t.Fatalf("settle: %v %+v", err, reply)
	}
	c = newReplyCollector("r", "s", time.Second, 30*time.Millisecond)
	c.feed(Event{Name: EventIntentUnmatched, Data: map[string]any{"utterance": "gibberish"}})
	_, err = c.result(t.Context(), time.Second)
	var unanswered *UnansweredError
	if !errors.As(err, &unanswered) || unanswered.Said != "gibberish" {
		t.Fatalf("unmatched: %v", err)
	}
	c = newReplyCollector("r", "s", time.Second, time.Second)
	c.feed(Event{Name: EventPolicyDenied, Data: map[string]any{"denied_type": EventRecognizerLoopUtterance, "allowed": []any{}}})
	if _, err = c.result(t.Context(), time.Second); !errors.Is(err, ErrPolicyDenied) {
		t.Fatalf("denied: %v", err)
	}
	c = newReplyCollector("r", "s", time.Second, time.Second)
	if _, err = c.result(t.Context(), 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("deadline: %v", err)
	}
	c = newReplyCollector("r", "s", time.Second, 30*time.Millisecond)
	c.feed(Event{Name: EventUtteranceHandled})
	if _, err = c.result(t.Context(), time.Second); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not emit a speak") {
		t.Fatalf("handled without speech: %v", err)
	}
}

// A new Events channel starts with the undelivered events since the last publication, oldest
// first, at most the last recentEvents of them.
func TestEventsStartWithRecentUndelivered(t *testing.T) {
	transport := newTransport(ProtocolWSS)
	event := func(i int) Event { return Event{Name: "e", Data: map[string]any{"i": i}} }
	for i := 0; i < 5; i++ {
		transport.deliver(event(i))
	}
	transport.markPublication()
	for i := 5; i < 10; i++ {
		transport.deliver(event(i))
	}
	first := transport.Events()
	for i := 5; i < 10; i++ {
		if got := <-first; got.Data["i"] != i {
			t.Fatalf("event %d read as %v", i, got.Data["i"])
		}
	}
	if len(first) != 0 {
		t.Fatalf("%d more events than sent since the publication", len(first))
	}
	second := transport.Events()
	if len(second) != 0 {
		t.Fatalf("events already delivered are delivered again: %d", len(second))
	}
	transport.StopEvents(first)
	transport.StopEvents(second)
	transport.markPublication()
	if len(transport.recent) != 0 {
		t.Fatalf("%d events kept after a publication", len(transport.recent))
	}
	for i := 0; i < recentEvents+40; i++ {
		transport.deliver(event(100 + i))
	}
	third := transport.Events()
	if len(third) != recentEvents {
		t.Fatalf("%d events, want the last %d", len(third), recentEvents)
	}
	for i := 40; i < recentEvents+40; i++ {
		if got := <-third; got.Data["i"] != 100+i {
			t.Fatalf("event %d read as %v", 100+i, got.Data["i"])
		}
	}
}

// runtimeContext leaves the caller's context as it was; withRuntimeContext builds the same
// context in the map it is given.
func TestRuntimeContextCopiesOrOwns(t *testing.T) {
	for _, base := range []map[string]any{
		nil,
		{"session": "not a map", "metadata": map[string]any{"a": 1}},
		{"session": map[string]any{"session_id": "default", "active_skills": []any{[]any{"x", 1.0}}}, "session_id": "top", "source": "me"},
	} {
		before := deepCopyMap(base)
		copied := runtimeContext(base, "UA/1", "conn", "site", map[string]any{"room": "r", "a": 2})
		if !reflect.DeepEqual(deepCopyMap(base), before) {
			t.Fatalf("runtimeContext changed its argument: %v", base)
		}
		owned := withRuntimeContext(deepCopyMap(base), "UA/1", "conn", "site", map[string]any{"room": "r", "a": 2})
		if !reflect.DeepEqual(copied, owned) {
			t.Fatalf("runtimeContext %v, withRuntimeContext %v", copied, owned)
		}
	}
}

func TestNormaliseContext(t *testing.T) {
	context := map[string]any{"destination": "d", "source": "s", "hivemind_verified_source_peer": "p", "k": 1}
	got := normaliseContext(context)
	if !reflect.DeepEqual(got, map[string]any{"source": "d", "k": 1}) {
		t.Fatalf("normalised: %v", got)
	}
}

// An ask's message shares the carried conversation values and leaves them as they were.
func TestUtteranceLeavesCarriedValues(t *testing.T) {
	carried := map[string]any{"active_skills": []any{[]any{"jokes", 1.5}}, "context": map[string]any{"k": map[string]any{"n": 1.0}}}
	before := deepCopyMap(carried)
	_, data, msg := utteranceMessage("hi", "en-us", "", "rid", map[string]any{"session": map[string]any{"lang": "fr"}}, "site", carried)
	full := withRuntimeContext(msg, "UA/1", "conn", "site", map[string]any{"m": 1.0})
	body, err := protocol.BusEnvelope(EventRecognizerLoopUtterance, data, full).Bytes()
	if err != nil || !strings.Contains(string(body), `"active_skills":[["jokes",1.5]]`) {
		t.Fatalf("message %s, %v", body, err)
	}
	if !reflect.DeepEqual(carried, before) {
		t.Fatalf("carried values changed: %v", carried)
	}
	session := mapping(full["session"])
	if session["request_id"] != "rid" || full["request_id"] != "rid" || full["thalovant_request_id"] != "rid" || session["lang"] != "fr" {
		t.Fatalf("context: %v", full)
	}
}

// A handled event updates the conversation state of its ask's session until CarryGrace after
// the ask ended, not after.
func TestCarryWatchEnds(t *testing.T) {
	c := &Client{Identity: &Identity{SiteID: "site"}, Transport: newTransport(ProtocolWSS),
		collectors: map[string]*replyCollector{}, carryWatch: map[string]string{}, carried: map[string]map[string]any{}}
	handled := func(rid string) protocol.HiveMessage {
		return protocol.BusEnvelope(EventUtteranceHandled, nil, map[string]any{"request_id": rid,
			"session": map[string]any{"session_id": "s-" + rid, "active_skills": []any{"jokes"}}})
	}
	now := time.Now()
	c.carryWatch["ended"], c.carryWatch["ending"], c.carryWatch["asking"] = "s-ended", "s-ending", "s-asking"
	c.carryEnds = []carryEnd{{"ended", now.Add(-time.Millisecond)}, {"ending", now.Add(time.Hour)}}
	for _, rid := range []string{"ended", "ending", "asking"} {
		c.onEnvelope(handled(rid))
	}
	if _, ok := c.carried["s-ended"]; ok {
		t.Fatal("a handled event after the carry grace updated the conversation")
	}
	for _, sid := range []string{"s-ending", "s-asking"} {
		if mapping(c.carried[sid]) == nil {
			t.Fatalf("no conversation state kept for %s: %v", sid, c.carried)
		}
	}
	if _, ok := c.carryWatch["ended"]; ok || len(c.carryEnds) != 1 || len(c.carryWatch) != 2 {
		t.Fatalf("watches %v, ends %v", c.carryWatch, c.carryEnds)
	}
	c.endCarryWatches(now.Add(2 * time.Hour))
	if len(c.carryWatch) != 1 || len(c.carryEnds) != 0 {
		t.Fatalf("watches %v, ends %v", c.carryWatch, c.carryEnds)
	}
}
