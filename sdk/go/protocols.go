package thalovant

import (
	"net/url"
	"strings"
)

// HubProtocol names a data-plane carrier.
type HubProtocol string

// The three carriers (the guide's protocol table).
const (
	ProtocolWSS   HubProtocol = "wss"
	ProtocolHTTPS HubProtocol = "https"
	ProtocolMQTT  HubProtocol = "mqtt"
)

// DefaultProtocolPreference is the order a client or a new identity prefers carriers in.
var DefaultProtocolPreference = []HubProtocol{ProtocolWSS, ProtocolHTTPS, ProtocolMQTT}

var protocolAliases = map[string]HubProtocol{
	"wss": ProtocolWSS, "ws": ProtocolWSS, "websocket": ProtocolWSS,
	"https": ProtocolHTTPS, "http": ProtocolHTTPS,
	"mqtt": ProtocolMQTT, "mqtts": ProtocolMQTT,
}

// CanonicalProtocol is wss, https or mqtt for a protocol name or alias; "" when unknown.
func CanonicalProtocol(name string) HubProtocol {
	return protocolAliases[strings.ToLower(strings.TrimSpace(name))]
}

var endpointSchemes = map[string]bool{"http": true, "https": true, "ws": true, "wss": true, "mqtt": true, "mqtts": true}

// parseFlag reads a protocol flag: a bool, a bool-string or a mapping with "enabled".
func parseFlag(value any) (bool, bool) {
	switch v := value.(type) {
	case bool:
		return v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "true", "yes", "on":
			return true, true
		case "0", "false", "no", "off":
			return false, true
		}
	case map[string]any:
		return parseFlag(v["enabled"])
	}
	return false, false
}

// normalizeEndpoint trims an endpoint URL (a mapping gives its endpoint/broker_url/brokerUrl);
// a URL with a scheme outside http(s), ws(s), mqtt(s) or without a host is dropped ("").
func normalizeEndpoint(value any) string {
	if mapping, ok := value.(map[string]any); ok {
		for _, key := range []string{"endpoint", "broker_url", "brokerUrl"} {
			if s, ok := mapping[key].(string); ok {
				return normalizeEndpoint(s)
			}
		}
		return ""
	}
	raw, ok := value.(string)
	if !ok {
		return ""
	}
	raw = strings.TrimSpace(raw)
	text := strings.TrimRight(raw, "/")
	if text == "" {
		return ""
	}
	if strings.Contains(raw, "://") {
		parts, err := url.Parse(text)
		if err != nil || !endpointSchemes[strings.ToLower(parts.Scheme)] || parts.Hostname() == "" {
			return ""
		}
	}
	return text
}

// readEndpoints reads the https/wss/mqtt endpoints of a mapping: from its
// data_plane_endpoints (or dataPlaneEndpoints, endpoints) mapping, else from its top level.
func readEndpoints(source map[string]any) map[string]string {
	container := source
	for _, key := range []string{"data_plane_endpoints", "dataPlaneEndpoints", "endpoints"} {
		if found, ok := source[key].(map[string]any); ok {
			container = found
			break
		}
	}
	result := map[string]string{}
	for _, entry := range []struct {
		protocol string
		keys     []string
	}{{"https", []string{"https", "http"}}, {"wss", []string{"wss", "ws"}}, {"mqtt", []string{"mqtt", "mqtts"}}} {
		for _, key := range entry.keys {
			if value, ok := container[key]; ok && value != nil {
				if endpoint := normalizeEndpoint(value); endpoint != "" {
					result[entry.protocol] = endpoint
				}
				break
			}
		}
	}
	return result
}

// stripUserinfo removes user:password@ from a URL's authority.
func stripUserinfo(raw string) string {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		return raw
	}
	authority, tail, slash := strings.Cut(rest, "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = authority[at+1:]
	}
	if slash {
		return scheme + "://" + authority + "/" + tail
	}
	return scheme + "://" + authority
}

// HubProtocolSettings says which carriers a hub or identity enables (defaults: wss on, http
// and mqtt off).
type HubProtocolSettings struct {
	WSS  bool
	HTTP bool
	MQTT bool
}

// DefaultProtocolSettings is wss on, http off, mqtt off.
func DefaultProtocolSettings() HubProtocolSettings { return HubProtocolSettings{WSS: true} }

// protocolSettingsFrom reads spec.protocols (else spec.network) when a spec mapping exists,
// else the top-level protocols (else network); a non-empty protocols mapping wins.
func protocolSettingsFrom(source map[string]any) HubProtocolSettings {
	settings := DefaultProtocolSettings()
	holder := source
	if spec, ok := source["spec"].(map[string]any); ok {
		holder = spec
	}
	var flags map[string]any
	for _, key := range []string{"protocols", "network"} {
		if candidate, ok := holder[key].(map[string]any); ok && len(candidate) > 0 {
			flags = candidate
			break
		}
	}
	if flags == nil {
		return settings
	}
	read := func(target *bool, keys ...string) {
		for _, key := range keys {
			if value, ok := flags[key]; ok {
				if parsed, ok := parseFlag(value); ok {
					*target = parsed
				}
				return
			}
		}
	}
	read(&settings.WSS, "wss", "websocket")
	read(&settings.HTTP, "http", "https")
	read(&settings.MQTT, "mqtt")
	return settings
}

// IsEnabled is the flag of a protocol (https and http share one).
func (s HubProtocolSettings) IsEnabled(protocol HubProtocol) bool {
	switch CanonicalProtocol(string(protocol)) {
	case ProtocolWSS:
		return s.WSS
	case ProtocolHTTPS:
		return s.HTTP
	case ProtocolMQTT:
		return s.MQTT
	}
	return false
}

// Enabled lists the enabled protocols in the fixed order wss, https, mqtt.
func (s HubProtocolSettings) Enabled() []HubProtocol {
	out := []HubProtocol{}
	for _, protocol := range DefaultProtocolPreference {
		if s.IsEnabled(protocol) {
			out = append(out, protocol)
		}
	}
	return out
}

func (s HubProtocolSettings) asMap() map[string]any {
	return map[string]any{
		"wss": map[string]any{"enabled": s.WSS}, "http": map[string]any{"enabled": s.HTTP},
		"mqtt": map[string]any{"enabled": s.MQTT},
	}
}
