//! The guide's control-plane recipes: create the API client, sign in, discover public hubs,
//! read one by reference, list the workspace's hubs, read one by id, create a client identity.
//!
//! `THALOVANT_EMAIL` / `THALOVANT_PASSWORD` are the account to sign in with and
//! `THALOVANT_HUB_ID` the guide's `"hub-id"`.

#[path = "common/mod.rs"]
mod common;

use thalovant::{BootstrapIdentityOptions, ControlPlane, HubProtocol};

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    // Create API client
    let mut api = ControlPlane::default();

    // Sign in before private control-plane actions
    let email = std::env::var("THALOVANT_EMAIL").unwrap_or_default();
    let password = std::env::var("THALOVANT_PASSWORD").unwrap_or_default();
    api.login(&email, &password, None).await?;

    // List public hubs
    let page = api.list_public_hubs(Some(12), None).await?;
    for hub in page.data {
        println!("{} {} {}", hub.id, hub.slug, hub.title);
    }

    // Get public hub
    let hub = api.get_public_hub("joke-garden").await?;
    println!("{} {}", hub.title, hub.public_ref);

    // List visible hubs
    let page = api.list_hubs(Some(25), None, None).await?;
    for hub in page.data {
        println!("{} {}", hub.id, hub.title);
    }

    // Get hub
    let hub = api.get_hub(&common::hub_id()).await?;
    println!("{}", hub.title);

    // Create identity
    let result = api
        .create_client_identity_for_hub_id(
            &common::hub_id(),
            BootstrapIdentityOptions {
                name: "checkout-kiosk".into(),
                preferred_protocols: vec![HubProtocol::Wss, HubProtocol::Https],
                ..Default::default()
            },
        )
        .await?;

    let identity = result.identity.clone();

    println!("{identity:?}");

    Ok(())
}
