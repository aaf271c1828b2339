//! The guide's quick example: create a client identity for one hub, connect, send one
//! request, print the reply.
//!
//! `THALOVANT_API_URL`, `THALOVANT_API_TOKEN` (a signed-in token), `THALOVANT_HUB_ID` and
//! `SSL_CERT_FILE` (a development CA) come from the environment; `THALOVANT_PROTOCOL` picks the
//! carrier (default wss, as in the guide).

#[path = "common/mod.rs"]
mod common;

use thalovant::{BootstrapIdentityOptions, Client, ControlPlane, HubProtocol, RequestOptions};

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    let mut api = ControlPlane::default();

    let result = api
        .create_client_identity_for_hub_id(
            &common::hub_id(),
            BootstrapIdentityOptions {
                name: "rust-demo-client".into(),
                preferred_protocols: vec![HubProtocol::Wss, HubProtocol::Https, HubProtocol::Mqtt],
                ..Default::default()
            },
        )
        .await?;

    let client = Client::with_protocol(result.identity.clone(), common::protocol())?;
    let reply = client.ask("Tell me a short clean joke.", RequestOptions::default()).await?;
    println!("{}", reply.text);
    client.close().await?;

    Ok(())
}
