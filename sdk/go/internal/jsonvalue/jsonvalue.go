// Package jsonvalue holds the helpers shared by the SDK's readers of decoded JSON.
package jsonvalue

// Truthy is Python's truthiness for a decoded JSON value: null, false, "", 0, [] and {} are
// false, everything else is true (the rules the Python SDK reads hub answers with).
func Truthy(value any) bool {
	switch v := value.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case float64:
		return v != 0
	case int:
		return v != 0
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}
