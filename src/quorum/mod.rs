//! The quorum service (see docs/quorum.md).
pub mod model;
