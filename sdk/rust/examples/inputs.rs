//! The guide's input recipes: a raw event, an utterance, an action and a code.
//!
//! The identity is the guide's `_identity.json`; `THALOVANT_PROTOCOL` picks the carrier.

#[path = "common/mod.rs"]
mod common;

use serde_json::json;
use thalovant::{ActionOptions, Client, CodeOptions, RequestOptions};

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    let client = Client::with_protocol(common::identity()?, common::protocol())?;

    // Emit raw event
    let mut data = serde_json::Map::new();
    data.insert("state".into(), json!("ready"));

    let mut context = serde_json::Map::new();
    context.insert("source".into(), json!("checkout-kiosk"));

    client
        .emit("thalovant.client.status", data, context)
        .await?;

    // Send utterance
    client
        .send_utterance(
            "What is the status?",
            RequestOptions {
                lang: Some("en-us".into()),
                session_id: Some("status-session".into()),
                ..Default::default()
            },
        )
        .await?;

    // Send action
    client
        .send_action(
            "/approve invoice-42",
            ActionOptions {
                title: Some("Approve invoice".into()),
                session_id: Some("approval-session".into()),
                ..Default::default()
            },
        )
        .await?;

    // Send code
    client
        .send_code(
            "INV-2026-001",
            CodeOptions {
                kind: Some("invoice".into()),
                session_id: Some("scan-session".into()),
                ..Default::default()
            },
        )
        .await?;

    println!("sent");
    client.close().await?;
    Ok(())
}
