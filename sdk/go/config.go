package thalovant

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxConfigBytes caps the size of an identity or config file.
const MaxConfigBytes = 1024 * 1024

// DefaultConfigPath is $XDG_CONFIG_HOME/thalovant/config.yaml, else %APPDATA%/Thalovant/
// config.yaml on Windows, else ~/.config/thalovant/config.yaml.
func DefaultConfigPath() string {
	if xdg := strings.TrimSpace(os.Getenv("XDG_CONFIG_HOME")); xdg != "" {
		return filepath.Join(xdg, "thalovant", "config.yaml")
	}
	if runtime.GOOS == "windows" {
		if appdata := strings.TrimSpace(os.Getenv("APPDATA")); appdata != "" {
			return filepath.Join(appdata, "Thalovant", "config.yaml")
		}
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "thalovant", "config.yaml")
}

func expandUser(path string) string {
	if path == "~" || strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(path, "~"))
		}
	}
	return path
}

func kubernetesProjectedSecret(path string) bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return false
	}
	link, err := os.Lstat(path)
	if err != nil || link.Mode()&os.ModeSymlink == 0 {
		return false
	}
	data, err := os.Lstat(filepath.Join(filepath.Dir(path), "..data"))
	return err == nil && data.Mode()&os.ModeSymlink != 0
}

// checkPrivateFile refuses a file that group or others may access (POSIX only).
func checkPrivateFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return wrapErr(ErrIdentity, err, "Cannot read %s: %v.", path, err)
	}
	if !info.Mode().IsRegular() {
		return newErr(ErrIdentity, "%s is not a regular file.", path)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 && !kubernetesProjectedSecret(path) {
		return newErr(ErrIdentity, "Permissions %04o on %s are too permissive: it holds secrets. Run: chmod 600 %s",
			info.Mode().Perm(), path, path)
	}
	return nil
}

func readLimited(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, wrapErr(ErrIdentity, err, "Cannot read %s: %v.", path, err)
	}
	defer file.Close()
	raw, err := io.ReadAll(io.LimitReader(file, MaxConfigBytes+1))
	if err != nil {
		return nil, wrapErr(ErrIdentity, err, "Cannot read %s: %v.", path, err)
	}
	if len(raw) > MaxConfigBytes {
		return nil, newErr(ErrIdentity, "%s is larger than %d bytes; it is not an identity file.", path, MaxConfigBytes)
	}
	return raw, nil
}

// readPrivateText is the content of a private file (after checkPrivateFile), at most 1 MiB.
func readPrivateText(path string) ([]byte, error) {
	if err := checkPrivateFile(path); err != nil {
		return nil, err
	}
	return readLimited(path)
}

// writePrivateAtomic writes data to path through a 0600 temporary file and a rename.
func writePrivateAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// plainValue turns what yaml.v3 decodes into JSON-like values (string-keyed maps).
func plainValue(value any) any {
	switch v := value.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, item := range v {
			out[key] = plainValue(item)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for key, item := range v {
			out[fmt.Sprint(key)] = plainValue(item)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = plainValue(item)
		}
		return out
	}
	return value
}

func loadConfigDocument(path string, requirePrivate bool) (any, error) {
	var raw []byte
	var err error
	if requirePrivate {
		raw, err = readPrivateText(path)
	} else {
		raw, err = readLimited(path)
	}
	if err != nil {
		return nil, err
	}
	var document any
	if err := yaml.Unmarshal(raw, &document); err != nil {
		return nil, newErr(ErrIdentity, "Cannot parse %s: invalid YAML. Fix the YAML.", path)
	}
	return plainValue(document), nil
}

// selectIdentityMapping picks the identity of a config document (dataplane.md 1.5).
func selectIdentityMapping(document any, profile, where string) (map[string]any, error) {
	root, ok := document.(map[string]any)
	if !ok {
		return nil, newErr(ErrIdentity, "The %s is not a YAML mapping.", where)
	}
	if profiles, ok := root["profiles"].(map[string]any); ok {
		name := profile
		if name == "" {
			for _, key := range []string{"profile", "default_profile", "defaultProfile"} {
				if value, ok := root[key].(string); ok && strings.TrimSpace(value) != "" {
					name = strings.TrimSpace(value)
					break
				}
			}
		}
		if name == "" {
			name = "default"
		}
		chosen, ok := profiles[name].(map[string]any)
		if !ok {
			known := make([]string, 0, len(profiles))
			for key := range profiles {
				known = append(known, key)
			}
			return nil, newErr(ErrIdentity, "The %s has no profile %q (profiles: %s).", where, name, strings.Join(known, ", "))
		}
		if inner, ok := chosen["identity"].(map[string]any); ok {
			return inner, nil
		}
		return chosen, nil
	}
	if profile != "" {
		return nil, newErr(ErrIdentity, "The %s has no 'profiles' mapping, so profile %q cannot be chosen.", where, profile)
	}
	if inner, ok := root["identity"].(map[string]any); ok {
		return inner, nil
	}
	return root, nil
}

// configAPIURL is the top-level api_url of the config file, or "" (a URL is no secret, so
// the 0600 rule is not applied here).
func configAPIURL() string {
	path := DefaultConfigPath()
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
		return ""
	}
	document, err := loadConfigDocument(path, false)
	if err != nil {
		return ""
	}
	if root, ok := document.(map[string]any); ok {
		if value, ok := root["api_url"].(string); ok {
			return strings.TrimSpace(value)
		}
	}
	return ""
}
