//! Storage for minutely: the [`Store`] trait that the server talks to, and
//! [`embedded::EmbeddedStore`], the single-machine engine behind it (a
//! write-ahead log for open minutes, redb for closed blocks).

pub mod codec;
pub mod embedded;
mod types;

pub use types::*;
