//! What the live tests share: the testbed description, scratch folders, a signed-in control
//! plane and fresh client identities on the demo hub.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use thalovant::{BootstrapIdentityOptions, ControlPlane, HubProtocol, Identity};

/// The joke the guide promises for the quick example.
pub const JOKE: &str = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
/// The capabilities sentence the guide promises.
pub const CAPABILITIES: &str = "This hub can answer quick joke and trivia requests.";
/// Every carrier.
pub const CARRIERS: [HubProtocol; 3] = [HubProtocol::Wss, HubProtocol::Https, HubProtocol::Mqtt];

/// `testbed.json` (peers/testbed.py): read once; a missing testbed fails the test loudly.
pub fn testbed() -> &'static Value {
    static TESTBED: OnceLock<Value> = OnceLock::new();
    TESTBED.get_or_init(|| {
        let path = std::env::var("THALOVANT_TESTBED")
            .expect("THALOVANT_TESTBED is not set: run these tests through `python -m peers testbed --hm5 -- sdk/rust/scripts/test`");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("testbed.json is readable")).expect("testbed.json is JSON")
    })
}

/// A demo value (`api_url`, `email`, `password`, `hub_slug`...).
pub fn demo(key: &str) -> String {
    testbed()["demo"][key].as_str().unwrap_or_else(|| panic!("testbed.json has no demo.{key}")).to_string()
}

/// A scratch folder removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).unwrap();
        let path = std::env::temp_dir().join(format!("thalovant-rust-{tag}-{}", hex::encode(random)));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A random suffix for client names (the demo server is shared by the whole run).
pub fn unique(prefix: &str) -> String {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).unwrap();
    format!("{prefix}-{}", hex::encode(random))
}

/// A control plane signed in as the demo user.
pub async fn api() -> ControlPlane {
    let mut api = ControlPlane::new(Some(&demo("api_url")));
    api.login(&demo("email"), &demo("password"), None).await.expect("the demo user signs in");
    api
}

/// The demo hub's id.
pub async fn hub_id(api: &mut ControlPlane) -> String {
    api.get_public_hub(&demo("hub_slug")).await.expect("the demo hub is public").id
}

/// A fresh client identity on the demo hub (every carrier the hub enables), saved 0600 as
/// `<dir>/<file>`; returns it and its client id.
pub async fn provision_in(dir: &Path, file: &str, name: &str) -> (Identity, String) {
    let mut api = api().await;
    let hub = hub_id(&mut api).await;
    let result = api
        .create_client_identity_for_hub_id(&hub, BootstrapIdentityOptions { name: unique(name), ..Default::default() })
        .await
        .expect("a client identity is created");
    let mut identity = result.identity.clone();
    identity.save(dir.join(file)).expect("the identity file is written");
    (identity, result.client_id().expect("the client has an id").to_string())
}

/// The path of an example binary built by `cargo test` beside this test binary.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("examples").join(name)
}

/// Run an example in `dir` (its working directory and HOME) with `envs`.
pub fn run_example(name: &str, dir: &Path, envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(example_binary(name));
    command.current_dir(dir).env("HOME", dir).env("XDG_CONFIG_HOME", dir.join("config"));
    for (key, _) in std::env::vars() {
        if key.starts_with("THALOVANT_") && key != "THALOVANT_API_URL" {
            command.env_remove(key);
        }
    }
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap_or_else(|e| panic!("cannot run example {name}: {e}"))
}

/// The stdout of a successful run; panics with both streams otherwise.
pub fn stdout_of(name: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "example {name} failed ({}):\n{stdout}\n{stderr}", output.status);
    stdout
}
