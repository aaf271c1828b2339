package thalovant

// ClientContextOptions are the caller context fields of BuildClientContext (dataplane.md 6.1).
// Empty fields change nothing, so contexts compose.
type ClientContextOptions struct {
	UserID         string
	UserName       string
	Roles          []string
	AuthToken      string
	AuthProvider   string
	AuthClaims     map[string]any
	Source         string
	Destination    string
	Platform       string
	Locale         string
	Channel        string
	DeviceID       string
	DevicePlatform string
	Metadata       map[string]any
	SessionID      string
	Extra          map[string]any
}

// BuildClientContext returns a deep copy of base (may be nil) with the given fields set:
// user = {id, name, roles} plus top-level user_id, user_name, roles; auth = {token, provider,
// claims} plus auth_token; platform, source, destination, channel, locale at the top level;
// device = {id, platform} (the device platform defaults to Platform); metadata merged into
// the base's (new keys win); session_id at the top level and in session.session_id; Extra
// keys set as given. The transport adds its own keys only where these are missing.
func BuildClientContext(base map[string]any, options ClientContextOptions) map[string]any {
	context := deepCopyMap(base)
	user := map[string]any{}
	if options.UserID != "" {
		user["id"], context["user_id"] = options.UserID, options.UserID
	}
	if options.UserName != "" {
		user["name"], context["user_name"] = options.UserName, options.UserName
	}
	if options.Roles != nil {
		roles := make([]any, len(options.Roles))
		for i, role := range options.Roles {
			roles[i] = role
		}
		user["roles"], context["roles"] = roles, deepCopy(roles)
	}
	mergeInto(context, "user", user)
	auth := map[string]any{}
	if options.AuthToken != "" {
		auth["token"], context["auth_token"] = options.AuthToken, options.AuthToken
	}
	if options.AuthProvider != "" {
		auth["provider"] = options.AuthProvider
	}
	if options.AuthClaims != nil {
		auth["claims"] = deepCopyMap(options.AuthClaims)
	}
	mergeInto(context, "auth", auth)
	for key, value := range map[string]string{
		"platform": options.Platform, "source": options.Source, "destination": options.Destination,
		"channel": options.Channel, "locale": options.Locale,
	} {
		if value != "" {
			context[key] = value
		}
	}
	device := map[string]any{}
	if options.DeviceID != "" {
		device["id"] = options.DeviceID
		if options.Platform != "" {
			device["platform"] = options.Platform
		}
	}
	if options.DevicePlatform != "" {
		device["platform"] = options.DevicePlatform
	}
	mergeInto(context, "device", device)
	if options.Metadata != nil {
		mergeInto(context, "metadata", deepCopyMap(options.Metadata))
	}
	if options.SessionID != "" {
		context["session_id"] = options.SessionID
		mergeInto(context, "session", map[string]any{"session_id": options.SessionID})
	}
	for key, value := range options.Extra {
		context[key] = deepCopy(value)
	}
	return context
}

func mergeInto(target map[string]any, key string, values map[string]any) {
	if len(values) == 0 {
		return
	}
	merged := deepCopyMap(mapping(target[key]))
	for k, v := range values {
		merged[k] = v
	}
	target[key] = merged
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for key, value := range m {
		out[key] = deepCopy(value)
	}
	return out
}

func deepCopy(value any) any {
	switch v := value.(type) {
	case map[string]any:
		return deepCopyMap(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = deepCopy(item)
		}
		return out
	}
	return value
}
