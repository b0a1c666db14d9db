//! Who a connection is: Kafka principals, and how a TLS client
//! certificate's subject becomes one (`principal`); SCRAM and PLAIN
//! exchanges over stored SCRAM credentials (`scram`, `sasl`). Pure: no I/O. `net`
//! sets a connection's principal when it authenticates; the Kafka API
//! layer reads it.
pub mod oauth;
pub mod principal;
pub mod sasl;
pub mod scram;

pub use principal::{Principal, PrincipalMappingError, SslPrincipalMapper};

use std::rc::Rc;

/// Who is on the other end of one connection, and where it came in: set
/// when the connection is accepted (and its TLS handshake done), read by
/// every request it sends. Lives on the connection's shard.
#[derive(Debug, Clone)]
pub struct Session {
    /// The listener's name (upper case): Metadata answers with each
    /// broker's address on this listener, as Kafka does.
    pub listener: Rc<str>,
    pub principal: Principal,
    /// The peer's address as Kafka shows it ("/127.0.0.1").
    pub client_host: Rc<str>,
}
