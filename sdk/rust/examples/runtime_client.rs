//! The guide's runtime-client recipes: connect, check health, close; then one request with
//! `ask` and its display items; diagnostics with `healthcheck`.
//!
//! The identity is the guide's `_identity.json` in the working directory; `THALOVANT_PROTOCOL`
//! picks the carrier (default wss, as in the guide).

#[path = "common/mod.rs"]
mod common;

use thalovant::{Client, RequestOptions};

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    let identity = common::identity()?;

    // Connect, check, close
    let client = Client::with_protocol(identity.clone(), common::protocol())?;
    client.connect().await?;
    println!("{:?}", client.healthcheck().await);
    client.close().await?;

    // Ask
    let client = Client::with_protocol(identity.clone(), common::protocol())?;
    let reply = client
        .ask("What can this hub do?", RequestOptions::default())
        .await?;

    println!("{}", reply.text);
    for item in reply.display_items(Some(600)) {
        println!("{item:?}");
    }

    // Diagnostics
    println!("{:?}", client.healthcheck().await);
    client.close().await?;

    Ok(())
}
