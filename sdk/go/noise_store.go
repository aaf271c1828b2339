package thalovant

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/thalovant/thalovant-go-sdk/protocol"
)

// The client's Noise state on disk (dataplane.md 1.8), in the layout hivemind-bus-client and
// the Python SDK use, so one device keeps the key its hub pinned whichever client it runs:
//
//   - _identity.json: {"name": ..., "pinned_noise_keys": {pin_id: "<64 hex>"}} (other keys kept);
//   - <name>_noise.key: the client's X25519 private key as 64 hex characters, created once;
//   - <name>_noise_psks.json: {"<16 hex of sha256(access_key)>@<node_id>": "<psk hex>"}, at
//     most MaxPSKEntries entries.
//
// The directory is 0700, every file 0600, written atomically under a lock file .<file>.lock.
// Symlinks are refused; pins are never removed automatically.

const (
	noiseStoreFile     = "_identity.json"
	defaultNodeName    = "unnamed-node"
	MaxPSKEntries      = 32
	maxStateFileBytes  = 256 * 1024
	noiseStateDirName  = "hivemind"
	pinnedNoiseKeysKey = "pinned_noise_keys"
)

func noiseStateErr(format string, args ...any) *Error { return newErr(ErrIdentity, format, args...) }

func pskCacheKey(accessKey, nodeID string) string {
	digest := sha256.Sum256([]byte(accessKey))
	return hex.EncodeToString(digest[:])[:16] + "@" + nodeID
}

func defaultNoiseDir() string {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, noiseStateDirName)
}

// resolveNoiseDir is the explicit directory, else "hivemind" beside the identity file (if it
// exists or can be created), else the default folder.
func resolveNoiseDir(explicit, sourcePath string) string {
	if explicit != "" {
		return explicit
	}
	if sourcePath != "" {
		parent := filepath.Dir(sourcePath)
		if resolved, err := filepath.EvalSymlinks(parent); err == nil {
			parent = resolved
		}
		beside := filepath.Join(parent, noiseStateDirName)
		if info, err := os.Stat(beside); err == nil && info.IsDir() {
			return beside
		}
		if writableDir(parent) {
			return beside
		}
	}
	return defaultNoiseDir()
}

// NoiseStore is one Noise state directory. Every method reads the files afresh, so processes
// sharing a directory see each other's pins; writes are atomic and locked.
type NoiseStore struct{ Directory string }

func noiseStoreFor(explicit, sourcePath, hubHost string) *NoiseStore {
	directory := resolveNoiseDir(explicit, sourcePath)
	store := &NoiseStore{Directory: directory}
	if explicit == "" && sourcePath != "" && hubHost != "" && directory != defaultNoiseDir() {
		store.copyLegacyState(defaultNoiseDir(), hubHost)
	}
	return store
}

func (s *NoiseStore) storePath() string { return filepath.Join(s.Directory, noiseStoreFile) }

func refuseSymlink(path string) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&os.ModeSymlink != 0 {
		return noiseStateErr("Refusing to use a symlink for Noise state: %s", filepath.Base(path))
	}
	return nil
}

func (s *NoiseStore) ensureDir() error {
	if err := refuseSymlink(s.Directory); err != nil {
		return err
	}
	if err := os.MkdirAll(s.Directory, 0o700); err != nil {
		return noiseStateErr("Cannot create the Noise state directory: %v", err)
	}
	if info, err := os.Stat(s.Directory); err == nil && info.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(s.Directory, 0o700)
	}
	return nil
}

func readStateFile(path string) ([]byte, error) {
	if err := refuseSymlink(path); err != nil {
		return nil, err
	}
	info, err := os.Stat(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, noiseStateErr("Cannot read Noise state file %s", filepath.Base(path))
	}
	if info.Size() > maxStateFileBytes {
		return nil, noiseStateErr("Noise state file is too large: %s", filepath.Base(path))
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, noiseStateErr("Cannot read Noise state file %s", filepath.Base(path))
	}
	return raw, nil
}

func writeStateFile(path string, data []byte) error {
	if err := refuseSymlink(path); err != nil {
		return err
	}
	if err := writePrivateAtomic(path, data); err != nil {
		return noiseStateErr("Cannot write Noise state file %s: %v", filepath.Base(path), err)
	}
	return nil
}

func loadJSONObject(path string) (map[string]any, error) {
	raw, err := readStateFile(path)
	if err != nil || len(strings.TrimSpace(string(raw))) == 0 {
		return map[string]any{}, err
	}
	var document map[string]any
	if err := json.Unmarshal(raw, &document); err != nil || document == nil {
		return nil, noiseStateErr("Noise state file %s is not a JSON object", filepath.Base(path))
	}
	return document, nil
}

// pythonStyleJSON is json.dumps(obj, indent=2, sort_keys=True) + "\n" for string-keyed maps of
// strings (what the Python SDK writes, so either client may rewrite the other's files).
func pythonStyleJSON(document map[string]any) []byte {
	out, _ := json.MarshalIndent(document, "", "  ") // encoding/json sorts map keys
	return append(out, '\n')
}

func (s *NoiseStore) document() (map[string]any, error) { return loadJSONObject(s.storePath()) }

func nameOf(document map[string]any) (string, error) {
	candidate := defaultNodeName
	if name, ok := document["name"].(string); ok && strings.TrimSpace(name) != "" {
		candidate = strings.TrimSpace(name)
	} else if key, ok := document["key"].(string); ok && strings.TrimSpace(key) != "" {
		candidate = filepath.Base(strings.TrimSpace(key))
	}
	if strings.Contains(candidate, "/") || candidate == "." || candidate == ".." || strings.Contains(candidate, "\x00") {
		return "", noiseStateErr("The Noise store name is not a plain file name.")
	}
	return candidate, nil
}

func (s *NoiseStore) keyPath() (string, error) {
	document, err := s.document()
	if err != nil {
		return "", err
	}
	if configured, ok := document["noise_key"].(string); ok && strings.TrimSpace(configured) != "" {
		path := strings.TrimSpace(configured)
		if filepath.IsAbs(path) {
			return path, nil
		}
		return filepath.Join(s.Directory, path), nil
	}
	name, err := nameOf(document)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.Directory, name+"_noise.key"), nil
}

func (s *NoiseStore) pskPath() (string, error) {
	document, err := s.document()
	if err != nil {
		return "", err
	}
	name, err := nameOf(document)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.Directory, name+"_noise_psks.json"), nil
}

func parseKeyHex(value any) []byte {
	text, ok := value.(string)
	if !ok {
		return nil
	}
	raw, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(raw) != 32 {
		return nil
	}
	return raw
}

func readKey(path string) (*protocol.KeyPair, error) {
	raw, err := readStateFile(path)
	if err != nil || raw == nil {
		return nil, err
	}
	private := parseKeyHex(string(raw))
	if private == nil {
		return nil, noiseStateErr("Noise key file %s does not hold 32 bytes of hex", filepath.Base(path))
	}
	pair, err := protocol.KeyPairFromPrivate(private)
	if err != nil {
		return nil, noiseStateErr("Noise key file %s holds an invalid key", filepath.Base(path))
	}
	return &pair, nil
}

// StaticKey is the client's X25519 key pair, created (0600) on first use, never replaced.
func (s *NoiseStore) StaticKey() (protocol.KeyPair, error) {
	if err := s.ensureDir(); err != nil {
		return protocol.KeyPair{}, err
	}
	path, err := s.keyPath()
	if err != nil {
		return protocol.KeyPair{}, err
	}
	if existing, err := readKey(path); err != nil || existing != nil {
		if existing != nil {
			return *existing, nil
		}
		return protocol.KeyPair{}, err
	}
	var pair protocol.KeyPair
	err = withLock(path, func() error {
		existing, err := readKey(path)
		if err != nil || existing != nil {
			if existing != nil {
				pair = *existing
			}
			return err
		}
		if pair, err = protocol.GenerateKeyPair(); err != nil {
			return noiseStateErr("Cannot generate a Noise key: %v", err)
		}
		if err := writeStateFile(path, []byte(hex.EncodeToString(pair.Private)+"\n")); err != nil {
			return err
		}
		if _, err := os.Stat(s.storePath()); os.IsNotExist(err) {
			name := strings.TrimSuffix(filepath.Base(path), "_noise.key")
			return writeStateFile(s.storePath(), pythonStyleJSON(map[string]any{"name": name, pinnedNoiseKeysKey: map[string]any{}}))
		}
		return nil
	})
	return pair, err
}

// Pins is every readable pin: pin id -> 32-byte hub public key.
func (s *NoiseStore) Pins() (map[string][]byte, error) {
	document, err := s.document()
	if err != nil {
		return nil, err
	}
	pins := map[string][]byte{}
	raw, _ := document[pinnedNoiseKeysKey].(map[string]any)
	for pinID, value := range raw {
		if key := parseKeyHex(value); key != nil {
			pins[pinID] = key
		}
	}
	return pins, nil
}

// HubPin is the pinned hub key of pinID, or nil.
func (s *NoiseStore) HubPin(pinID string) ([]byte, error) {
	pins, err := s.Pins()
	if err != nil {
		return nil, err
	}
	return pins[pinID], nil
}

// PinHub records the hub key of pinID (trust on first use); an existing pin is left alone.
func (s *NoiseStore) PinHub(pinID string, publicKey []byte) error {
	if len(publicKey) != 32 {
		return noiseStateErr("A hub Noise key is 32 bytes.")
	}
	return s.updatePins(func(pins map[string]any) {
		if _, exists := pins[pinID]; !exists {
			pins[pinID] = hex.EncodeToString(publicKey)
		}
	})
}

// RemovePin forgets the pin of pinID (an explicit user decision).
func (s *NoiseStore) RemovePin(pinID string) error {
	return s.updatePins(func(pins map[string]any) { delete(pins, pinID) })
}

func (s *NoiseStore) updatePins(change func(map[string]any)) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	return withLock(s.storePath(), func() error {
		document, err := s.document()
		if err != nil {
			return err
		}
		pins, ok := document[pinnedNoiseKeysKey].(map[string]any)
		if !ok {
			pins = map[string]any{}
		}
		change(pins)
		document[pinnedNoiseKeysKey] = pins
		if _, ok := document["name"]; !ok {
			name, err := nameOf(document)
			if err != nil {
				return err
			}
			document["name"] = name
		}
		return writeStateFile(s.storePath(), pythonStyleJSON(document))
	})
}

func (s *NoiseStore) pskEntries(path string) map[string]string {
	entries := map[string]string{}
	if refuseSymlink(path) != nil {
		return entries
	}
	info, err := os.Stat(path)
	if err != nil || info.Size() > maxStateFileBytes || info.Mode().Perm()&0o077 != 0 {
		return entries // missing, oversize or too permissive: ignored (spec 1.8)
	}
	document, err := loadJSONObject(path)
	if err != nil {
		return entries
	}
	for key, value := range document {
		if text, ok := value.(string); ok {
			entries[key] = text
		}
	}
	return entries
}

// CachedPSK is the cached PSK of (accessKey, nodeID), or nil.
func (s *NoiseStore) CachedPSK(accessKey, nodeID string) []byte {
	path, err := s.pskPath()
	if err != nil {
		return nil
	}
	return parseKeyHex(s.pskEntries(path)[pskCacheKey(accessKey, nodeID)])
}

// StorePSK caches a derived PSK; beyond MaxPSKEntries entries some are dropped.
func (s *NoiseStore) StorePSK(accessKey, nodeID string, psk []byte) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	path, err := s.pskPath()
	if err != nil {
		return err
	}
	return withLock(path, func() error {
		entries := s.pskEntries(path)
		key := pskCacheKey(accessKey, nodeID)
		delete(entries, key)
		for len(entries) >= MaxPSKEntries {
			// JSON objects keep no order here: drop the smallest key (a stable choice)
			keys := make([]string, 0, len(entries))
			for k := range entries {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			delete(entries, keys[0])
		}
		entries[key] = hex.EncodeToString(psk)
		document := map[string]any{}
		for k, v := range entries {
			document[k] = v
		}
		return writeStateFile(path, pythonStyleJSON(document))
	})
}

// ForgetPSK drops the cached PSK of (accessKey, nodeID).
func (s *NoiseStore) ForgetPSK(accessKey, nodeID string) {
	path, err := s.pskPath()
	if err != nil {
		return
	}
	if _, err := os.Stat(path); err != nil {
		return
	}
	_ = withLock(path, func() error {
		entries := s.pskEntries(path)
		key := pskCacheKey(accessKey, nodeID)
		if _, ok := entries[key]; !ok {
			return nil
		}
		delete(entries, key)
		document := map[string]any{}
		for k, v := range entries {
			document[k] = v
		}
		return writeStateFile(path, pythonStyleJSON(document))
	})
}

// copyLegacyState copies (never moves) a legacy key and its pins into a new directory, once,
// when a legacy pin is filed under this identity's hub host.
func (s *NoiseStore) copyLegacyState(legacy, hubHost string) {
	if _, err := os.Stat(s.storePath()); err == nil {
		return
	}
	if a, err := filepath.Abs(legacy); err == nil {
		if b, err := filepath.Abs(s.Directory); err == nil && a == b {
			return
		}
	}
	old := &NoiseStore{Directory: legacy}
	pins, err := old.Pins()
	if err != nil {
		return
	}
	matched := false
	for pin := range pins {
		if parts, err := url.Parse(pin); err == nil && strings.EqualFold(parts.Hostname(), hubHost) {
			matched = true
		}
	}
	keyFile, err := old.keyPath()
	if !matched || err != nil {
		return
	}
	if info, err := os.Lstat(keyFile); err != nil || !info.Mode().IsRegular() {
		return
	}
	document, _ := old.document()
	name, err := nameOf(document)
	if err != nil || s.ensureDir() != nil {
		return
	}
	raw, err := readStateFile(keyFile)
	if err != nil || raw == nil {
		return
	}
	if writeStateFile(filepath.Join(s.Directory, name+"_noise.key"), raw) != nil {
		return
	}
	copied := map[string]any{}
	for pin, key := range pins {
		copied[pin] = hex.EncodeToString(key)
	}
	_ = writeStateFile(s.storePath(), pythonStyleJSON(map[string]any{"name": name, pinnedNoiseKeysKey: copied}))
}
