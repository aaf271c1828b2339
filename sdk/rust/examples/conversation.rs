//! The guide's conversation recipe: related turns share one session.
//!
//! The identity is the guide's `_identity.json`; `THALOVANT_PROTOCOL` picks the carrier.

#[path = "common/mod.rs"]
mod common;

use thalovant::{Client, ConversationOptions, RequestOptions};

#[tokio::main]
async fn main() -> thalovant::Result<()> {
    let client = Client::with_protocol(common::identity()?, common::protocol())?;

    let convo = client.conversation(ConversationOptions {
        lang: Some("en-us".into()),
        ..Default::default()
    });

    let first = convo
        .ask("Remember that my favorite color is blue.", RequestOptions::default())
        .await?;
    let second = convo
        .ask("What color did I mention?", RequestOptions::default())
        .await?;
    println!("{} {}", first.text, second.text);

    client.close().await?;
    Ok(())
}
