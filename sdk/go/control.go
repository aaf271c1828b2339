package thalovant

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/thalovant/thalovant-go-sdk/internal/carrier"
)

// The control-plane client (controlplane.md): discover hubs and provision client identities.
//
//   - API URL: ControlPlaneOptions.APIURL, else THALOVANT_API_URL, else the api_url key of the
//     config file, else https://localhost:8443. A trailing /v1 is dropped; requests go to
//     <base>/v1/....
//   - Token: Login, the token argument, or THALOVANT_API_TOKEN. An authenticated call without
//     one returns ErrAPI with MissingTokenMessage before any I/O.
//   - TLS trust: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE when set, else the system
//     store. No redirects are followed (a 3xx is an error), no cookies are kept, and
//     credentials never go over plain HTTP except to a loopback host.

// DefaultAPIURL is the API a control plane uses when nothing else names one.
const DefaultAPIURL = "https://localhost:8443"

// DefaultAPITimeout bounds each control-plane request.
const DefaultAPITimeout = 10 * time.Second

// ControlPlaneOptions configure a control-plane client; zero values are the defaults.
type ControlPlaneOptions struct {
	APIURL      string
	AccessToken string
	Timeout     time.Duration
	UserAgent   string
	// InsecureSkipVerify turns TLS verification off (development only).
	InsecureSkipVerify bool
}

// ControlPlane is the control-plane client. It is safe for concurrent use once signed in.
type ControlPlane struct {
	APIURL      string
	AccessToken string
	TokenID     string
	timeout     time.Duration
	userAgent   string
	http        *http.Client
	setupErr    error
}

// NewDefaultControlPlane is a control plane with the default settings and token (""
// means THALOVANT_API_TOKEN, or none). A bad API URL or CA bundle is reported by the first
// call.
func NewDefaultControlPlane(token string) *ControlPlane {
	api, err := NewControlPlane(ControlPlaneOptions{AccessToken: token})
	if err != nil {
		return &ControlPlane{APIURL: resolveAPIURL(""), setupErr: err}
	}
	return api
}

// NewControlPlane makes a control-plane client.
func NewControlPlane(options ControlPlaneOptions) (*ControlPlane, error) {
	api := &ControlPlane{APIURL: resolveAPIURL(options.APIURL), timeout: options.Timeout, userAgent: options.UserAgent}
	if api.timeout <= 0 {
		api.timeout = DefaultAPITimeout
	}
	if api.userAgent == "" {
		api.userAgent = DefaultUserAgent
	}
	parts, err := url.Parse(api.APIURL)
	if err != nil || (parts.Scheme != "http" && parts.Scheme != "https") || parts.Hostname() == "" {
		return nil, apiErr(ErrAPI, fmt.Sprintf("The Thalovant API URL must be http(s):// with a host, got %q.", api.APIURL))
	}
	if parts.User != nil {
		return nil, apiErr(ErrAPI, "The Thalovant API URL must not carry credentials (user:password@).")
	}
	token := options.AccessToken
	if token == "" {
		token = os.Getenv("THALOVANT_API_TOKEN")
	}
	api.AccessToken = strings.TrimSpace(token)
	tlsConfig, err := carrier.TLSConfig(options.InsecureSkipVerify)
	if err != nil {
		return nil, apiErr(ErrAPI, "Cannot load the CA bundle: "+err.Error())
	}
	api.http = &http.Client{
		Timeout:       api.timeout,
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return api, nil
}

// CloseIdleConnections closes the client's idle HTTP connections.
func (api *ControlPlane) CloseIdleConnections() {
	if api.http != nil {
		api.http.CloseIdleConnections()
	}
}

func normalizeAPIURL(raw string) string {
	text := strings.TrimRight(strings.TrimSpace(raw), "/")
	if strings.HasSuffix(strings.ToLower(text), "/v1") {
		text = strings.TrimRight(text[:len(text)-3], "/")
	}
	if text == "" {
		text = DefaultAPIURL
	}
	return text + "/"
}

func resolveAPIURL(explicit string) string {
	if strings.TrimSpace(explicit) != "" {
		return normalizeAPIURL(explicit)
	}
	if env := strings.TrimSpace(os.Getenv("THALOVANT_API_URL")); env != "" {
		return normalizeAPIURL(env)
	}
	if configured := configAPIURL(); configured != "" {
		return normalizeAPIURL(configured)
	}
	return normalizeAPIURL(DefaultAPIURL)
}

var loopbackHosts = map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}

type request struct {
	method  string
	path    string
	auth    bool
	query   url.Values
	body    any
	headers map[string]string
}

// Request sends one request and decodes the JSON object answer into out (nil to discard).
// Non-2xx answers are *APIError values; transport failures ErrAPIUnreachable.
func (api *ControlPlane) do(ctx context.Context, r request, out any) error {
	if api.setupErr != nil {
		return api.setupErr
	}
	if r.auth && api.AccessToken == "" {
		return apiErr(ErrAPI, MissingTokenMessage)
	}
	target := api.APIURL + strings.TrimLeft(r.path, "/")
	parts, err := url.Parse(target)
	if err != nil {
		return apiErr(ErrAPI, "Could not form a valid Thalovant API URL; check the API URL.")
	}
	if (r.auth || r.body != nil) && parts.Scheme != "https" && !loopbackHosts[parts.Hostname()] {
		return apiErr(ErrAPI, "Refusing to send credentials over plain HTTP to a non-loopback host; use an https:// API URL.")
	}
	if len(r.query) > 0 {
		parts.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		raw, err := json.Marshal(r.body)
		if err != nil {
			return apiErr(ErrAPI, "Cannot serialise the request body: "+err.Error())
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, parts.String(), body)
	if err != nil {
		return apiErr(ErrAPI, "Could not form a valid Thalovant API URL; check the API URL.")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", api.userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.auth {
		req.Header.Set("Authorization", "Bearer "+api.AccessToken)
	}
	for key, value := range r.headers {
		req.Header.Set(key, value)
	}
	response, err := api.http.Do(req)
	if err != nil {
		reason := err.Error()
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			reason = urlErr.Err.Error() // the URL itself is known to the caller
		}
		e := apiErr(ErrAPIUnreachable, "Could not reach the Thalovant API ("+reason+").")
		e.Cause = err
		return e
	}
	defer response.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(response.Body, 16*1024*1024))
	if err != nil {
		return apiErr(ErrAPIUnreachable, "Could not reach the Thalovant API.")
	}
	status := response.StatusCode
	if status < 200 || status >= 300 {
		return APIErrorFromResponse(status, raw, response.Header.Get)
	}
	if strings.TrimSpace(string(raw)) == "" {
		raw = []byte("{}")
	}
	var probe any
	if err := json.Unmarshal(raw, &probe); err != nil {
		e := apiErr(ErrAPI, fmt.Sprintf("Thalovant API returned a non-JSON response (HTTP %d).", status))
		e.StatusCode = status
		return e
	}
	if _, ok := probe.(map[string]any); !ok {
		e := apiErr(ErrAPI, fmt.Sprintf("Thalovant API returned an unexpected response shape (HTTP %d): expected a JSON object.", status))
		e.StatusCode = status
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		e := apiErr(ErrAPI, fmt.Sprintf("Thalovant API returned an unexpected response shape (HTTP %d): %v.", status, err))
		e.StatusCode = status
		return e
	}
	return nil
}

// LoginResult is the token response of Login.
type LoginResult struct {
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	ExpiresIn   int      `json:"expires_in"`
	ExpiresAt   string   `json:"expires_at"`
	Scopes      []string `json:"scopes"`
	TokenID     string   `json:"token_id"`
}

// Login signs in with a password (POST /v1/auth/token) and keeps the token; scope "" asks for
// the default scopes.
func (api *ControlPlane) Login(ctx context.Context, email, password, scope string) (*LoginResult, error) {
	body := map[string]any{"email": email, "password": password}
	if scope != "" {
		body["scope"] = scope
	}
	var result LoginResult
	if err := api.do(ctx, request{method: http.MethodPost, path: "/v1/auth/token", body: body}, &result); err != nil {
		return nil, err
	}
	if strings.TrimSpace(result.AccessToken) == "" {
		return nil, apiErr(ErrAPI, "Thalovant API token response did not include access_token.")
	}
	api.AccessToken, api.TokenID = result.AccessToken, result.TokenID
	return &result, nil
}

// Hub is a hub resource; Raw holds every field the API sent.
type Hub struct {
	ID                 string            `json:"id"`
	Slug               string            `json:"slug"`
	PublicRef          string            `json:"public_ref"`
	Name               string            `json:"name"`
	Title              string            `json:"title"`
	Description        string            `json:"description"`
	Visibility         string            `json:"visibility"`
	Active             bool              `json:"active"`
	Domain             string            `json:"domain"`
	OwnerID            string            `json:"owner_id"`
	Etag               string            `json:"etag"`
	Spec               map[string]any    `json:"spec"`
	DataPlaneEndpoints map[string]string `json:"data_plane_endpoints"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
	Raw                map[string]any    `json:"-"`
}

// UnmarshalJSON keeps the typed fields and the raw object.
func (h *Hub) UnmarshalJSON(data []byte) error {
	type plain Hub
	var typed plain
	_ = json.Unmarshal(data, &typed) // fields of an unexpected type stay empty; Raw has them
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*h = Hub(typed)
	h.Raw = raw
	return nil
}

// PageMeta is the meta object of a cursor page.
type PageMeta struct {
	Count int    `json:"count"`
	Next  string `json:"next"`
}

// HubPage is one page of hubs: Data, plus the cursor of the next page in Meta.Next.
type HubPage struct {
	Data  []Hub             `json:"data"`
	Meta  PageMeta          `json:"meta"`
	Links map[string]string `json:"links"`
}

func pageQuery(limit int, cursor string, extra map[string]string) url.Values {
	query := url.Values{}
	if limit > 0 {
		query.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		query.Set("cursor", cursor)
	}
	for key, value := range extra {
		if value != "" {
			query.Set(key, value)
		}
	}
	return query
}

// ListPublicHubs lists public, active hubs (no sign-in); limit 0 is the server's default.
func (api *ControlPlane) ListPublicHubs(ctx context.Context, limit int, cursor string) (*HubPage, error) {
	var page HubPage
	if err := api.do(ctx, request{method: http.MethodGet, path: "/v1/public/hubs", query: pageQuery(limit, cursor, nil)}, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// GetPublicHub reads one public hub by slug, public ref or id (no sign-in).
func (api *ControlPlane) GetPublicHub(ctx context.Context, ref string) (*Hub, error) {
	var hub Hub
	if err := api.do(ctx, request{method: http.MethodGet, path: "/v1/public/hubs/" + url.PathEscape(ref)}, &hub); err != nil {
		return nil, err
	}
	return &hub, nil
}

// ListHubs lists the hubs the signed-in user can see, optionally those of ownerID.
func (api *ControlPlane) ListHubs(ctx context.Context, limit int, cursor, ownerID string) (*HubPage, error) {
	var page HubPage
	query := pageQuery(limit, cursor, map[string]string{"owner_id": ownerID})
	if err := api.do(ctx, request{method: http.MethodGet, path: "/v1/hubs", auth: true, query: query}, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// GetHub reads one hub by id (with its etag).
func (api *ControlPlane) GetHub(ctx context.Context, hubID string) (*Hub, error) {
	var hub Hub
	if err := api.do(ctx, request{method: http.MethodGet, path: "/v1/hubs/" + url.PathEscape(hubID), auth: true}, &hub); err != nil {
		return nil, err
	}
	return &hub, nil
}

// GetClient reads one client identity (with its etag, never its secrets).
func (api *ControlPlane) GetClient(ctx context.Context, clientID string) (map[string]any, error) {
	var client map[string]any
	err := api.do(ctx, request{method: http.MethodGet, path: "/v1/clients/" + url.PathEscape(clientID), auth: true}, &client)
	return client, err
}

// DeleteClient deletes (revokes) a client identity: it reads the etag when etag is "",
// retries once after a 412 and treats 404 as already deleted.
func (api *ControlPlane) DeleteClient(ctx context.Context, clientID, etag string) error {
	path := "/v1/clients/" + url.PathEscape(clientID)
	for attempt := 0; attempt < 2; attempt++ {
		tag := etag
		if tag == "" {
			current, err := api.GetClient(ctx, clientID)
			if err != nil {
				if isStatus(err, http.StatusNotFound) {
					return nil
				}
				return err
			}
			if tag, _ = current["etag"].(string); tag == "" {
				return apiErr(ErrAPI, "The resource has no etag; cannot delete it safely.")
			}
		}
		err := api.do(ctx, request{method: http.MethodDelete, path: path, auth: true, headers: map[string]string{"If-Match": tag}}, nil)
		switch {
		case err == nil, isStatus(err, http.StatusNotFound):
			return nil
		case isStatus(err, http.StatusPreconditionFailed) && attempt == 0:
			etag = ""
			continue
		}
		return err
	}
	return nil
}

func isStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.StatusCode == status
}

// BootstrapIdentityOptions are the options of CreateClientIdentityForHubID.
type BootstrapIdentityOptions struct {
	// Name is required; SiteID defaults to the cleaned name.
	Name   string
	SiteID string
	Spec   map[string]any
	// OwnerID, when set, creates the client for that owner.
	OwnerID string
	// Inactive creates the client inactive (the API default is active).
	Inactive bool
	// PreferredProtocols orders the carrier the result selects (default wss, https, mqtt).
	PreferredProtocols []HubProtocol
	IdempotencyKey     string
	ConnectionType     string
}

// SelectedHubEndpoint is the carrier a new identity uses first, and its endpoint.
type SelectedHubEndpoint struct {
	Protocol HubProtocol
	Endpoint string
}

// BootstrapIdentityResult is what CreateClientIdentityForHubID returns: Identity is ready to
// use; Hub the hub resource; Client the raw API answer (it holds secrets: never log it).
type BootstrapIdentityResult struct {
	Identity  *Identity
	Hub       *Hub
	Client    map[string]any
	Endpoint  *SelectedHubEndpoint
	Operation map[string]any
}

// ClientID is the new client's id.
func (r *BootstrapIdentityResult) ClientID() string { return nonEmpty(r.Client["id"]) }

// String shows the result without secrets.
func (r *BootstrapIdentityResult) String() string {
	protocol := ""
	if r.Endpoint != nil {
		protocol = string(r.Endpoint.Protocol)
	}
	return fmt.Sprintf("BootstrapIdentityResult(client_id=%q, hub_id=%q, selected_protocol=%q, identity=%s)", r.ClientID(), r.Hub.ID, protocol, r.Identity)
}

var spaces = regexp.MustCompile(`\s+`)

// cleanSiteID trims, turns _ into - and whitespace runs into -; empty gives
// thalovant-client-<8 hex> (controlplane.md 5.1).
func cleanSiteID(value string) string {
	text := spaces.ReplaceAllString(strings.ReplaceAll(strings.TrimSpace(value), "_", "-"), "-")
	if text == "" {
		return "thalovant-client-" + randomHex(4)
	}
	return text
}

func tokenURLSafe(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func domainHost(domain string) string {
	text := strings.TrimRight(strings.TrimSpace(domain), "/")
	if text == "" {
		return ""
	}
	if strings.Contains(text, "://") {
		if parts, err := url.Parse(text); err == nil {
			return parts.Host
		}
		return ""
	}
	host, _, _ := strings.Cut(text, "/")
	return host
}

// hubEndpoints are a hub's protocol flags and data-plane endpoints: the given ones, plus
// https://<domain> / wss://<domain> for enabled protocols that have none.
func hubEndpoints(raw map[string]any) (HubProtocolSettings, map[string]string) {
	flags := protocolSettingsFrom(raw)
	endpoints := readEndpoints(raw)
	if host := domainHost(nonEmpty(raw["domain"])); host != "" {
		if flags.HTTP && endpoints["https"] == "" {
			endpoints["https"] = "https://" + host
		}
		if flags.WSS && endpoints["wss"] == "" {
			endpoints["wss"] = "wss://" + host
		}
	}
	return flags, endpoints
}

// CreateClientIdentityForHubID creates a client identity on a hub (controlplane.md 5.1-5.4)
// and returns it ready to use.
func (api *ControlPlane) CreateClientIdentityForHubID(ctx context.Context, hubID string, options BootstrapIdentityOptions) (*BootstrapIdentityResult, error) {
	if strings.TrimSpace(options.Name) == "" {
		return nil, apiErr(ErrAPI, "A client identity needs a non-empty name.")
	}
	if api.AccessToken == "" && api.setupErr == nil {
		return nil, apiErr(ErrAPI, MissingTokenMessage)
	}
	hub, err := api.GetHub(ctx, hubID)
	if err != nil {
		return nil, err
	}
	if hub.ID == "" {
		return nil, apiErr(ErrAPI, "Hub resource is missing id.")
	}
	siteSource := options.SiteID
	if siteSource == "" {
		siteSource = options.Name
	}
	site := cleanSiteID(siteSource)
	accessKey, password := tokenURLSafe(32), tokenURLSafe(32)
	spec := map[string]any{}
	for key, value := range options.Spec {
		if normalisedKey(key) != "cryptokey" {
			spec[key] = deepCopy(value)
		}
	}
	if _, ok := spec["version"]; !ok {
		spec["version"] = "1"
	}
	if options.ConnectionType != "" {
		spec["connection_type"] = options.ConnectionType
	}
	spec["apiKey"], spec["password"], spec["siteId"] = accessKey, password, site
	body := map[string]any{"hub_id": hub.ID, "name": options.Name, "spec": spec, "active": !options.Inactive}
	if options.OwnerID != "" {
		body["owner_id"] = options.OwnerID
	}
	key := options.IdempotencyKey
	if key == "" {
		key = newUUID()
	}
	var client map[string]any
	err = api.do(ctx, request{method: http.MethodPost, path: "/v1/clients", auth: true, body: body,
		headers: map[string]string{"Idempotency-Key": key}}, &client)
	if err != nil {
		var e *APIError
		if options.ConnectionType != "" && errors.As(err, &e) && e.StatusCode == 422 && mentionsConnectionType(e) {
			unsupported := apiErr(ErrUnsupportedConnectionType, fmt.Sprintf("The API does not support connection_type %q: %s", options.ConnectionType, firstNonEmpty(e.Detail, e.Message)))
			unsupported.StatusCode, unsupported.Code, unsupported.Detail, unsupported.Problem = e.StatusCode, e.Code, e.Detail, e.Problem
			return nil, unsupported
		}
		return nil, err
	}
	if options.ConnectionType != "" && nonEmpty(mapping(client["spec"])["connection_type"]) != options.ConnectionType {
		if id := nonEmpty(client["id"]); id != "" {
			_ = api.DeleteClient(ctx, id, nonEmpty(client["etag"]))
		}
		return nil, apiErr(ErrUnsupportedConnectionType, fmt.Sprintf("The API did not confirm connection_type %q; the new client was deleted.", options.ConnectionType))
	}
	flags, endpoints := hubEndpoints(hub.Raw)
	preferred := options.PreferredProtocols
	if len(preferred) == 0 {
		preferred = DefaultProtocolPreference
	}
	var selected *SelectedHubEndpoint
	for _, wanted := range preferred {
		protocol := CanonicalProtocol(string(wanted))
		if protocol != "" && flags.IsEnabled(protocol) && endpoints[string(protocol)] != "" {
			selected = &SelectedHubEndpoint{Protocol: protocol, Endpoint: endpoints[string(protocol)]}
			break
		}
	}
	var material map[string]any
	if initial, ok := client["initial_identify"].(map[string]any); ok {
		material = map[string]any{}
		for k, v := range initial {
			if k != "spec" && k != "protocols" && k != "network" {
				material[k] = v
			}
		}
		merged := map[string]any{}
		for k, v := range endpoints {
			merged[k] = v
		}
		for k, v := range readEndpoints(initial) {
			if _, exists := merged[k]; !exists {
				merged[k] = v
			}
		}
		material["data_plane_endpoints"] = merged
		material["protocols"] = flags.asMap()
	} else {
		master := ""
		switch {
		case endpoints["https"] != "":
			if parts, err := url.Parse(endpoints["https"]); err == nil {
				master = parts.Scheme + "://" + parts.Host
			}
		case domainHost(hub.Domain) != "":
			master = "https://" + domainHost(hub.Domain)
		case selected != nil:
			if parts, err := url.Parse(selected.Endpoint); err == nil {
				master = parts.Scheme + "://" + parts.Host
			}
		}
		if master == "" {
			return nil, apiErr(ErrAPI, "Hub resource does not expose a usable data-plane endpoint.")
		}
		eps := map[string]any{}
		for k, v := range endpoints {
			eps[k] = v
		}
		material = map[string]any{"access_key": accessKey, "password": password, "site_id": site, "default_master": master,
			"default_port": 443, "default_path": "", "data_plane_endpoints": eps, "protocols": flags.asMap()}
	}
	identity, err := IdentityFromMapping(material, "")
	if err != nil {
		return nil, err
	}
	result := &BootstrapIdentityResult{Identity: identity, Hub: hub, Client: client, Endpoint: selected}
	if operation, ok := client["operation"].(map[string]any); ok && nonEmpty(operation["id"]) != "" {
		result.Operation = operation
	}
	return result, nil
}

func firstNonEmpty(values ...string) string {
	for _, value := range values {
		if value != "" {
			return value
		}
	}
	return ""
}

func mentionsConnectionType(e *APIError) bool {
	mentions := func(value any) bool {
		s, ok := value.(string)
		return ok && (strings.Contains(s, "connection_type") || strings.Contains(s, "connectionType"))
	}
	if mentions(e.Detail) || mentions(e.Code) {
		return true
	}
	var entries []any
	for _, key := range []string{"errors", "detail"} {
		if list, ok := e.Problem[key].([]any); ok {
			entries = append(entries, list...)
		}
	}
	for _, raw := range entries {
		entry := mapping(raw)
		if mentions(entry["msg"]) {
			return true
		}
		if loc, ok := entry["loc"].([]any); ok {
			for _, part := range loc {
				if mentions(part) {
					return true
				}
			}
		}
	}
	return false
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
