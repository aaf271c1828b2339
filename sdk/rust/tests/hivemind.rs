//! The SDK against hivemind-core 5.3.10a1 (the testbed's hm5 stack), an independent hub that
//! speaks the same data-plane protocol: ws, https and mqtts, XX first, then KK on reconnect.
//!
//! hivemind-core pins the first client Noise key it sees for an access key, so every client
//! here uses one key, kept beside `testbed.json` for the whole testbed run. Each carrier gets
//! a state folder of its own holding that key and no hub pin, so each starts with XX.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use support::*;
use thalovant::{Client, ClientOptions, HubProtocol, Identity, RequestOptions};

fn hm5_identity() -> Identity {
    let path = testbed()["hm5"]["identity_file"]
        .as_str()
        .expect("the testbed runs without hm5: start it with `python -m peers testbed --hm5 -- ...`");
    Identity::from_file(path).expect("the hm5 identity file loads")
}

/// The one client key of this testbed run, and a state folder per carrier holding it.
fn state_for(protocol: HubProtocol) -> PathBuf {
    let testbed_dir = PathBuf::from(std::env::var("THALOVANT_TESTBED").unwrap()).parent().unwrap().to_path_buf();
    let master = testbed_dir.join("rust-hm5-noise");
    let key = thalovant::noise_store::NoiseStore::new(&master);
    key.static_key().expect("the client key is created once");
    let state = testbed_dir.join(format!("rust-hm5-{protocol}"));
    if !state.exists() {
        std::fs::create_dir_all(&state).unwrap();
        let key_file = key.key_path().unwrap();
        std::fs::copy(&key_file, state.join(key_file.file_name().unwrap())).unwrap();
    }
    state
}

fn client(identity: &Identity, protocol: HubProtocol) -> Client {
    let options = ClientOptions {
        protocol: Some(protocol),
        noise_state_dir: Some(state_for(protocol)),
        ..ClientOptions::default()
    };
    Client::with_options(identity.clone(), options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hivemind_core_answers_on_ws_https_and_mqtt_with_xx_then_kk() {
    let identity = hm5_identity();
    assert!(identity.endpoint_for(HubProtocol::Wss).unwrap().starts_with("ws://"));
    for protocol in CARRIERS {
        for (turn, expected) in [(1, "XXpsk2"), (2, "KKpsk0")] {
            let client = client(&identity, protocol);
            client.connect().await.unwrap_or_else(|e| panic!("{protocol} connect {turn}: {e}"));
            let info = client.connection_info();
            assert_eq!(info.noise_pattern.as_deref(), Some(expected), "{protocol} connect {turn}");
            let text = format!("hello from rust over {protocol} {turn}");
            let reply = client
                .ask(&text, RequestOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{protocol} ask {turn}: {e}"));
            assert_eq!(reply.text, format!("You said {text}"), "{protocol}");
            client.close().await.unwrap();
        }
    }
}
