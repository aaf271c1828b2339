//! The WSS carrier: one WebSocket per session (spec 4.1), on tokio-tungstenite over a TCP
//! (TCP_NODELAY) or rustls stream this module opens itself.
//!
//! - URL: `identity.endpoint_for(Wss)` (`ws://` allowed when the identity names it) with an
//!   `authorization` query item = URL-encoded base64 of `"<useragent>:<access_key>"`;
//! - `User-Agent` header, no subprotocol, no compression;
//! - negotiation in TEXT messages, Noise transport messages in BINARY messages;
//! - a PING every 20 s (the session ends when no PONG came 10 s later); messages up to
//!   256 KiB + 1 KiB;
//! - upgrade answered 401/403 is a refusal; a close with 1000, 1005 (no status) or 1008 is
//!   refusal evidence, anything else a drop; a send that fails because the hub already closed
//!   (or the connection is gone) says so ([`Closed::after_end`]): the reader holds the evidence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Closed, Inbound, Incoming, OpenError, authorized_url};
use crate::errors::{Error, Result};
use crate::noise_store::wss_pin_id;

/// Interval between keepalive PINGs.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a PONG may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a normal close may take.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(8);
/// Largest WebSocket message accepted.
pub const MAX_MESSAGE: usize = 256 * 1024 + 1024;
/// Close codes a hub uses to refuse credentials.
pub const REFUSAL_CLOSE_CODES: [u16; 3] = [1000, 1005, 1008];
const INBOUND_QUEUE: usize = 256;
/// How much the WebSocket reads from the stream at once. tungstenite zeroes this much of its
/// buffer before every read (twice per reply), so it stays about two typical messages long
/// rather than its 128 KiB default; larger messages are read in several steps.
const READ_BUFFER: usize = 4 * 1024;

/// Any byte stream the WebSocket runs over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;
type Sink = SplitSink<Ws, Message>;

/// A WebSocket session with a hub's WSS endpoint.
pub struct WssCarrier {
    endpoint: String,
    url: url::Url,
    useragent: String,
    tls: Arc<rustls::ClientConfig>,
    sink: Option<Arc<Mutex<Sink>>>,
    alive: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl WssCarrier {
    /// A carrier for a `ws://` or `wss://` endpoint.
    pub fn new(endpoint: &str, access_key: &str, useragent: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self> {
        let url = authorized_url(endpoint, useragent, access_key)
            .map_err(|e| Error::Connection(format!("The WSS endpoint is not usable: {e}")))?;
        if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none_or(str::is_empty) {
            return Err(Error::UnsupportedProtocol(
                "The WSS endpoint must be a ws:// or wss:// URL with a host.".into(),
            ));
        }
        Ok(Self {
            endpoint: endpoint.to_string(),
            url,
            useragent: useragent.to_string(),
            tls,
            sink: None,
            alive: Arc::new(AtomicBool::new(false)),
            reader: None,
        })
    }

    /// `<scheme>://<host>:<port>`.
    pub fn pin_id(&self) -> Result<String> {
        wss_pin_id(&self.endpoint)
    }

    /// The endpoint without credentials.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// True while the WebSocket is open.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    async fn dial(&self) -> std::result::Result<Ws, OpenError> {
        let host = self.url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        let secure = self.url.scheme() == "wss";
        let port = self.url.port().unwrap_or(if secure { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| {
            OpenError::Failed(format!("Cannot open the WebSocket: TCP connect to {host}:{port} failed: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if secure {
            let config = self.tls.clone();
            let name = ServerName::try_from(host.clone())
                .map_err(|_| OpenError::Failed(format!("Invalid TLS server name {host:?}")))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| OpenError::Failed(format!("TLS handshake with {host}:{port} failed: {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut request =
            self.url.as_str().into_client_request().map_err(|e| {
                OpenError::Failed(format!("Cannot build the WebSocket request: {}", scrub(&e.to_string())))
            })?;
        if let Ok(agent) = self.useragent.parse() {
            request.headers_mut().insert("User-Agent", agent);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE))
            .read_buffer_size(READ_BUFFER);
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((ws, _response)) => Ok(ws),
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                if status == 401 || status == 403 {
                    Err(OpenError::Refused(format!("The hub refused the WebSocket upgrade (HTTP {status}).")))
                } else {
                    Err(OpenError::Failed(format!("The hub answered the WebSocket upgrade with HTTP {status}.")))
                }
            }
            Err(e) => Err(OpenError::Failed(format!("Cannot open the WebSocket: {}", scrub(&e.to_string())))),
        }
    }

    /// Open within `timeout`; starts the reader task.
    pub async fn open(&mut self, timeout: Duration) -> std::result::Result<Inbound, OpenError> {
        let ws = tokio::time::timeout(timeout, self.dial()).await.map_err(|_| OpenError::Timeout)??;
        let (sink, stream) = ws.split();
        let sink = Arc::new(Mutex::new(sink));
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        self.alive.store(true, Ordering::Release);
        self.reader = Some(tokio::spawn(read_loop(stream, sink.clone(), tx, self.alive.clone())));
        self.sink = Some(sink);
        Ok(rx)
    }

    async fn send(&self, message: Message) -> std::result::Result<(), Closed> {
        let sink = self.sink.as_ref().ok_or_else(|| Closed::new("The WebSocket is not open."))?;
        let mut sink = sink.lock().await;
        sink.send(message).await.map_err(|e| {
            self.alive.store(false, Ordering::Release);
            let message = format!("The WebSocket broke while sending: {}", scrub(&e.to_string()));
            if ended_by_peer(&e) { Closed::after_end(message) } else { Closed::new(message) }
        })?;
        forget_sender(&mut sink);
        Ok(())
    }

    /// Send one TEXT message.
    pub async fn send_text(&self, text: String) -> std::result::Result<(), Closed> {
        self.send(Message::text(text)).await
    }

    /// Send one BINARY message.
    pub async fn send_binary(&self, data: Vec<u8>) -> std::result::Result<(), Closed> {
        self.send(Message::binary(data)).await
    }

    /// Close with 1000 (best effort) and stop the reader.
    pub async fn close(&self) {
        self.alive.store(false, Ordering::Release);
        if let Some(sink) = &self.sink {
            let close = async {
                let mut sink = sink.lock().await;
                let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = sink.close().await;
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        }
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

impl Drop for WssCarrier {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

/// Leave no sender's waker with the stream once a message is out.
///
/// tokio-tungstenite keeps the waker of the last task that wrote and wakes it, with the reader,
/// whenever the socket becomes readable: without this, every message from the hub would also
/// wake the task that sent the last request (an ask waiting for its reply: a futex wake and two
/// context switches on a multi-thread runtime, an extra turn of a current-thread one). A flush
/// of the empty write buffer with a no-op waker takes that place; a later send registers its
/// own waker again, and the reader's waker, registered for writes it may do, stays.
fn forget_sender(sink: &mut Sink) {
    let mut context = Context::from_waker(Waker::noop());
    // the buffer is empty (the send flushed it): nothing is written; a Pending (the reader holds
    // the stream at this instant) only leaves the previous waker in place
    let _ = sink.poll_flush_unpin(&mut context);
}

/// Whether a failed send means the hub had already ended the session: its close frame was
/// read (tungstenite then refuses every send: "Sending after closing is not allowed"), or the
/// connection is gone. The reader holds the evidence then (see [`Closed::after_end`]).
fn ended_by_peer(error: &WsError) -> bool {
    matches!(
        error,
        WsError::Protocol(ProtocolError::SendAfterClosing)
            | WsError::AlreadyClosed
            | WsError::ConnectionClosed
            | WsError::Io(_)
    )
}

/// Everything after `?` removed: URLs carry the credential in their query.
fn scrub(text: &str) -> String {
    text.split('?').next().unwrap_or_default().to_string()
}

fn closed_by(frame: Option<&CloseFrame>) -> Closed {
    // a close frame without a status reads as 1005, as every WebSocket client reports it
    let code = frame.map_or(1005, |f| u16::from(f.code));
    Closed {
        message: format!("The hub closed the WebSocket ({code})."),
        code: Some(code),
        refusal_signal: REFUSAL_CLOSE_CODES.contains(&code),
        after_end: false,
    }
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    sink: Arc<Mutex<Sink>>,
    tx: mpsc::Sender<std::result::Result<Incoming, Closed>>,
    alive: Arc<AtomicBool>,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut awaiting_pong: Option<tokio::time::Instant> = None;
    let end = loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if tx.send(Ok(Incoming::Text(text.as_str().to_string()))).await.is_err() { return; }
                }
                Some(Ok(Message::Binary(data))) => {
                    if tx.send(Ok(Incoming::Binary(data.to_vec()))).await.is_err() { return; }
                }
                Some(Ok(Message::Pong(_))) => awaiting_pong = None,
                Some(Ok(Message::Close(frame))) => break closed_by(frame.as_ref()),
                Some(Ok(_)) => {}
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => {
                    break Closed::new("The hub closed the WebSocket (1006).");
                }
                Some(Err(e)) => break Closed::new(format!("The WebSocket broke: {}", scrub(&e.to_string()))),
            },
            () = async {
                match awaiting_pong {
                    Some(sent) => tokio::time::sleep_until(sent + PING_TIMEOUT).await,
                    None => std::future::pending().await,
                }
            } => break Closed::new("The hub did not answer a WebSocket ping in time."),
            _ = ping.tick() => {
                if awaiting_pong.is_none() {
                    awaiting_pong = Some(tokio::time::Instant::now());
                    let mut sink = sink.lock().await;
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break Closed::new("The WebSocket broke while sending a ping.");
                    }
                }
            }
        }
    };
    alive.store(false, Ordering::Release);
    let _ = tx.send(Err(end)).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::sync::atomic::AtomicUsize;
    use std::task::{Poll, Wake};

    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// Counts its wakeups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_message_from_the_hub_wakes_the_reader_and_not_the_last_sender() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let ours: Box<dyn Io> = Box::new(ours);
        let (mut sink, mut stream) = WebSocketStream::from_raw_socket(ours, Role::Client, None).await.split();
        let mut hub = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;

        let (reader, sender) = (Arc::new(Wakes::default()), Arc::new(Wakes::default()));
        let reader_waker = Waker::from(reader.clone());
        let mut next = stream.next();
        assert!(Pin::new(&mut next).poll(&mut Context::from_waker(&reader_waker)).is_pending());
        let sender_waker = Waker::from(sender.clone());
        let mut send = pin!(async {
            sink.send(Message::binary(vec![1u8; 16])).await.unwrap();
            forget_sender(&mut sink);
        });
        assert!(send.as_mut().poll(&mut Context::from_waker(&sender_waker)).is_ready());

        assert_eq!(hub.next().await.unwrap().unwrap(), Message::binary(vec![1u8; 16]));
        hub.send(Message::binary(vec![2u8; 16])).await.unwrap();
        assert!(reader.count() > 0, "the reader was not woken");
        assert_eq!(sender.count(), 0, "the task that sent the last message was woken by a message for the reader");
        match Pin::new(&mut next).poll(&mut Context::from_waker(&reader_waker)) {
            Poll::Ready(Some(Ok(message))) => assert_eq!(message, Message::binary(vec![2u8; 16])),
            other => panic!("{other:?}"),
        }
    }
}
