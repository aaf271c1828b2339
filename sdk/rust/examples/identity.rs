//! The guide's identity recipes: load saved credentials (config profile, identity file,
//! environment) and read their protocols.
//!
//! The config file is `~/.config/thalovant/config.yaml` with a `prod` profile (mode 0600), the
//! identity file the guide's `_identity.json` in the working directory (mode 0600), and the
//! environment carries `THALOVANT_ACCESS_KEY`, `THALOVANT_PASSWORD`, `THALOVANT_SITE_ID` and
//! `THALOVANT_HUB_HTTP_HOST` (plus the other `THALOVANT_*` variables as needed).

use thalovant::{Client, HubProtocol, Identity};

fn main() -> thalovant::Result<()> {
    let identity = Identity::from_config(Some("prod"))?;
    let same_identity = Identity::from_file("_identity.json")?;

    let client_from_config = Client::from_config(Some("prod"))?;
    let client_from_file = Client::from_file("_identity.json")?;
    let client_from_env = Client::from_env()?;

    println!("{same_identity:?}");
    println!("{client_from_config:?}");
    println!("{client_from_file:?}");
    println!("{client_from_env:?}");

    println!("{:?}", identity.enabled_protocols());
    println!("{:?}", identity.endpoint_for(HubProtocol::Wss));
    println!("{:?}", identity.endpoint_for(HubProtocol::Https));
    println!("{:?}", identity.endpoint_for(HubProtocol::Mqtt));
    println!("{}", identity.supports_protocol(HubProtocol::Wss));

    if let Some(mqtt) = &identity.mqtt {
        println!("{} {}", mqtt.host, mqtt.port);
    }

    Ok(())
}
