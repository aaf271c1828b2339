package thalovant

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Errors mirror the Python SDK's classes (src/thalovant/errors.py). Match a kind with
// errors.Is against the sentinels below (a kind matches its ancestors too: a
// ClientKeyRejected error is also ErrHubRefused, ErrConnection and ErrThalovant), and read the
// fields of the typed errors with errors.As:
//
//	ErrThalovant
//	├── ErrIdentity
//	├── ErrUnsupportedProtocol
//	├── ErrConnection
//	│   ├── ErrHubRefused
//	│   │   └── ErrClientKeyRejected   (*ClientKeyRejectedError)
//	│   ├── ErrHubKeyChanged
//	│   └── ErrAPIUnreachable          (also ErrAPI)
//	├── ErrTimeout
//	├── ErrRuntime                     (*RuntimeError)
//	│   ├── ErrPolicyDenied            (*PolicyDeniedError)
//	│   └── ErrUnanswered              (*UnansweredError)
//	└── ErrAPI                         (*APIError)
//	    ├── ErrAuth
//	    ├── ErrPlan
//	    ├── ErrAlreadyLinked
//	    └── ErrUnsupportedConnectionType
//
// Messages never carry secrets.

// Kind names one class of error; the sentinels are Kind values.
type Kind struct {
	name    string
	parents []*Kind
}

func (k *Kind) Error() string { return "thalovant: " + k.name }

func (k *Kind) descends(target *Kind) bool {
	if k == target {
		return true
	}
	for _, parent := range k.parents {
		if parent.descends(target) {
			return true
		}
	}
	return false
}

func kind(name string, parents ...*Kind) *Kind { return &Kind{name: name, parents: parents} }

// The error kinds, for errors.Is.
var (
	ErrThalovant                 = kind("error")
	ErrIdentity                  = kind("identity error", ErrThalovant)
	ErrUnsupportedProtocol       = kind("unsupported protocol", ErrThalovant)
	ErrConnection                = kind("connection error", ErrThalovant)
	ErrHubRefused                = kind("hub refused", ErrConnection)
	ErrClientKeyRejected         = kind("client key rejected", ErrHubRefused)
	ErrHubKeyChanged             = kind("hub key changed", ErrConnection)
	ErrTimeout                   = kind("timeout", ErrThalovant)
	ErrRuntime                   = kind("runtime error", ErrThalovant)
	ErrPolicyDenied              = kind("policy denied", ErrRuntime)
	ErrUnanswered                = kind("unanswered", ErrRuntime)
	ErrAPI                       = kind("API error", ErrThalovant)
	ErrAPIUnreachable            = kind("API unreachable", ErrAPI, ErrConnection)
	ErrAuth                      = kind("auth error", ErrAPI)
	ErrPlan                      = kind("plan error", ErrAPI)
	ErrAlreadyLinked             = kind("already linked", ErrAPI)
	ErrUnsupportedConnectionType = kind("unsupported connection type", ErrAPI)
)

// base is what every SDK error has: a kind, a message and, optionally, the error behind it.
type base struct {
	Kind    *Kind
	Message string
	Cause   error
}

func (e *base) Error() string { return e.Message }

// Unwrap returns the cause, if any.
func (e *base) Unwrap() error { return e.Cause }

// Is matches the error's kind and its ancestors.
func (e *base) Is(target error) bool {
	k, ok := target.(*Kind)
	return ok && e.Kind.descends(k)
}

// Error is an SDK error of one kind (see the kinds above) without further fields.
type Error struct{ base }

func newErr(k *Kind, format string, args ...any) *Error {
	return &Error{base{Kind: k, Message: fmt.Sprintf(format, args...)}}
}

func wrapErr(k *Kind, cause error, format string, args ...any) *Error {
	return &Error{base{Kind: k, Message: fmt.Sprintf(format, args...), Cause: cause}}
}

// ClientKeyRejectedError: the hub accepted the handshake but refused this client's Noise key
// (it has another key pinned for this access key). KeyFolder is where this client's key lives.
type ClientKeyRejectedError struct {
	base
	KeyFolder      string
	OtherKeyFolder string
}

// RuntimeError: the hub answered a request with a failure event.
type RuntimeError struct {
	base
	Event *Event
}

// UnansweredError: nothing answered the request; Said is the utterance the hub reported.
type UnansweredError struct {
	base
	Said  string
	Event *Event
}

// Quota is the quota part of a policy denial.
type Quota struct {
	Period     string
	Limit      int64
	Used       int64
	ResetAfter any
}

// PolicyDeniedError: the hub's policy refused the message (hive.policy.denied).
type PolicyDeniedError struct {
	base
	DeniedType string
	Code       string
	Reason     string
	Allowed    []string // nil when the denial named no list
	Quota      *Quota
	Event      *Event
}

func policyDeniedFromEvent(event *Event) *PolicyDeniedError {
	data := event.Data
	inner, _ := data["data"].(map[string]any)
	pick := func(key string) any {
		if value, ok := data[key]; ok && value != nil {
			return value
		}
		return inner[key]
	}
	e := &PolicyDeniedError{base: base{Kind: ErrPolicyDenied}, Event: event}
	e.DeniedType = textOrEmpty(pick("denied_type"))
	e.Code = textOrEmpty(pick("code"))
	e.Reason = textOrEmpty(pick("reason"))
	if list, ok := pick("allowed").([]any); ok {
		e.Allowed = []string{}
		for _, item := range list {
			e.Allowed = append(e.Allowed, fmt.Sprint(item))
		}
	}
	_, hasLimit := inner["limit"]
	_, hasUsed := inner["used"]
	_, hasPeriod := inner["period"]
	if hasLimit || hasUsed || hasPeriod {
		e.Quota = &Quota{Period: textOrEmpty(inner["period"]), Limit: wholeNumber(inner["limit"]),
			Used: wholeNumber(inner["used"]), ResetAfter: inner["reset_after"]}
	}
	what := e.DeniedType
	if what == "" {
		what = "message"
	}
	message := "The hub's policy refused this " + what
	if e.Reason != "" {
		message += ": " + e.Reason
	}
	if e.Code != "" {
		message += " (" + e.Code + ")"
	}
	if e.Allowed != nil {
		allowed := strings.Join(e.Allowed, ", ")
		if allowed == "" {
			allowed = "none"
		}
		message += ". Allowed types: " + allowed
	}
	e.Message = message + ". Ask the hub's owner to change the identity's permissions or plan."
	return e
}

func textOrEmpty(value any) string {
	if s, ok := value.(string); ok && strings.TrimSpace(s) != "" {
		return s
	}
	return ""
}

// wholeNumber reads quota counts: whole numbers in 0..2^53-1, anything else is 0.
func wholeNumber(value any) int64 {
	f, ok := value.(float64)
	if !ok || f != math.Trunc(f) || f < 0 || f > 1<<53-1 {
		return 0
	}
	return int64(f)
}

// APIError: a control-plane request failed, or its answer was unusable. StatusCode is the
// HTTP status (0 for a local refusal or an unusable answer); Problem the whole error body when
// it was a JSON object; Code and Detail as controlplane.md 12.2 reads them.
type APIError struct {
	base
	StatusCode        int
	Code              string
	Detail            string
	Problem           map[string]any
	RetryAfterSeconds *float64
	// ClientID names the existing connection of an ErrAlreadyLinked error.
	ClientID string
}

var codePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,80}$`)

const sentenceLimit = 200

// MissingTokenMessage is the message of an authenticated call made without a token.
const MissingTokenMessage = "Missing Thalovant API access token. Sign in with Login(ctx, email, password, scope) or pass a token to NewDefaultControlPlane."

func apiErr(k *Kind, message string) *APIError {
	return &APIError{base: base{Kind: k, Message: message}}
}

func parseProblem(body []byte) map[string]any {
	if strings.TrimSpace(string(body)) == "" {
		return nil
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return nil
	}
	obj, _ := value.(map[string]any)
	return obj
}

func problemSentence(problem map[string]any) string {
	for _, key := range []string{"detail", "message", "error"} {
		if value, ok := problem[key].(string); ok && strings.TrimSpace(value) != "" {
			text := strings.Join(strings.Fields(value), " ")
			if runes := []rune(text); len(runes) > sentenceLimit {
				text = string(runes[:sentenceLimit]) + "..."
			}
			return text
		}
	}
	return ""
}

// readMember is the top-level string key if non-blank, else the one inside an object detail.
func readMember(problem map[string]any, key string) string {
	if value, ok := problem[key].(string); ok && strings.TrimSpace(value) != "" {
		return value
	}
	if nested, ok := problem["detail"].(map[string]any); ok {
		if value, ok := nested[key].(string); ok && strings.TrimSpace(value) != "" {
			return value
		}
	}
	return ""
}

func displayMessage(status int, problem map[string]any) string {
	sentence := problemSentence(problem)
	suffix := ""
	if code, ok := problem["code"].(string); ok && codePattern.MatchString(code) && code != sentence {
		suffix = "(" + code + ")"
	}
	prefix := fmt.Sprintf("Thalovant API request failed with HTTP %d", status)
	switch {
	case sentence != "" && suffix != "":
		return prefix + ": " + sentence + " " + suffix
	case sentence != "":
		return prefix + ": " + sentence
	case suffix != "":
		return prefix + ": " + suffix
	}
	return prefix + "."
}

func retryAfter(problem map[string]any, header func(string) string) *float64 {
	number := func(value any) *float64 {
		if f, ok := value.(float64); ok && f >= 0 && !math.IsInf(f, 0) {
			return &f
		}
		return nil
	}
	if found := number(problem["retry_after_seconds"]); found != nil {
		return found
	}
	if nested, ok := problem["detail"].(map[string]any); ok {
		if found := number(nested["retry_after_seconds"]); found != nil {
			return found
		}
	}
	if header != nil {
		for _, name := range []string{"Retry-After", "RateLimit-Reset"} {
			raw := strings.TrimSpace(header(name))
			if n, err := strconv.ParseUint(raw, 10, 53); err == nil {
				f := float64(n)
				return &f
			}
		}
	}
	return nil
}

// APIErrorFromResponse builds the typed error of a non-2xx answer (controlplane.md 12.2-12.5).
// header reads a response header (nil when there is none).
func APIErrorFromResponse(status int, body []byte, header func(string) string) *APIError {
	problem := parseProblem(body)
	code := readMember(problem, "code")
	detail := readMember(problem, "detail")
	message := displayMessage(status, problem)
	k := ErrAPI
	switch {
	case status == 401 || status == 423 || (status == 403 && detail == "Insufficient scopes"):
		k = ErrAuth
		switch status {
		case 423:
			message += " The account is locked; wait, or ask an administrator to unlock it."
		case 401:
			message += " Sign in again with Login or pass a valid access token."
		default:
			message += " Use a token with the scope this call needs."
		}
	case status == 402 || (status == 403 && code == "plan_limit"):
		k = ErrPlan
	case status == 409 && code == "home_assistant_already_linked":
		k = ErrAlreadyLinked
	case status >= 300 && status < 400:
		message += " Thalovant API redirected the request; redirects are disabled."
	}
	e := apiErr(k, message)
	e.StatusCode, e.Code, e.Detail, e.Problem = status, code, detail, problem
	e.RetryAfterSeconds = retryAfter(problem, header)
	if k == ErrAlreadyLinked {
		e.ClientID = linkedClientID(problem)
	}
	return e
}

func linkedClientID(problem map[string]any) string {
	places := []map[string]any{problem}
	if nested, ok := problem["detail"].(map[string]any); ok {
		places = append(places, nested)
	}
	for _, place := range places {
		for _, key := range []string{"client_id", "existing_client_id", "connection_id"} {
			if value, ok := place[key].(string); ok && value != "" {
				return value
			}
		}
	}
	return ""
}
