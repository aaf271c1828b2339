//! The guide's event recipes: wait (with a timeout) for one event that proves a request
//! completed, then stream events until the client closes.
//!
//! The identity is the guide's `_identity.json`; `THALOVANT_PROTOCOL` picks the carrier.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use thalovant::{Client, RequestOptions};
use tokio::time::timeout;

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    let client = Client::with_protocol(common::identity()?, common::protocol())?;
    client.connect().await?;

    // Wait for event
    let mut events = client.transport.subscribe();
    client.send_utterance("Tell me a joke.", RequestOptions::default()).await?;

    if let Ok(Ok(event)) = timeout(Duration::from_secs(12), events.recv()).await {
        println!("{} {}", event.name, event.text());
    }

    // Stream events: three requests, then the client closes and the stream ends
    let mut events = client.transport.subscribe();
    let asker = client.clone();
    let requests = tokio::spawn(async move {
        for question in ["Tell me a joke.", "Tell me a trivia fact.", "What can this hub do?"] {
            asker.ask(question, RequestOptions::default()).await?;
        }
        asker.close().await
    });

    while let Ok(event) = events.recv().await {
        println!("{} {}", event.name, event.text());
    }

    requests.await.map_err(|e| thalovant::Error::Runtime(e.to_string()))??;
    Ok(())
}
