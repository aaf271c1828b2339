//! The per-user config file: where it lives, how it is read, and the 0600 rule.
//!
//! - Path: `$XDG_CONFIG_HOME/thalovant/config.yaml`, else `%APPDATA%/Thalovant/config.yaml` on
//!   Windows, else `~/.config/thalovant/config.yaml`.
//! - YAML is parsed with `serde_norway` into JSON values.
//! - Files holding secrets must not be readable or writable by group or others
//!   ([`check_private_file`]); a Kubernetes projected secret is the one exception.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::errors::{Error, Result};

/// Largest config or identity file read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The user's home directory (`$HOME`).
pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The config file path for this user.
pub fn default_config_path() -> PathBuf {
    if let Some(xdg) = env_nonempty("XDG_CONFIG_HOME") {
        return PathBuf::from(xdg).join("thalovant").join("config.yaml");
    }
    if cfg!(windows)
        && let Some(appdata) = env_nonempty("APPDATA")
    {
        return PathBuf::from(appdata).join("Thalovant").join("config.yaml");
    }
    home_dir().join(".config").join("thalovant").join("config.yaml")
}

#[cfg(unix)]
fn kubernetes_projected_secret(path: &Path) -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && path.is_symlink()
        && path.parent().is_some_and(|dir| dir.join("..data").is_symlink())
}

/// Refuse a file that group or others may access (POSIX only).
pub fn check_private_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Identity(format!("Cannot read {}: {e}.", path.display())))?;
    if !meta.is_file() {
        return Err(Error::Identity(format!("{} is not a regular file.", path.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 && !kubernetes_projected_secret(path) {
            return Err(Error::Identity(format!(
                "Permissions {mode:04o} on {} are too permissive: it holds secrets. Run: chmod 600 {}",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

fn read_limited(path: &Path) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| Error::Identity(format!("Cannot read {}: {e}.", path.display())))?;
    let mut raw = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::Identity(format!("Cannot read {}: {e}.", path.display())))?;
    if raw.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::Identity(format!(
            "{} is larger than {MAX_CONFIG_BYTES} bytes; it is not an identity file.",
            path.display()
        )));
    }
    String::from_utf8(raw).map_err(|_| Error::Identity(format!("{} is not UTF-8 text.", path.display())))
}

/// The UTF-8 text of a private file (after [`check_private_file`]), at most 1 MiB.
pub fn read_private_text(path: &Path) -> Result<String> {
    check_private_file(path)?;
    read_limited(path)
}

/// Parse YAML text into a JSON value.
pub fn parse_yaml(text: &str) -> std::result::Result<Value, String> {
    serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// Read and parse a config file.
pub fn load_config_document(path: &Path, require_private: bool) -> Result<Value> {
    let text = if require_private { read_private_text(path)? } else { read_limited(path)? };
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    parse_yaml(&text).map_err(|e| Error::Identity(format!("Cannot parse {}: {e}. Fix the YAML.", path.display())))
}

/// The identity mapping of a config document (dataplane.md 1.5): with `profiles`, the named
/// (else selected, else `default`) profile's `identity` or the profile itself; without, the
/// top-level `identity` or the whole document.
pub fn select_identity_mapping(document: &Value, profile: Option<&str>, where_: &str) -> Result<Map<String, Value>> {
    let Some(doc) = document.as_object() else {
        return Err(Error::Identity(format!("The {where_} is not a YAML mapping.")));
    };
    if let Some(profiles) = doc.get("profiles").and_then(Value::as_object) {
        let name = profile
            .map(str::to_string)
            .or_else(|| {
                ["profile", "default_profile", "defaultProfile"].iter().find_map(|k| {
                    doc.get(*k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
                })
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let Some(chosen) = profiles.get(&name).and_then(Value::as_object) else {
            let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(Error::Identity(format!("The {where_} has no profile {name:?} (profiles: {known}).")));
        };
        return Ok(chosen.get("identity").and_then(Value::as_object).unwrap_or(chosen).clone());
    }
    if let Some(profile) = profile {
        return Err(Error::Identity(format!(
            "The {where_} has no 'profiles' mapping, so profile {profile:?} cannot be chosen."
        )));
    }
    Ok(doc.get("identity").and_then(Value::as_object).unwrap_or(doc).clone())
}

/// The top-level `api_url` of the config file, or None (a URL is no secret: the 0600 rule is
/// not applied here).
pub fn config_api_url() -> Option<String> {
    let path = default_config_path();
    if !path.is_file() {
        return None;
    }
    let document = load_config_document(&path, false).ok()?;
    document.get("api_url")?.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_selected_as_the_python_sdk_does() {
        let doc = parse_yaml("profile: prod\nprofiles:\n  prod:\n    identity: {key: a}\n  dev: {key: b}\n").unwrap();
        assert_eq!(select_identity_mapping(&doc, None, "c").unwrap()["key"], "a");
        assert_eq!(select_identity_mapping(&doc, Some("dev"), "c").unwrap()["key"], "b");
        assert!(select_identity_mapping(&doc, Some("nope"), "c").unwrap_err().to_string().contains("prod, dev"));
        let flat = parse_yaml("identity:\n  key: c\n").unwrap();
        assert_eq!(select_identity_mapping(&flat, None, "c").unwrap()["key"], "c");
        assert!(select_identity_mapping(&flat, Some("prod"), "c").is_err());
        assert!(select_identity_mapping(&parse_yaml("- 1").unwrap(), None, "c").is_err());
        assert!(parse_yaml("a: [1,").is_err());
    }
}
