//! The SDK against `thalovant-server serve --demo` (the testbed): the guide's examples on all
//! three carriers, XX then KK, typed errors for bad input, and one identity shared with the
//! Python SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use thalovant::{Client, ClientOptions, ControlPlane, Error, HubProtocol, Identity, RequestOptions};

fn protocol_env(protocol: HubProtocol) -> (&'static str, String) {
    ("THALOVANT_PROTOCOL", protocol.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_example_tells_the_guides_joke_on_every_carrier() {
    let mut api = api().await;
    let hub = hub_id(&mut api).await;
    let token = api.access_token.clone().unwrap();
    for protocol in CARRIERS {
        let scratch = Scratch::new("quickstart");
        let output = run_example(
            "quickstart",
            scratch.path(),
            &[("THALOVANT_API_TOKEN", token.clone()), ("THALOVANT_HUB_ID", hub.clone()), protocol_env(protocol)],
        );
        let stdout = stdout_of("quickstart", &output);
        assert_eq!(stdout.trim(), JOKE, "{protocol}");
        // the guide's client name is fixed: remove this run's client before the next carrier
        let clients = api.list_clients(Some(&hub), Some(100), None).await.unwrap();
        for client in clients["data"].as_array().unwrap() {
            if client["name"] == "rust-demo-client" {
                api.delete_client(client["id"].as_str().unwrap()).await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_example_discovers_hubs_and_creates_an_identity() {
    let mut api = api().await;
    let hub = hub_id(&mut api).await;
    let scratch = Scratch::new("control");
    let output = run_example(
        "control_plane",
        scratch.path(),
        &[
            ("THALOVANT_EMAIL", demo("email")),
            ("THALOVANT_PASSWORD", demo("password")),
            ("THALOVANT_HUB_ID", hub.clone()),
        ],
    );
    let stdout = stdout_of("control_plane", &output);
    let public = api.get_public_hub("joke-garden").await.unwrap();
    assert!(stdout.contains(&format!("{} joke-garden {}", public.id, public.title)), "{stdout}");
    assert!(stdout.contains(&format!("{} {}", public.title, public.public_ref)), "{stdout}");
    assert!(stdout.contains(&format!("{} {}", public.id, public.title)), "{stdout}");
    let identity_line = stdout.lines().last().unwrap();
    assert!(identity_line.starts_with("Identity(site_id=\"checkout-kiosk\""), "{stdout}");
    assert!(identity_line.contains("protocols=[Wss, Https"), "{stdout}");
    assert!(identity_line.contains("\"wss\": String(\"wss://"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_example_loads_config_file_and_environment() {
    let scratch = Scratch::new("identity");
    let (identity, _) = provision_in(scratch.path(), "_identity.json", "identity-example").await;
    let config = scratch.path().join("config").join("thalovant");
    std::fs::create_dir_all(&config).unwrap();
    // a YAML profile whose identity is written in flow style (JSON is YAML), mode 0600
    let yaml = format!(
        "profile: prod\nprofiles:\n  prod:\n    identity: {}\n",
        serde_json::to_string(&identity.as_value(true)).unwrap()
    );
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(config.join("config.yaml")).unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    let envs = [
        ("THALOVANT_ACCESS_KEY", identity.access_key.clone()),
        ("THALOVANT_PASSWORD", identity.password.clone()),
        ("THALOVANT_SITE_ID", identity.site_id.clone()),
        ("THALOVANT_HUB_HTTP_HOST", identity.default_master.clone()),
        ("THALOVANT_HUB_WSS_HOST", identity.endpoint_for(HubProtocol::Wss).unwrap()),
    ];
    let output = run_example("identity", scratch.path(), &envs);
    let stdout = stdout_of("identity", &output);
    let mqtt = identity.mqtt.as_ref().unwrap();
    assert!(stdout.contains("[Wss, Https, Mqtt]"), "{stdout}");
    assert!(stdout.contains(&format!("{} {}", mqtt.host, mqtt.port)), "{stdout}");
    assert!(!stdout.contains(&identity.password), "an identity printed its password:\n{stdout}");
    assert!(!stdout.contains(&identity.access_key), "an identity printed its access key:\n{stdout}");

    // the 0600 rule: a config file others may read is refused
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(config.join("config.yaml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run_example("identity", scratch.path(), &envs);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("too permissive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_examples_give_the_guides_outputs_on_every_carrier() {
    let scratch = Scratch::new("runtime");
    provision_in(scratch.path(), "_identity.json", "runtime-examples").await;
    for protocol in CARRIERS {
        let envs = [protocol_env(protocol)];
        let stdout = stdout_of("runtime_client", &run_example("runtime_client", scratch.path(), &envs));
        assert!(stdout.lines().any(|l| l == CAPABILITIES), "{protocol}: {stdout}");
        assert!(
            stdout.contains("connected: true, handshake_complete: true, transport_alive: true, last_error: None"),
            "{protocol}: {stdout}"
        );

        let stdout = stdout_of("inputs", &run_example("inputs", scratch.path(), &envs));
        assert_eq!(stdout.trim(), "sent", "{protocol}");

        let stdout = stdout_of("conversation", &run_example("conversation", scratch.path(), &envs));
        let line = stdout.trim();
        let second = line.rsplit_once(". ").map_or(line, |(_, s)| s);
        assert!(line.to_lowercase().contains("blue"), "{protocol}: {stdout}");
        assert!(second.to_lowercase().contains("blue"), "{protocol}: the second turn must remember blue: {stdout}");

        let stdout = stdout_of("events", &run_example("events", scratch.path(), &envs));
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(lines.len() >= 7, "{protocol}: a first event and the stream of three answers: {stdout}");
        assert!(lines.iter().filter(|l| l.starts_with("ovos.utterance.handled")).count() >= 3, "{protocol}: {stdout}");
        assert!(lines.iter().any(|l| *l == format!("speak {CAPABILITIES}")), "{protocol}: {stdout}");

        let stdout = stdout_of("context", &run_example("context", scratch.path(), &envs));
        assert!(!stdout.trim().is_empty(), "{protocol}: {stdout}");
    }
}

fn client_in(identity: &Identity, protocol: HubProtocol, state: &std::path::Path) -> Client {
    Client::with_options(
        identity.clone(),
        ClientOptions {
            protocol: Some(protocol),
            noise_state_dir: Some(state.to_path_buf()),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xx_first_then_kk_on_reconnect_on_every_carrier() {
    for protocol in CARRIERS {
        let scratch = Scratch::new("xxkk");
        let (identity, _) = provision_in(scratch.path(), "identity.json", "xx-kk").await;
        let state = scratch.path().join("state");
        let first = client_in(&identity, protocol, &state);
        first.connect().await.unwrap();
        assert_eq!(first.connection_info().noise_pattern.as_deref(), Some("XXpsk2"), "{protocol}");
        let reply = first.ask("What can this hub do?", RequestOptions::default()).await.unwrap();
        assert_eq!(reply.text, CAPABILITIES);
        first.close().await.unwrap();

        let second = client_in(&identity, protocol, &state);
        second.connect().await.unwrap();
        let info = second.connection_info();
        assert_eq!(info.noise_pattern.as_deref(), Some("KKpsk0"), "{protocol}");
        assert_eq!(info.attempts, 1, "{protocol}: KK must not need the XX retry");
        let reply = second.ask("What can this hub do?", RequestOptions::default()).await.unwrap();
        assert_eq!(reply.text, CAPABILITIES);
        second.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_hub_key_is_a_hub_key_changed_error() {
    for protocol in CARRIERS {
        let scratch = Scratch::new("tamper");
        let (identity, _) = provision_in(scratch.path(), "identity.json", "tamper").await;
        let state = scratch.path().join("state");
        let client = client_in(&identity, protocol, &state);
        client.connect().await.unwrap();
        client.close().await.unwrap();
        let store = state.join("_identity.json");
        let text = std::fs::read_to_string(&store).unwrap();
        let mut document: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pins = document["pinned_noise_keys"].as_object_mut().unwrap();
        assert_eq!(pins.len(), 1);
        for value in pins.values_mut() {
            let mut key = hex::decode(value.as_str().unwrap()).unwrap();
            key[0] ^= 0x55;
            *value = serde_json::Value::String(hex::encode(key));
        }
        std::fs::write(&store, serde_json::to_string(&document).unwrap()).unwrap();
        let error = client_in(&identity, protocol, &state).connect().await.unwrap_err();
        assert!(error.is_hub_key_changed(), "{protocol}: {error:?}");
        assert!(error.is_connection());
        assert!(error.to_string().contains("Trusted Noise server key changed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_refusal() {
    for protocol in CARRIERS {
        let scratch = Scratch::new("password");
        let (mut identity, _) = provision_in(scratch.path(), "identity.json", "wrong-password").await;
        identity.password.push('x');
        let client = client_in(&identity, protocol, &scratch.path().join("state"));
        // XXpsk2 mixes the PSK into the hub's message 2, which then fails to authenticate here:
        // a refusal on every carrier, MQTT included
        let error = client.connect().await.unwrap_err();
        assert!(error.is_hub_refused() && !error.is_client_key_rejected(), "{protocol}: {error:?}");
        assert!(!error.to_string().contains(&identity.password));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_identity_is_refused() {
    let mut api = api().await;
    for protocol in CARRIERS {
        let scratch = Scratch::new("revoked");
        let (identity, client_id) = provision_in(scratch.path(), "identity.json", "revoked").await;
        let state = scratch.path().join("state");
        let client = client_in(&identity, protocol, &state);
        client.connect().await.unwrap();
        client.close().await.unwrap();
        api.delete_client(&client_id).await.unwrap();
        let error = client_in(&identity, protocol, &state).connect().await.unwrap_err();
        match protocol {
            // the broker refuses the deleted credentials at CONNECT: a connection error
            HubProtocol::Mqtt => assert!(error.is_connection(), "{protocol}: {error:?}"),
            _ => assert!(error.is_hub_refused(), "{protocol}: {error:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_call_without_token_is_a_typed_error_before_any_io() {
    let mut api = ControlPlane::new(Some(&demo("api_url")));
    api.access_token = None;
    let error = api.list_hubs(Some(25), None, None).await.unwrap_err();
    assert!(error.is_api(), "{error:?}");
    assert_eq!(error.status(), None);
    assert!(error.to_string().contains("Missing Thalovant API access token"), "{error}");
    let error = api.login(&demo("email"), "not-the-password", None).await.unwrap_err();
    assert!(error.is_auth(), "{error:?}");
    assert_eq!(error.status(), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_a_connection_error() {
    let scratch = Scratch::new("down");
    let (identity, _) = provision_in(scratch.path(), "identity.json", "down").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut value = identity.as_value(true);
    let rewrite = |url: &str| {
        let mut parsed = url::Url::parse(url).unwrap();
        parsed.set_port(Some(port)).unwrap();
        parsed.to_string().trim_end_matches('/').to_string()
    };
    for key in ["wss", "https", "mqtt"] {
        if let Some(url) = value["data_plane_endpoints"][key].as_str().map(rewrite) {
            value["data_plane_endpoints"][key] = url.into();
        }
    }
    let endpoint = rewrite(value["mqtt"]["endpoint"].as_str().unwrap());
    value["mqtt"]["endpoint"] = endpoint.into();
    let down = Identity::from_value(&value, None).unwrap();
    for protocol in CARRIERS {
        let error = client_in(&down, protocol, &scratch.path().join("state")).connect().await.unwrap_err();
        assert!(error.is_connection() || error.is_timeout(), "{protocol}: {error:?}");
        assert!(!error.is_hub_refused(), "{protocol}: a dead server is not a refusal: {error:?}");
    }
    let mut api = ControlPlane::new(Some(&format!("https://127.0.0.1:{port}")));
    let error = api.list_public_hubs(Some(12), None).await.unwrap_err();
    assert!(error.is_unreachable() && error.is_connection(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_and_its_noise_state_serve_the_python_and_the_rust_client() {
    let scratch = Scratch::new("interchange");
    let (identity, _) = provision_in(scratch.path(), "identity.json", "interchange").await;
    let identity_file = scratch.path().join("identity.json");
    let python = testbed()["python"].as_str().unwrap().to_string();
    let snippet = r#"
import sys
from thalovant import ThalovantClient
with ThalovantClient.from_identity_file(sys.argv[1], protocol="wss") as client:
    reply = client.ask("What can this hub do?")
    print(client.connection_info().noise_pattern)
    print(reply.text)
"#;
    let run_python = || {
        let output = std::process::Command::new(&python)
            .args(["-c", snippet, identity_file.to_str().unwrap()])
            .env("HOME", scratch.path())
            .env("XDG_CONFIG_HOME", scratch.path().join("config"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "python: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        stdout
    };
    // Python first: XX, and it pins the hub and files the key beside the identity
    let stdout = run_python();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["XXpsk2", CAPABILITIES]);
    assert!(scratch.path().join("hivemind").join("_identity.json").is_file());

    // Rust second, from the same file and therefore the same state folder: KK at once
    let from_file = Identity::from_file(&identity_file).unwrap();
    assert_eq!(from_file.access_key, identity.access_key);
    let client = Client::with_protocol(from_file, HubProtocol::Wss).unwrap();
    assert_eq!(client.noise_store().directory, scratch.path().join("hivemind").canonicalize().unwrap());
    client.connect().await.unwrap();
    let info = client.connection_info();
    assert_eq!(info.noise_pattern.as_deref(), Some("KKpsk0"));
    assert_eq!(info.attempts, 1, "no KK retry: the hub accepted the key Python used");
    assert_eq!(client.ask("What can this hub do?", RequestOptions::default()).await.unwrap().text, CAPABILITIES);
    client.close().await.unwrap();

    // and Python again after Rust: still KK, one pin, no conflict
    let stdout = run_python();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["KKpsk0", CAPABILITIES]);
    let store: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.path().join("hivemind").join("_identity.json")).unwrap())
            .unwrap();
    assert_eq!(store["pinned_noise_keys"].as_object().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_on_the_wire_never_panic_and_keep_secrets_out() {
    let scratch = Scratch::new("misc");
    let (identity, _) = provision_in(scratch.path(), "identity.json", "misc").await;
    let client = client_in(&identity, HubProtocol::Wss, &scratch.path().join("state"));
    let error = client.ask("   ", RequestOptions::default()).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)));
    let error = client.emit("", serde_json::Map::new(), serde_json::Map::new()).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)));
    let debug = format!("{identity:?} {client:?}");
    assert!(!debug.contains(&identity.password) && !debug.contains(&identity.access_key), "{debug}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified_against_the_trusted_bundle() {
    let scratch = Scratch::new("tls");
    provision_in(scratch.path(), "_identity.json", "tls").await;
    // a bundle that does not hold the development CA: every TLS carrier must refuse the hub
    let system = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("a system CA bundle");
    for protocol in [HubProtocol::Wss, HubProtocol::Https, HubProtocol::Mqtt] {
        let mut envs = vec![protocol_env(protocol)];
        for variable in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
            envs.push((variable, system.to_string()));
        }
        let output = run_example("runtime_client", scratch.path(), &envs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{protocol}: connected without trusting the hub's CA");
        assert!(
            stderr.contains("Connection(") && stderr.to_lowercase().contains("certificate"),
            "{protocol}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_key_for_a_pinned_identity_is_rejected() {
    // MQTT has no refusal channel (the hub goes silent), so this is a WSS and HTTPS matter
    for protocol in [HubProtocol::Wss, HubProtocol::Https] {
        let scratch = Scratch::new("second-key");
        let (identity, _) = provision_in(scratch.path(), "identity.json", "second-key").await;
        let first = client_in(&identity, protocol, &scratch.path().join("state-a"));
        first.connect().await.unwrap();
        first.close().await.unwrap();
        let other_state = scratch.path().join("state-b");
        let error = client_in(&identity, protocol, &other_state).connect().await.unwrap_err();
        match &error {
            Error::ClientKeyRejected { key_folder, .. } => {
                assert_eq!(key_folder.as_deref(), Some(other_state.as_path()))
            }
            other => panic!("{protocol}: {other:?}"),
        }
        assert!(error.is_hub_refused() && error.is_connection());
    }
}

/// `thalovant-server serve --demo` of this test only (it is stopped and started again).
struct OwnServer {
    child: std::process::Child,
    data_dir: std::path::PathBuf,
    port: u16,
    mqtt_port: u16,
    password: String,
    /// The server's log (stderr), line by line.
    log: std::sync::mpsc::Receiver<String>,
}

impl OwnServer {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn start(data_dir: &std::path::Path, port: u16, mqtt_port: u16, password: &str) -> Self {
        use std::io::BufRead;
        let command: Vec<String> =
            testbed()["server_command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        let mut child = std::process::Command::new(&command[0])
            .args(&command[1..])
            .args(["serve", "--data-dir", data_dir.to_str().unwrap(), "--host", "127.0.0.1", "--demo"])
            .args(["--port", &port.to_string(), "--mqtt-port", &mqtt_port.to_string()])
            .env("THALOVANT_DEMO_PASSWORD", password)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (log_tx, log) = std::sync::mpsc::channel();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(std::result::Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the server printed its API URL before exiting").unwrap();
            if line.starts_with("Thalovant API: ") {
                break;
            }
        }
        // keep draining its output so it never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        Self { child, data_dir: data_dir.to_path_buf(), port, mqtt_port, password: password.to_string(), log }
    }

    /// Block until a line of the server's log contains `needle`; false if the server ended its
    /// log or `limit` passed first (a guard against hanging, not a measure of speed).
    fn wait_for_log(&self, needle: &str, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        tokio::task::block_in_place(|| {
            loop {
                match self.log.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                    Ok(line) if line.contains(needle) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
    }

    /// SIGTERM, then wait for the exit (idempotent).
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }

    fn restart(mut self) -> Self {
        self.stop();
        let (data_dir, password) = (self.data_dir.clone(), self.password.clone());
        Self::start(&data_dir, self.port, self.mqtt_port, &password)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generous: bounds a slow CI machine's restart; not a speed goal.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Asks `client` in a loop until `stop` is set, each within [`PATIENCE`]; reports its first
/// answer on `started`. The count of answers, or the first error.
fn ask_in_a_loop(
    client: Client,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    started: tokio::sync::mpsc::UnboundedSender<()>,
) -> tokio::task::JoinHandle<Result<u32, Error>> {
    tokio::spawn(async move {
        let mut answered = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let reply = client
                .ask("What can this hub do?", RequestOptions { timeout: Some(PATIENCE), ..RequestOptions::default() })
                .await?;
            assert_eq!(reply.text, CAPABILITIES);
            answered += 1;
            if answered == 1 {
                let _ = started.send(());
            }
        }
        Ok(answered)
    })
}

/// One restart of a hub of this test's own (same data, same ports; starting it is most of the
/// cost, so every restart scenario shares it):
///
/// - while it is down, a client without `auto_reconnect` gets a connection error, never a
///   refusal, and redials with KK when asked once the hub is back;
/// - a client with `auto_reconnect` that is not asked anything redials by itself, with KK;
/// - an ask made while the hub is down waits for the reconnect loop and is answered once the
///   hub is back; a request that waits longer than its own timeout is a connection error;
/// - the hub closes its WebSocket sessions with 1012 when it stops: asks made in a loop through
///   the restart all get their reply (one the hub had not answered yet is sent again after the
///   reconnect; one made during the outage waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restart_fails_only_unsupervised_requests_and_every_client_returns_with_kk() {
    let scratch = Scratch::new("own-server");
    let data_dir = scratch.path().join("data");
    let password = unique("own-demo");
    let server = OwnServer::start(&data_dir, OwnServer::free_port(), OwnServer::free_port(), &password);
    // this server has a development CA of its own: trust exactly that file
    let ca_file = data_dir.join("ca.pem");
    let mut api = ControlPlane::new(Some(&format!("https://127.0.0.1:{}", server.port)));
    api.ca_file = Some(ca_file.clone());
    api.login("demo@example.com", &password, None).await.unwrap();
    let hub = api.get_public_hub("joke-garden").await.unwrap();
    let identity = api
        .create_client_identity_for_hub(
            hub,
            thalovant::BootstrapIdentityOptions { name: "down-and-up".into(), ..Default::default() },
        )
        .await
        .unwrap()
        .identity;
    let options = |protocol| ClientOptions {
        protocol: Some(protocol),
        noise_state_dir: Some(scratch.path().join("state")),
        ca_file: Some(ca_file.clone()),
        auto_reconnect: false,
        ..ClientOptions::default()
    };
    let reconnecting = || {
        Client::with_options(identity.clone(), ClientOptions { auto_reconnect: true, ..options(HubProtocol::Wss) })
            .unwrap()
    };
    let clients: Vec<Client> =
        CARRIERS.iter().map(|p| Client::with_options(identity.clone(), options(*p)).unwrap()).collect();
    for client in &clients {
        client.connect().await.unwrap();
        assert_eq!(client.ask("What can this hub do?", RequestOptions::default()).await.unwrap().text, CAPABILITIES);
    }
    // one client keeps auto_reconnect: it must come back by itself, without being asked
    let returning = reconnecting();
    let asker = reconnecting();
    // no settle window: a looper's ask is in flight mostly while the hub has not answered it
    let looper = || {
        let options = ClientOptions {
            auto_reconnect: true,
            reply_settle: std::time::Duration::ZERO,
            ..options(HubProtocol::Wss)
        };
        Client::with_options(identity.clone(), options).unwrap()
    };
    let loopers = [looper(), looper()];
    for client in loopers.iter().chain([&returning, &asker]) {
        client.connect().await.unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let loops: Vec<_> =
        loopers.iter().map(|client| ask_in_a_loop(client.clone(), stop.clone(), started_tx.clone())).collect();
    // every loop has had an answer: each is asking when the hub goes
    for _ in &loopers {
        started.recv().await.unwrap();
    }
    let mut server = server;
    tokio::task::block_in_place(|| server.stop());
    let waiting = {
        let asker = asker.clone();
        tokio::spawn(async move {
            asker
                .ask("What can this hub do?", RequestOptions { timeout: Some(PATIENCE), ..RequestOptions::default() })
                .await
        })
    };
    // a request that waits for the link gives up at its own timeout, with a connection error
    let brief = || RequestOptions { timeout: Some(std::time::Duration::from_millis(300)), ..RequestOptions::default() };
    let error = asker.ask("What can this hub do?", brief()).await.unwrap_err();
    assert!(error.is_connection() && error.to_string().contains("not back within"), "{error:?}");
    let error = asker.send_utterance("What can this hub do?", brief()).await.unwrap_err();
    assert!(error.is_connection() && error.to_string().contains("not back within"), "{error:?}");
    for client in &clients {
        let error = client.ask("What can this hub do?", RequestOptions::default()).await.unwrap_err();
        assert!(error.is_connection() || error.is_timeout(), "{}: {error:?}", client.protocol());
        assert!(!error.is_hub_refused(), "{}: a stopped server is not a refusal: {error:?}", client.protocol());
        assert!(!client.healthcheck().await.ok());
    }
    // the same data directory comes back with the same keys: the reconnect loops redial, with KK
    let server = tokio::task::block_in_place(|| server.restart());
    assert_eq!(waiting.await.unwrap().unwrap().text, CAPABILITIES, "the ask made while the hub was down");
    stop.store(true, std::sync::atomic::Ordering::Release);
    for looping in loops {
        let answered = looping.await.unwrap().unwrap_or_else(|e| panic!("an ask failed across the restart: {e:?}"));
        assert!(answered > 0);
    }
    assert!(
        server.wait_for_log("WSS session open", std::time::Duration::from_secs(30)),
        "no reconnect loop dialled the new server"
    );
    for client in loopers.iter().chain([&returning, &asker]) {
        // made after the loops: waits for the link if this client has not redialled yet
        let reply = client
            .ask("What can this hub do?", RequestOptions { timeout: Some(PATIENCE), ..RequestOptions::default() })
            .await
            .unwrap();
        assert_eq!(reply.text, CAPABILITIES);
        let info = client.connection_info();
        assert_eq!((info.reconnects, info.noise_pattern.as_deref()), (1, Some("KKpsk0")));
        client.close().await.unwrap();
    }
    // each client without auto_reconnect redials with KK when asked
    for client in &clients {
        let reply = client.ask("What can this hub do?", RequestOptions::default()).await.unwrap();
        assert_eq!(reply.text, CAPABILITIES, "{}", client.protocol());
        assert_eq!(client.connection_info().noise_pattern.as_deref(), Some("KKpsk0"), "{}", client.protocol());
        client.close().await.unwrap();
    }
    drop(server);
}
