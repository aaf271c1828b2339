//! The Rust SDK's timed asks and many concurrent sessions, driven by `bench/ask.py` (which
//! starts the hub and runs the Python SDK beside it). Prints one JSON object.
//!
//! ```text
//! ask      --identity FILE [--n 300] [--warmup 5] [--text T] [--protocol wss] [--state DIR]
//!          [--runtime current|multi]
//! sessions --count 1000 [--provision-concurrency 4] [--concurrency 16] [--dir DIR] [--protocol wss]
//!          (THALOVANT_API_URL, THALOVANT_EMAIL, THALOVANT_PASSWORD name the hub's API and account)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use thalovant::{BootstrapIdentityOptions, Client, ClientOptions, ControlPlane, HubProtocol, Identity, RequestOptions};
use tokio::sync::Semaphore;

fn args() -> (String, HashMap<String, String>) {
    let mut raw = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = raw.next().unwrap_or_default();
    let mut map = HashMap::new();
    while let Some(key) = raw.next() {
        if let Some(name) = key.strip_prefix("--") {
            map.insert(name.to_string(), raw.next().unwrap_or_default());
        }
    }
    (mode, map)
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}

fn options(protocol: HubProtocol, state: PathBuf) -> ClientOptions {
    ClientOptions {
        protocol: Some(protocol),
        noise_state_dir: Some(state),
        reply_settle: Duration::ZERO,
        auto_reconnect: false,
        ..ClientOptions::default()
    }
}

async fn ask(args: &HashMap<String, String>) -> serde_json::Value {
    let identity = Identity::from_file(&args["identity"]).unwrap();
    let protocol = HubProtocol::parse(args.get("protocol").map_or("wss", String::as_str)).unwrap();
    let n: usize = args.get("n").map_or(300, |v| v.parse().unwrap());
    let warmup: usize = args.get("warmup").map_or(5, |v| v.parse().unwrap());
    let text = args.get("text").cloned().unwrap_or_else(|| "Tell me a joke.".into());
    let state = args.get("state").map_or_else(|| std::env::temp_dir().join("thalovant-rust-bench"), PathBuf::from);
    let client = Client::with_options(identity, options(protocol, state)).unwrap();
    let started = Instant::now();
    client.connect().await.unwrap();
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let pattern = client.connection_info().noise_pattern;
    let mut times = Vec::with_capacity(n);
    let mut errors = 0;
    let mut first_error = None;
    for i in 0..warmup + n {
        let t0 = Instant::now();
        match client.ask(&text, RequestOptions { timeout: Some(Duration::from_secs(10)), ..Default::default() }).await {
            Ok(_) if i >= warmup => times.push(t0.elapsed().as_secs_f64() * 1000.0),
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    client.close().await.unwrap();
    times.sort_by(f64::total_cmp);
    json!({
        "sdk": "rust", "protocol": protocol.as_str(), "connect_ms": connect_ms, "noise_pattern": pattern,
        "ok": times.len(), "errors": errors, "first_error": first_error,
        "median_ms": percentile(&times, 50.0), "p99_ms": percentile(&times, 99.0),
    })
}

async fn sessions(args: &HashMap<String, String>) -> serde_json::Value {
    let count: usize = args.get("count").map_or(1000, |v| v.parse().unwrap());
    let concurrency: usize = args.get("concurrency").map_or(16, |v| v.parse().unwrap());
    let provision_concurrency: usize = args.get("provision-concurrency").map_or(4, |v| v.parse().unwrap());
    let protocol = HubProtocol::parse(args.get("protocol").map_or("wss", String::as_str)).unwrap();
    let dir = args.get("dir").map_or_else(|| std::env::temp_dir().join("thalovant-rust-sessions"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let mut api = ControlPlane::default();
    // the server derives each new identity's PSK (argon2id) while provisioning: allow for a queue
    api.timeout = Duration::from_secs(120);
    api.login(&std::env::var("THALOVANT_EMAIL").unwrap(), &std::env::var("THALOVANT_PASSWORD").unwrap(), None)
        .await
        .unwrap();
    let hub = api.get_public_hub("joke-garden").await.unwrap();

    // one client identity per session, provisioned through the API with bounded concurrency
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(provision_concurrency));
    let mut tasks = Vec::new();
    for index in 0..count {
        let (gate, mut api, hub) = (gate.clone(), api.clone(), hub.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let options =
                BootstrapIdentityOptions { name: format!("rust-bench-session-{index}"), ..Default::default() };
            api.create_client_identity_for_hub(hub, options).await.map(|r| r.identity)
        }));
    }
    let mut identities = Vec::new();
    for task in tasks {
        identities.push(task.await.unwrap().unwrap());
    }
    let provision_s = started.elapsed().as_secs_f64();

    // open every session (bounded concurrency: each first connect derives a PSK), keep them open
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for identity in identities {
        let (gate, state) = (gate.clone(), dir.join("state"));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let client = Client::with_options(identity, options(protocol, state)).unwrap();
            client.connect().await.map(|()| client)
        }));
    }
    let mut clients = Vec::new();
    let mut connect_errors = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await.unwrap() {
            Ok(client) => clients.push(client),
            Err(e) => {
                connect_errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let open = clients.iter().filter(|c| c.connected()).count();

    // every open session asks at once
    let started = Instant::now();
    let asks: Vec<_> = clients
        .iter()
        .map(|client| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .ask(
                        "What can this hub do?",
                        RequestOptions { timeout: Some(Duration::from_secs(60)), ..Default::default() },
                    )
                    .await
            })
        })
        .collect();
    let mut answered = 0;
    let mut ask_errors = 0;
    for task in asks {
        match task.await.unwrap() {
            Ok(reply) if reply.text == "This hub can answer quick joke and trivia requests." => answered += 1,
            Ok(reply) => {
                ask_errors += 1;
                first_error.get_or_insert(format!("unexpected reply: {}", reply.text));
            }
            Err(e) => {
                ask_errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let ask_s = started.elapsed().as_secs_f64();
    for client in &clients {
        client.close().await.unwrap();
    }
    json!({
        "sessions": count, "protocol": protocol.as_str(), "provision_s": provision_s, "connect_s": connect_s,
        "open_at_once": open, "ask_all_s": ask_s, "answered": answered,
        "connect_errors": connect_errors, "ask_errors": ask_errors, "first_error": first_error,
    })
}

fn main() {
    let (mode, args) = args();
    // one client on one thread for latency; every core for many sessions
    let result = match mode.as_str() {
        "ask" if args.get("runtime").is_some_and(|r| r == "multi") => {
            // what `#[tokio::main]` builds: the asks run on the main thread, the readers on workers
            tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(ask(&args))
        }
        "ask" => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(ask(&args)),
        "sessions" => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(sessions(&args))
        }
        _ => {
            eprintln!("usage: ask --identity FILE ... | sessions --count N ...");
            std::process::exit(2);
        }
    };
    println!("{result}");
}
