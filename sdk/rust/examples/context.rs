//! The guide's context recipe: stable user, source, locale and trace metadata on a request.
//!
//! The identity is the guide's `_identity.json`; `THALOVANT_PROTOCOL` picks the carrier.

#[path = "common/mod.rs"]
mod common;

use serde_json::json;
use thalovant::{Client, ClientContextOptions, RequestOptions, build_client_context};

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    let client = Client::with_protocol(common::identity()?, common::protocol())?;

    let mut metadata = serde_json::Map::new();
    metadata.insert("trace_id".into(), json!("req-2026-06-10-001"));

    let context = build_client_context(None, ClientContextOptions {
        user_id: Some("user-42".into()),
        user_name: Some("Ada".into()),
        source: Some("checkout-kiosk".into()),
        platform: Some("kiosk".into()),
        locale: Some("en-US".into()),
        channel: Some("chat".into()),
        metadata: Some(metadata),
        ..Default::default()
    });

    let reply = client
        .ask(
            "Show the next instruction.",
            RequestOptions {
                context: Some(context),
                ..Default::default()
            },
        )
        .await?;
    println!("{}", reply.text);

    client.close().await?;
    Ok(())
}
