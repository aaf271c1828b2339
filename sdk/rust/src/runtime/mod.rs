//! The runtime client's internals: establishing a link, reply collection and the outgoing
//! message rules. The public API is [`crate::client`].

pub mod ask;
pub mod bus;
pub mod link;
