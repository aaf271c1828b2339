//! The client's Noise state on disk: its static key, the hub pins and the PSK cache.
//!
//! The layout is the Python SDK's (and hivemind-bus-client's), so one device keeps the key its
//! hub pinned whichever client it runs (spec 1.8):
//!
//! - `_identity.json`: `{"name": ..., "pinned_noise_keys": {pin_id: "<64 hex>"}}` (other keys,
//!   such as `noise_key`, are kept as found);
//! - `<name>_noise.key`: the client's X25519 private key as 64 hex characters, created once;
//! - `<name>_noise_psks.json`: `{"<16 hex of sha256(access_key)>@<node_id>": "<psk hex>"}`, at
//!   most [`MAX_PSK_ENTRIES`] entries.
//!
//! The directory is created 0700 and every file written 0600, atomically, under a lock file
//! `.<file>.lock`. Symlinks are refused. Pins are never removed automatically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::errors::{Error, Result};
use crate::protocol::KeyPair;

/// The store file.
pub const STORE_FILE: &str = "_identity.json";
/// The node name when the store names none.
pub const DEFAULT_NODE_NAME: &str = "unnamed-node";
/// Most PSK cache entries kept.
pub const MAX_PSK_ENTRIES: usize = 32;
/// Largest state file read.
pub const MAX_STATE_FILE_BYTES: u64 = 256 * 1024;

fn state_error(message: impl Into<String>) -> Error {
    Error::Identity(message.into())
}

fn default_port(scheme: &str) -> u16 {
    match scheme {
        "ws" | "http" => 80,
        "mqtts" => 8883,
        "mqtt" => 1883,
        _ => 443,
    }
}

/// Pin id of a WSS endpoint: `<scheme>://<host>:<port>` (IPv6 hosts bracketed).
pub fn wss_pin_id(endpoint: &str) -> Result<String> {
    let url = url::Url::parse(endpoint.trim())
        .map_err(|_| state_error("A WSS endpoint needs a scheme and a host to be pinned."))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| state_error("A WSS endpoint needs a host to be pinned."))?;
    let scheme = url.scheme().to_ascii_lowercase();
    let port = url.port().unwrap_or_else(|| default_port(&scheme));
    Ok(format!("{scheme}://{}:{port}", host.to_ascii_lowercase()))
}

/// Pin id of an HTTPS (and MQTT) hub: the identity's `endpoint_base()` itself.
pub fn https_pin_id(endpoint_base: &str) -> String {
    endpoint_base.trim_end_matches('/').to_string()
}

/// `<first 16 hex of SHA-256(access_key)>@<node_id>`.
pub fn psk_cache_key(access_key: &str, node_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(access_key.as_bytes()));
    format!("{}@{node_id}", &digest[..16])
}

/// `$XDG_CONFIG_HOME/hivemind`, else `~/.config/hivemind`.
pub fn default_noise_dir() -> PathBuf {
    let base = std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(|| crate::config::home_dir().join(".config"), PathBuf::from);
    base.join("hivemind")
}

fn writable_dir(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_dir() && !m.permissions().readonly())
}

/// The state directory: the explicit one, else `hivemind` beside the identity file (if it
/// exists or can be created), else [`default_noise_dir`].
pub fn resolve_noise_dir(explicit: Option<&Path>, source_path: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    if let Some(source) = source_path {
        let resolved = fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        if let Some(parent) = resolved.parent() {
            let beside = parent.join("hivemind");
            if beside.is_dir() || writable_dir(parent) {
                return beside;
            }
        }
    }
    default_noise_dir()
}

fn refuse_symlink(path: &Path) -> Result<()> {
    if path.is_symlink() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Err(state_error(format!("Refusing to use a symlink for Noise state: {name}")));
    }
    Ok(())
}

fn ensure_dir(path: &Path) -> Result<()> {
    refuse_symlink(path)?;
    let create = || -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
            let mode = fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
            }
        }
        #[cfg(not(unix))]
        fs::create_dir_all(path)?;
        Ok(())
    };
    create().map_err(|e| state_error(format!("Cannot create the Noise state directory: {e}")))
}

fn read_text(path: &Path) -> Result<Option<String>> {
    refuse_symlink(path)?;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_error(format!("Cannot read Noise state file {}: {e}", path.display()))),
    };
    if meta.len() > MAX_STATE_FILE_BYTES {
        return Err(state_error(format!("Noise state file is too large: {}", path.display())));
    }
    fs::read_to_string(path)
        .map(Some)
        .map_err(|e| state_error(format!("Cannot read Noise state file {}: {e}", path.display())))
}

/// Write `data` to `path` atomically (a temporary file beside it, then a rename), mode 0600.
pub(crate) fn write_private_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    if path.is_symlink() {
        return Err(io::Error::other("refusing to write through a symlink"));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_state(path: &Path, text: &str) -> Result<()> {
    refuse_symlink(path)?;
    write_private_atomic(path, text.as_bytes())
        .map_err(|e| state_error(format!("Cannot write Noise state file {}: {e}", path.display())))
}

/// An exclusive lock on `.<file>.lock`, released on drop.
struct Locked(File);

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn lock(path: &Path) -> Result<Locked> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lock_path = path.with_file_name(format!(".{name}.lock"));
    refuse_symlink(&lock_path)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file =
        options.open(&lock_path).map_err(|e| state_error(format!("Cannot lock Noise state file {name}: {e}")))?;
    file.lock().map_err(|e| state_error(format!("Cannot lock Noise state file {name}: {e}")))?;
    Ok(Locked(file))
}

fn load_object(path: &Path) -> Result<Map<String, Value>> {
    let Some(text) = read_text(path)? else { return Ok(Map::new()) };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(state_error(format!("Noise state file {} is not a JSON object", path.display()))),
        Err(_) => Err(state_error(format!("Noise state file {} is not valid JSON", path.display()))),
    }
}

fn dump(obj: &Map<String, Value>) -> String {
    let sorted: std::collections::BTreeMap<&String, &Value> = obj.iter().collect();
    format!("{}\n", serde_json::to_string_pretty(&sorted).unwrap_or_default())
}

fn parse_key_hex(value: &str) -> Option<[u8; 32]> {
    hex::decode(value.trim()).ok()?.try_into().ok()
}

/// One Noise state directory. Every method reads the files afresh, so several processes
/// sharing a directory see each other's pins; writes are atomic and locked.
#[derive(Debug, Clone)]
pub struct NoiseStore {
    /// The directory.
    pub directory: PathBuf,
}

impl NoiseStore {
    /// The store in `directory`.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self { directory: directory.into() }
    }

    /// The store a client of this identity uses (spec 1.8), copying legacy state once.
    pub fn for_identity(explicit: Option<&Path>, source_path: Option<&Path>, hub_host: Option<&str>) -> Self {
        let directory = resolve_noise_dir(explicit, source_path);
        let store = Self::new(directory);
        if explicit.is_none()
            && source_path.is_some()
            && store.directory != default_noise_dir()
            && let Some(host) = hub_host
        {
            store.copy_legacy_state(&default_noise_dir(), host);
        }
        store
    }

    /// The `_identity.json` path.
    pub fn store_path(&self) -> PathBuf {
        self.directory.join(STORE_FILE)
    }

    fn document(&self) -> Result<Map<String, Value>> {
        load_object(&self.store_path())
    }

    fn name_of(document: &Map<String, Value>) -> Result<String> {
        let candidate = document
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .or_else(|| {
                document
                    .get("key")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .and_then(|k| Path::new(k).file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| DEFAULT_NODE_NAME.to_string());
        if candidate.contains('/') || candidate == "." || candidate == ".." || candidate.contains('\0') {
            return Err(state_error("The Noise store name is not a plain file name."));
        }
        Ok(candidate)
    }

    /// The node name that prefixes the key and PSK files.
    pub fn name(&self) -> Result<String> {
        Self::name_of(&self.document()?)
    }

    /// The client key file.
    pub fn key_path(&self) -> Result<PathBuf> {
        let document = self.document()?;
        if let Some(configured) =
            document.get("noise_key").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
        {
            let path = PathBuf::from(configured);
            return Ok(if path.is_absolute() { path } else { self.directory.join(path) });
        }
        Ok(self.directory.join(format!("{}_noise.key", Self::name_of(&document)?)))
    }

    /// The PSK cache file.
    pub fn psk_path(&self) -> Result<PathBuf> {
        Ok(self.directory.join(format!("{}_noise_psks.json", self.name()?)))
    }

    /// The client's static key pair, created (0600) on first use and never replaced.
    pub fn static_key(&self) -> Result<KeyPair> {
        ensure_dir(&self.directory)?;
        let path = self.key_path()?;
        if let Some(existing) = Self::read_key(&path)? {
            return Ok(existing);
        }
        let _guard = lock(&path)?;
        if let Some(existing) = Self::read_key(&path)? {
            return Ok(existing);
        }
        let pair = KeyPair::generate().map_err(|e| state_error(e.to_string()))?;
        write_state(&path, &format!("{}\n", hex::encode(pair.private_bytes())))?;
        if !self.store_path().exists() {
            let mut document = Map::new();
            document.insert("name".into(), Value::String(self.name()?));
            document.insert("pinned_noise_keys".into(), Value::Object(Map::new()));
            write_state(&self.store_path(), &dump(&document))?;
        }
        Ok(pair)
    }

    fn read_key(path: &Path) -> Result<Option<KeyPair>> {
        let Some(text) = read_text(path)? else { return Ok(None) };
        let raw = parse_key_hex(&text)
            .ok_or_else(|| state_error(format!("Noise key file {} does not hold 32 bytes of hex", path.display())))?;
        Ok(Some(KeyPair::from_private(raw)))
    }

    /// Every readable pin: pin id -> hub public key.
    pub fn pins(&self) -> Result<Vec<(String, [u8; 32])>> {
        let document = self.document()?;
        let Some(raw) = document.get("pinned_noise_keys").and_then(Value::as_object) else { return Ok(Vec::new()) };
        Ok(raw.iter().filter_map(|(id, v)| v.as_str().and_then(parse_key_hex).map(|k| (id.clone(), k))).collect())
    }

    /// The hub key pinned for `pin_id`.
    pub fn hub_pin(&self, pin_id: &str) -> Result<Option<[u8; 32]>> {
        Ok(self.pins()?.into_iter().find(|(id, _)| id == pin_id).map(|(_, k)| k))
    }

    /// Record the hub key for `pin_id` (TOFU); an existing different pin is left alone.
    pub fn pin_hub(&self, pin_id: &str, public_key: &[u8; 32]) -> Result<()> {
        self.update_pins(|pins| {
            pins.entry(pin_id.to_string()).or_insert_with(|| Value::String(hex::encode(public_key)));
        })
    }

    /// Forget the pin of `pin_id` (an explicit user decision); true when one existed.
    pub fn remove_pin(&self, pin_id: &str) -> Result<bool> {
        let mut removed = false;
        self.update_pins(|pins| removed = pins.remove(pin_id).is_some())?;
        Ok(removed)
    }

    fn update_pins(&self, change: impl FnOnce(&mut Map<String, Value>)) -> Result<()> {
        ensure_dir(&self.directory)?;
        let path = self.store_path();
        let _guard = lock(&path)?;
        let mut document = self.document()?;
        let mut pins = document.get("pinned_noise_keys").and_then(Value::as_object).cloned().unwrap_or_default();
        change(&mut pins);
        document.insert("pinned_noise_keys".into(), Value::Object(pins));
        if !document.contains_key("name") {
            document.insert("name".into(), Value::String(Self::name_of(&document)?));
        }
        write_state(&path, &dump(&document))
    }

    fn psk_entries(&self) -> Map<String, Value> {
        let Ok(path) = self.psk_path() else { return Map::new() };
        if path.is_symlink() {
            return Map::new();
        }
        let Ok(meta) = fs::metadata(&path) else { return Map::new() };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Map::new();
            }
        }
        if meta.len() > MAX_STATE_FILE_BYTES {
            return Map::new();
        }
        load_object(&path).map(|m| m.into_iter().filter(|(_, v)| v.is_string()).collect()).unwrap_or_default()
    }

    /// The cached PSK of (access key, node id).
    pub fn cached_psk(&self, access_key: &str, node_id: &str) -> Option<[u8; 32]> {
        self.psk_entries().get(&psk_cache_key(access_key, node_id)).and_then(Value::as_str).and_then(parse_key_hex)
    }

    /// Cache a derived PSK; the oldest entries go beyond [`MAX_PSK_ENTRIES`].
    pub fn store_psk(&self, access_key: &str, node_id: &str, psk: &[u8; 32]) -> Result<()> {
        ensure_dir(&self.directory)?;
        let path = self.psk_path()?;
        let _guard = lock(&path)?;
        let mut entries = self.psk_entries();
        let key = psk_cache_key(access_key, node_id);
        entries.shift_remove(&key);
        entries.insert(key, Value::String(hex::encode(psk)));
        while entries.len() > MAX_PSK_ENTRIES {
            let Some(oldest) = entries.keys().next().cloned() else { break };
            entries.shift_remove(&oldest);
        }
        write_state(&path, &format!("{}\n", serde_json::to_string_pretty(&entries).unwrap_or_default()))
    }

    /// Forget a cached PSK (after a handshake it took part in failed authentication).
    pub fn forget_psk(&self, access_key: &str, node_id: &str) -> Result<()> {
        let path = self.psk_path()?;
        if !path.exists() {
            return Ok(());
        }
        let _guard = lock(&path)?;
        let mut entries = self.psk_entries();
        if entries.shift_remove(&psk_cache_key(access_key, node_id)).is_some() {
            write_state(&path, &format!("{}\n", serde_json::to_string_pretty(&entries).unwrap_or_default()))?;
        }
        Ok(())
    }

    /// Copy (never move) a legacy key and its pins into this new directory, once, when a
    /// legacy pin is filed under this identity's hub host. Failures are ignored.
    fn copy_legacy_state(&self, legacy: &Path, hub_host: &str) {
        let same = fs::canonicalize(legacy).ok() == fs::canonicalize(&self.directory).ok() && legacy.exists();
        if self.store_path().exists() || same {
            return;
        }
        let old = NoiseStore::new(legacy);
        let Ok(pins) = old.pins() else { return };
        let host = hub_host.to_ascii_lowercase();
        let filed = pins.iter().any(|(pin, _)| {
            url::Url::parse(pin)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase()))
                == Some(host.clone())
        });
        if !filed {
            return;
        }
        let (Ok(key_file), Ok(name)) = (old.key_path(), old.name()) else { return };
        if !key_file.is_file() || key_file.is_symlink() || ensure_dir(&self.directory).is_err() {
            return;
        }
        let Ok(key) = fs::read(&key_file) else { return };
        if write_private_atomic(&self.directory.join(format!("{name}_noise.key")), &key).is_err() {
            return;
        }
        let mut document = Map::new();
        document.insert("name".into(), Value::String(name));
        document.insert(
            "pinned_noise_keys".into(),
            Value::Object(pins.into_iter().map(|(k, v)| (k, Value::String(hex::encode(v)))).collect()),
        );
        let _ = write_state(&self.store_path(), &dump(&document));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("thalovant-store-{}", crate::control::random_hex(6)))
    }

    #[test]
    fn pin_ids_and_cache_keys_follow_spec_1_8() {
        assert_eq!(wss_pin_id("wss://Hub.Example.com/hivemind?x=1").unwrap(), "wss://hub.example.com:443");
        assert_eq!(wss_pin_id("ws://127.0.0.1:5678/").unwrap(), "ws://127.0.0.1:5678");
        assert_eq!(wss_pin_id("wss://[::1]:9/").unwrap(), "wss://[::1]:9");
        assert_eq!(https_pin_id("https://h:443/base/"), "https://h:443/base");
        let key = psk_cache_key("key", "node");
        assert_eq!(key, format!("{}@node", &hex::encode(Sha256::digest(b"key"))[..16]));
    }

    #[test]
    fn the_layout_is_the_python_sdks_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch();
        let store = NoiseStore::new(&dir);
        let key = store.static_key().unwrap();
        assert_eq!(store.static_key().unwrap(), key, "the key is created once");
        let key_file = dir.join("unnamed-node_noise.key");
        assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), hex::encode(key.private_bytes()));
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        store.pin_hub("wss://h:443", &[1u8; 32]).unwrap();
        store.pin_hub("wss://h:443", &[2u8; 32]).unwrap();
        assert_eq!(store.hub_pin("wss://h:443").unwrap(), Some([1u8; 32]), "a pin is never replaced");
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("_identity.json")).unwrap()).unwrap();
        assert_eq!(document["name"], "unnamed-node");
        assert_eq!(document["pinned_noise_keys"]["wss://h:443"], hex::encode([1u8; 32]));
        for i in 0..40u8 {
            store.store_psk("ak", &format!("node-{i}"), &[i; 32]).unwrap();
        }
        assert_eq!(store.cached_psk("ak", "node-39"), Some([39u8; 32]));
        assert_eq!(store.cached_psk("ak", "node-0"), None, "the oldest entries go beyond 32");
        store.forget_psk("ak", "node-39").unwrap();
        assert_eq!(store.cached_psk("ak", "node-39"), None);
        let psks = dir.join("unnamed-node_noise_psks.json");
        std::fs::set_permissions(&psks, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(store.cached_psk("ak", "node-38"), None, "a readable cache is ignored");
        assert!(store.remove_pin("wss://h:443").unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlinks_and_garbage_are_refused() {
        let dir = scratch();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("unnamed-node_noise.key"), "not hex").unwrap();
        assert!(NoiseStore::new(&dir).static_key().unwrap_err().is_identity());
        std::fs::remove_file(dir.join("unnamed-node_noise.key")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("unnamed-node_noise.key")).unwrap();
        assert!(NoiseStore::new(&dir).static_key().unwrap_err().to_string().contains("symlink"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
