//! The files stages hand each other, owned in one place: their names ([`naming`]), the files
//! inside stage directories ([`layout`]), their key-value metadata ([`metadata`]), finding them ([`discover`]) and a task's share of them
//! ([`ShardSpec`]). Stages and `pipeline/` ask this module; none spells another stage's file
//! name or metadata key.

pub mod discover;
pub mod layout;
pub mod metadata;
pub mod naming;
mod shard_spec;

pub use naming::ShardKind;
pub use shard_spec::ShardSpec;
