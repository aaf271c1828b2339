//! The runtime client's internals: establishing a link, reply collection, the outgoing
//! message rules and the failure policy. The public API is [`crate::client`].

pub mod ask;
pub mod bus;
pub mod link;
pub(crate) mod overlay;
pub mod policy;
