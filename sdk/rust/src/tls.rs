//! TLS client configuration shared by every carrier and the control plane (rustls on `ring`).
//!
//! Trust: the CA bundle named by the first of `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` and
//! `SSL_CERT_FILE` that is set to a file (the Python SDK's order), else the system store
//! (`rustls-native-certs`, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` itself).
//! A client or control plane may instead name one CA file of its own (`ca_file`), trusted
//! alone. Certificate verification is never off. The configuration is built once per trust
//! setting and shared.

use std::sync::{Arc, Mutex};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::errors::{Error, Result};

/// The variables naming a CA bundle, in the order they are tried.
pub const TRUST_VARIABLES: [&str; 3] = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"];

/// The CA bundle file named by the trust variables, if any.
pub fn trust_store_file() -> Option<String> {
    TRUST_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|value| value.trim().to_string())
        .find(|value| !value.is_empty() && std::path::Path::new(value).is_file())
}

type Cache = Vec<(Option<String>, Arc<ClientConfig>)>;

static CACHE: Mutex<Cache> = Mutex::new(Vec::new());

fn roots(bundle: Option<&str>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match bundle {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<std::result::Result<_, _>>())
                .map_err(|e| Error::Connection(format!("Cannot load the CA bundle {path}: {e}.")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::Connection(format!("The CA bundle {path} holds no usable certificate.")));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
    }
    Ok(store)
}

/// The TLS client configuration for the current trust setting (no ALPN).
pub fn client_config() -> Result<Arc<ClientConfig>> {
    client_config_for(None)
}

/// The TLS client configuration trusting `ca_file` alone, or the current trust setting when
/// it is `None`.
pub fn client_config_for(ca_file: Option<&std::path::Path>) -> Result<Arc<ClientConfig>> {
    let bundle = match ca_file {
        Some(path) => Some(path.to_string_lossy().into_owned()),
        None => trust_store_file(),
    };
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, config)) = cache.iter().find(|(key, _)| *key == bundle) {
        return Ok(config.clone());
    }
    // ring, not aws-lc-rs: it builds in seconds on the 2-core CI machines (aws-lc-sys takes
    // minutes). Its key exchange is classical (X25519, P-256), which every hub here offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Connection(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots(bundle.as_deref())?)
        .with_no_client_auth();
    let config = Arc::new(config);
    cache.push((bundle, config.clone()));
    Ok(config)
}
