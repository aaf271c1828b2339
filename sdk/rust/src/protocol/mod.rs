//! The sans-I/O data-plane protocol engine (client role): canonical JSON and the prologue,
//! the pre-shared key, Noise (XXpsk2 / KKpsk0 on `snow`), transport framing, HiveMind
//! envelopes, WIRE-1 binary frames and the negotiation state machine.
//!
//! Bytes and parsed JSON in, bytes and events out: no sockets, no tasks, no clocks. Every
//! malformed input gives a [`ProtocolError`] and nothing else (never a panic).

pub mod canonical;
pub mod channel;
pub mod envelope;
pub mod errors;
pub mod framing;
pub mod negotiation;
pub mod noise;
pub mod psk;
pub mod wire1;

pub use canonical::{build_prologue, canonical_json};
pub use channel::{Opener, Sealer};
pub use envelope::{BusMessage, HiveMessage, parse_envelope};
pub use errors::ProtocolError;
pub use framing::{CHUNK_SIZE, Frame, MAX_REASSEMBLY, MAX_TRANSPORT_MESSAGE, Marker, Reassembler, split_plaintext};
pub use negotiation::{ClientNegotiation, select_noise};
pub use noise::{KeyPair, PATTERNS, SUITES, protocol_name};
pub use psk::derive_psk;
pub use wire1::{Wire1Frame, decode_frame, encode_binary, encode_json};
