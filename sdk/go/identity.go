package thalovant

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultPort is the port an identity without default_port gets (dataplane.md 1.2).
const DefaultPort = 5679

const redacted = "<redacted>"

var secretWords = []string{"password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey",
	"credential", "authorization", "cryptokey", "initialidentify"}

func normalisedKey(name string) string {
	return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(name))
}

// isSecretKey is true for a key name that looks like it holds a secret (apiKey,
// db_password...); reference keys (apiKeyRef) are not secrets.
func isSecretKey(name string) bool {
	n := normalisedKey(name)
	if strings.HasSuffix(n, "ref") || strings.HasSuffix(n, "refs") {
		return false
	}
	for _, word := range secretWords {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

// redactSecrets is a deep copy with the values of secret-looking keys replaced.
func redactSecrets(value any) any {
	switch v := value.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, item := range v {
			if isSecretKey(key) {
				out[key] = redacted
			} else {
				out[key] = redactSecrets(item)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = redactSecrets(item)
		}
		return out
	}
	return value
}

// MQTTCredentials are client-scoped MQTT broker credentials (dataplane.md 1.4). Host and Port
// come from the endpoint URL (port 8883 with TLS, else 1883, when the URL names none).
type MQTTCredentials struct {
	Endpoint    string
	Username    string
	Password    string
	TopicPrefix string
	QoS         int
	TLS         bool
	Host        string
	Port        int
}

func first(source map[string]any, keys ...string) any {
	for _, key := range keys {
		if value, ok := source[key]; ok && value != nil {
			return value
		}
	}
	return nil
}

// mqttFromMapping reads the block; nil when endpoint, username or password is missing.
func mqttFromMapping(value any) *MQTTCredentials {
	source, ok := value.(map[string]any)
	if !ok {
		return nil
	}
	endpoint := normalizeEndpoint(first(source, "endpoint", "broker_url", "brokerUrl"))
	username, _ := first(source, "username", "broker_username", "brokerUsername").(string)
	password, _ := first(source, "password", "broker_password", "brokerPassword").(string)
	if endpoint == "" || username == "" || password == "" {
		return nil
	}
	m := &MQTTCredentials{Endpoint: endpoint, Username: username, Password: password, QoS: 1}
	if prefix, ok := first(source, "topic_prefix", "topicPrefix").(string); ok && strings.TrimSpace(prefix) != "" {
		m.TopicPrefix = strings.TrimRight(strings.TrimSpace(prefix), "/")
	}
	switch qos := source["qos"].(type) {
	case float64:
		if qos == 0 {
			m.QoS = 0
		}
	case int:
		if qos == 0 {
			m.QoS = 0
		}
	case string:
		if strings.TrimSpace(qos) == "0" {
			m.QoS = 0
		}
	}
	m.TLS = strings.HasPrefix(strings.ToLower(endpoint), "mqtts://")
	if raw, present := source["tls"]; present {
		if flag, ok := parseFlag(raw); ok {
			m.TLS = flag
		}
	}
	target := endpoint
	if !strings.Contains(target, "://") {
		target = "mqtt://" + target
	}
	if parts, err := url.Parse(target); err == nil {
		m.Host = parts.Hostname()
		if port, err := strconv.Atoi(parts.Port()); err == nil && port > 0 {
			m.Port = port
		} else if m.TLS || strings.EqualFold(parts.Scheme, "mqtts") {
			m.Port = 8883
		} else {
			m.Port = 1883
		}
	}
	return m
}

func (m *MQTTCredentials) asMap(includeSecrets bool) map[string]any {
	if !includeSecrets {
		return map[string]any{"endpoint": stripUserinfo(m.Endpoint), "tls": m.TLS}
	}
	out := map[string]any{"endpoint": m.Endpoint, "tls": m.TLS, "username": m.Username, "password": m.Password}
	if m.TopicPrefix != "" {
		out["topic_prefix"] = m.TopicPrefix
	}
	if m.QoS != 1 {
		out["qos"] = m.QoS
	}
	return out
}

// Identity is a client's identity on one hub (dataplane.md 1.1): what it needs to reach it.
// Load it with IdentityFromFile, IdentityFromConfig, IdentityFromEnv or IdentityFromMapping;
// write it with Save (0600). String and AsMap(false) hide every secret.
type Identity struct {
	AccessKey          string
	Password           string
	SiteID             string
	DefaultMaster      string
	DefaultPort        int
	DefaultPath        string
	DataPlaneEndpoints map[string]string // keys "wss", "https", "mqtt"
	Protocols          HubProtocolSettings
	MQTT               *MQTTCredentials
	Metadata           map[string]any
	// SourcePath is the absolute path of the file the identity was read from; it decides
	// where the client keeps its Noise state (the "hivemind" folder beside it).
	SourcePath string
}

func requiredText(source map[string]any, what string, strip bool, keys ...string) (string, error) {
	value := first(source, keys...)
	if value == nil {
		aliases := ""
		if len(keys) > 1 {
			aliases = " (also accepted: " + strings.Join(keys[1:], ", ") + ")"
		}
		return "", newErr(ErrIdentity, "The identity is missing %s%s.", keys[0], aliases)
	}
	text, ok := value.(string)
	if !ok {
		return "", newErr(ErrIdentity, "The identity's %s must be a string.", what)
	}
	if strip {
		text = strings.TrimSpace(text)
	}
	if text == "" {
		return "", newErr(ErrIdentity, "The identity's %s is empty.", what)
	}
	return text, nil
}

func readPort(value any) (int, error) {
	var port int
	switch v := value.(type) {
	case bool:
		return 0, newErr(ErrIdentity, "The identity's default_port must be an integer, not a boolean.")
	case float64:
		if v != math.Trunc(v) {
			return 0, newErr(ErrIdentity, "The identity's default_port must be an integer, got %v.", v)
		}
		port = int(v)
	case int:
		port = v
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, newErr(ErrIdentity, "The identity's default_port must be an integer, got %q.", v)
		}
		port = n
	default:
		return 0, newErr(ErrIdentity, "The identity's default_port must be an integer.")
	}
	if port < 0 || port > 65535 {
		return 0, newErr(ErrIdentity, "The identity's default_port must be between 0 and 65535, got %d.", port)
	}
	return port, nil
}

func normalisePath(value any) (string, error) {
	if value == nil {
		return "", nil
	}
	text, ok := value.(string)
	if !ok {
		return "", newErr(ErrIdentity, "The identity's default_path must be a string.")
	}
	var parts []string
	for _, part := range strings.Split(strings.TrimSpace(text), "/") {
		if part != "" {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return "", nil
	}
	return "/" + strings.Join(parts, "/"), nil
}

// IdentityFromMapping builds an identity from a mapping, accepting the aliases of
// dataplane.md 1.1. sourcePath may be "".
func IdentityFromMapping(data map[string]any, sourcePath string) (*Identity, error) {
	if data == nil {
		return nil, newErr(ErrIdentity, "Identity material must be a JSON object (a mapping).")
	}
	var err error
	id := &Identity{DefaultPort: DefaultPort}
	if id.AccessKey, err = requiredText(data, "access key", true, "access_key", "key", "api_key", "apiKey"); err != nil {
		return nil, err
	}
	if id.Password, err = requiredText(data, "password", false, "password"); err != nil {
		return nil, err
	}
	if id.DefaultMaster, err = requiredText(data, "default_master", true, "default_master", "defaultMaster", "host", "hub_http_host", "hubHttpHost", "master"); err != nil {
		return nil, err
	}
	id.DefaultMaster = strings.TrimRight(id.DefaultMaster, "/")
	if id.DefaultMaster == "" {
		return nil, newErr(ErrIdentity, "The identity's default_master is empty.")
	}
	if id.SiteID, err = requiredText(data, "site id", true, "site_id", "siteId", "site", "client_id", "clientId"); err != nil {
		return nil, err
	}
	if value := first(data, "default_port", "port", "hub_http_port"); value != nil {
		if id.DefaultPort, err = readPort(value); err != nil {
			return nil, err
		}
	}
	if id.DefaultPath, err = normalisePath(first(data, "default_path", "defaultPath", "hub_http_path", "path", "uri_path")); err != nil {
		return nil, err
	}
	id.Metadata = map[string]any{}
	if raw, present := data["metadata"]; present && raw != nil {
		metadata, ok := raw.(map[string]any)
		if !ok {
			return nil, newErr(ErrIdentity, "The identity's metadata must be a mapping.")
		}
		for key, value := range metadata {
			id.Metadata[key] = value
		}
	}
	id.DataPlaneEndpoints = readEndpoints(data)
	id.Protocols = protocolSettingsFrom(data)
	id.MQTT = mqttFromMapping(data["mqtt"])
	if sourcePath != "" {
		if id.SourcePath, err = filepath.Abs(sourcePath); err != nil {
			id.SourcePath = sourcePath
		}
	}
	return id, nil
}

// IdentityFromFile reads an identity JSON file; it must be private (0600), dataplane.md 1.5.
func IdentityFromFile(path string) (*Identity, error) {
	target := expandUser(path)
	text, err := readPrivateText(target)
	if err != nil {
		return nil, err
	}
	var data map[string]any
	if err := json.Unmarshal(text, &data); err != nil {
		return nil, newErr(ErrIdentity, "%s is not a valid identity file: it must hold one JSON object.", target)
	}
	return IdentityFromMapping(data, target)
}

// IdentityFromConfig reads the identity of a profile of the YAML config file; path "" is the
// default path (see DefaultConfigPath) and profile "" the file's selected (else "default")
// profile.
func IdentityFromConfig(path, profile string) (*Identity, error) {
	target := expandUser(path)
	if path == "" {
		target = DefaultConfigPath()
	}
	if _, err := os.Stat(target); err != nil {
		return nil, newErr(ErrIdentity, "No Thalovant config file at %s. Create it (mode 0600) or pass its path.", target)
	}
	document, err := loadConfigDocument(target, true)
	if err != nil {
		return nil, err
	}
	mapping, err := selectIdentityMapping(document, profile, "config file "+target)
	if err != nil {
		return nil, err
	}
	return IdentityFromMapping(mapping, target)
}

// IdentityFromEnv builds an identity from the THALOVANT_* environment variables
// (dataplane.md 1.5).
func IdentityFromEnv() (*Identity, error) { return identityFromEnv("THALOVANT_", os.Getenv) }

func identityFromEnv(prefix string, getenv func(string) string) (*Identity, error) {
	get := func(names ...string) string {
		for _, name := range names {
			if value := strings.TrimSpace(getenv(prefix + name)); value != "" {
				return value
			}
		}
		return ""
	}
	data := map[string]any{}
	var missing []string
	for _, field := range []struct {
		key      string
		names    []string
		required bool
	}{
		{"access_key", []string{"ACCESS_KEY"}, true},
		{"password", []string{"PASSWORD"}, true},
		{"site_id", []string{"SITE_ID"}, true},
		{"default_master", []string{"HUB_HTTP_HOST", "DEFAULT_MASTER"}, true},
		{"default_port", []string{"HUB_HTTP_PORT", "DEFAULT_PORT"}, false},
		{"default_path", []string{"HUB_HTTP_PATH", "DEFAULT_PATH"}, false},
	} {
		if value := get(field.names...); value != "" {
			data[field.key] = value
		} else if field.required {
			missing = append(missing, prefix+field.names[0])
		}
	}
	if len(missing) > 0 {
		return nil, newErr(ErrIdentity, "No identity in the environment: set %s (or pass an identity file).", strings.Join(missing, ", "))
	}
	endpoints := map[string]any{}
	for key, names := range map[string][]string{
		"https": {"HUB_HTTPS_HOST", "HUB_HTTP_HOST"}, "wss": {"HUB_WSS_HOST", "HUB_WEBSOCKET_HOST"}, "mqtt": {"HUB_MQTT_HOST"},
	} {
		if value := get(names...); value != "" {
			endpoints[key] = value
		}
	}
	if len(endpoints) > 0 {
		data["data_plane_endpoints"] = endpoints
	}
	mqtt := map[string]any{}
	for key, names := range map[string][]string{
		"endpoint": {"MQTT_ENDPOINT", "HUB_MQTT_HOST"}, "username": {"MQTT_USERNAME"}, "password": {"MQTT_PASSWORD"},
		"topic_prefix": {"MQTT_TOPIC_PREFIX"}, "qos": {"MQTT_QOS"},
	} {
		if value := get(names...); value != "" {
			mqtt[key] = value
		}
	}
	if len(mqtt) > 0 {
		data["mqtt"] = mqtt
	}
	return IdentityFromMapping(data, "")
}

// EnabledProtocols lists the enabled protocols, in the order wss, https, mqtt.
func (id *Identity) EnabledProtocols() []HubProtocol { return id.Protocols.Enabled() }

// SupportsProtocol is the protocol's flag (https and http share one).
func (id *Identity) SupportsProtocol(protocol HubProtocol) bool {
	return id.Protocols.IsEnabled(protocol)
}

func authorityHasPort(raw string) bool {
	rest := raw
	if _, after, found := strings.Cut(raw, "://"); found {
		rest = after
	}
	authority, _, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = authority[at+1:]
	}
	return strings.Contains(authority, ":")
}

func withPort(raw string, port int) string {
	if authorityHasPort(raw) {
		return raw
	}
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		scheme, rest = "", raw
	}
	authority, tail, slash := strings.Cut(rest, "/")
	joined := authority + ":" + strconv.Itoa(port)
	if slash {
		joined += "/" + tail
	}
	if scheme != "" {
		return scheme + "://" + joined
	}
	return joined
}

// EndpointBase is the HTTPS base (never empty) with the port rule of dataplane.md 1.2: the
// https endpoint with DefaultPort when it names no port; else DefaultMaster (ws schemes
// rewritten to http ones) with the port and DefaultPath.
func (id *Identity) EndpointBase() string {
	if https := id.DataPlaneEndpoints["https"]; https != "" {
		return withPort(https, id.DefaultPort)
	}
	master := id.DefaultMaster
	lowered := strings.ToLower(master)
	switch {
	case strings.HasPrefix(lowered, "wss://"):
		master = "https://" + master[6:]
	case strings.HasPrefix(lowered, "ws://"):
		master = "http://" + master[5:]
	case !strings.Contains(master, "://"):
		master = "https://" + master
	}
	return withPort(master, id.DefaultPort) + id.DefaultPath
}

// EndpointFor is the endpoint of a protocol ("" when the identity has none for it).
func (id *Identity) EndpointFor(protocol HubProtocol) string {
	switch CanonicalProtocol(string(protocol)) {
	case ProtocolHTTPS:
		return id.EndpointBase()
	case ProtocolWSS:
		if wss := id.DataPlaneEndpoints["wss"]; wss != "" {
			return wss
		}
		lowered := strings.ToLower(id.DefaultMaster)
		if strings.HasPrefix(lowered, "wss://") || strings.HasPrefix(lowered, "ws://") {
			return id.DefaultMaster
		}
	case ProtocolMQTT:
		return id.DataPlaneEndpoints["mqtt"]
	}
	return ""
}

// AsMap is the identity-file form. Without includeSecrets the access key, the password, the
// MQTT credentials and URL userinfo are left out and secret-looking metadata reads
// "<redacted>".
func (id *Identity) AsMap(includeSecrets bool) map[string]any {
	clean := func(value string) string {
		if includeSecrets {
			return value
		}
		return stripUserinfo(value)
	}
	out := map[string]any{
		"site_id": id.SiteID, "default_master": clean(id.DefaultMaster),
		"default_port": id.DefaultPort, "default_path": id.DefaultPath,
	}
	if len(id.DataPlaneEndpoints) > 0 {
		endpoints := map[string]any{}
		for key, value := range id.DataPlaneEndpoints {
			endpoints[key] = clean(value)
		}
		out["data_plane_endpoints"] = endpoints
	}
	if includeSecrets {
		out["access_key"], out["password"] = id.AccessKey, id.Password
	}
	if id.MQTT != nil {
		out["mqtt"] = id.MQTT.asMap(includeSecrets)
	}
	out["protocols"] = id.Protocols.asMap()
	if len(id.Metadata) > 0 {
		if includeSecrets {
			out["metadata"] = id.Metadata
		} else {
			out["metadata"] = redactSecrets(id.Metadata)
		}
	}
	return out
}

// Save writes the identity file (with secrets) atomically, mode 0600, and sets SourcePath.
func (id *Identity) Save(path string) error {
	target := expandUser(path)
	body, err := json.MarshalIndent(id.AsMap(true), "", "  ")
	if err != nil {
		return wrapErr(ErrIdentity, err, "Cannot serialise the identity.")
	}
	if err := writePrivateAtomic(target, append(body, '\n')); err != nil {
		return wrapErr(ErrIdentity, err, "Cannot write %s: %v.", target, err)
	}
	if abs, err := filepath.Abs(target); err == nil {
		id.SourcePath = abs
	}
	return nil
}

// String shows the identity without secrets.
func (id *Identity) String() string {
	endpoints := map[string]string{}
	for key, value := range id.DataPlaneEndpoints {
		endpoints[key] = stripUserinfo(value)
	}
	mqtt := "no"
	if id.MQTT != nil {
		mqtt = "yes"
	}
	return fmt.Sprintf("Identity(site_id=%q, default_master=%q, default_port=%d, endpoints=%v, protocols=%v, mqtt=%s, access_key=<redacted>, password=<redacted>)",
		id.SiteID, stripUserinfo(id.DefaultMaster), id.DefaultPort, endpoints, id.EnabledProtocols(), mqtt)
}

// GoString keeps %#v from printing secrets.
func (id *Identity) GoString() string { return id.String() }
