//! The crate's tests only: a carrier without a network whose hub is a script. Opening and each
//! message sent may make the script answer; its answers are queued in order on the inbound
//! channel, as a real carrier's reader task would queue them.

use std::sync::Mutex;

use tokio::sync::mpsc;

use super::{Closed, Inbound, Incoming};
use crate::protocol::negotiation::Outgoing;

/// What a scripted hub answers.
pub trait Script: Send {
    /// The carrier opened (for MQTT: the cleartext HELLO went out).
    fn opened(&mut self) -> Vec<Incoming>;
    /// The client sent `message`.
    fn sent(&mut self, message: Outgoing) -> Vec<Incoming>;
}

type Sender = mpsc::Sender<Result<Incoming, Closed>>;

/// A carrier whose hub is a [`Script`].
pub struct ScriptedCarrier {
    /// What [`super::Carrier::shared_inbound`] says.
    pub shared_inbound: bool,
    script: Mutex<Box<dyn Script>>,
    inbox: Mutex<Option<Sender>>,
}

impl ScriptedCarrier {
    /// A carrier whose hub is `script`; `shared_inbound`: what the carrier says of its channel.
    pub fn new(shared_inbound: bool, script: impl Script + 'static) -> Self {
        Self { shared_inbound, script: Mutex::new(Box::new(script)), inbox: Mutex::new(None) }
    }

    /// A made-up endpoint (also the pin id).
    pub fn endpoint(&self) -> String {
        "mqtts://hub.test:8883".into()
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Box<dyn Script>> {
        self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Option<Sender>> {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, messages: Vec<Incoming>) -> Result<(), Closed> {
        let inbox = self.inbox();
        let sender = inbox.as_ref().ok_or_else(|| Closed::new("The scripted session is closed."))?;
        for message in messages {
            sender.try_send(Ok(message)).map_err(|_| Closed::new("The scripted inbox is full."))?;
        }
        Ok(())
    }

    /// Open: the script's opening is queued.
    pub fn open(&self) -> Inbound {
        let (tx, rx) = mpsc::channel(super::mqtt::MAX_INBOUND);
        *self.inbox() = Some(tx);
        let opening = self.script().opened();
        // the inbox was made above: it is open and has room
        let _ = self.push(opening);
        rx
    }

    /// Send `message`: the script's answers are queued.
    pub fn send(&self, message: Outgoing) -> Result<(), Closed> {
        let answers = self.script().sent(message);
        self.push(answers)
    }

    /// True until closed.
    pub fn alive(&self) -> bool {
        self.inbox().is_some()
    }

    /// Close: the inbound channel ends.
    pub fn close(&self) {
        self.inbox().take();
    }
}
