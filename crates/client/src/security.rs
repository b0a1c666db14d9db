//! How the client secures its connections, as Kafka's clients do with
//! `security.protocol`: TLS over the blocking socket (rustls, with the
//! config the caller built from its truststore and keystore), then a SASL
//! login (PLAIN or SCRAM, KIP-84) right after ApiVersions, before any other
//! request. Runs on the CLI's main thread.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::ServerName;
use wire::scram::{ScramClient, ScramMechanism};

use super::conn::{Connection, ReadsIntoOnly};
use super::error::{codes, ClientError};

/// A SASL mechanism the client logs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// Kafka's name (`sasl.mechanism`); OAUTHBEARER and GSSAPI are not built.
    pub fn parse(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

/// A user and password to log in with.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What every connection of a client does before its first request.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS (`security.protocol=SSL` or `SASL_SSL`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A SASL login (`SASL_PLAINTEXT` or `SASL_SSL`).
    pub sasl: Option<SaslLogin>,
}

/// A connection's byte stream: the socket, or TLS over it.
#[derive(Debug)]
pub enum BrokerStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl BrokerStream {
    /// Opens TLS over `tcp` to `addr` when `security` asks for it; the
    /// handshake runs on the first read or write, within the socket's
    /// timeouts.
    pub fn over(tcp: TcpStream, addr: &str, security: &Security) -> Result<Self, ClientError> {
        let Some(config) = &security.tls else {
            return Ok(BrokerStream::Plain(tcp));
        };
        let host = match addr.rsplit_once(':') {
            Some((host, _)) => host,
            None => addr,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            ClientError::InvalidArgument(format!("{host}: not a TLS server name: {e}"))
        })?;
        let session = rustls::ClientConnection::new(config.clone(), name)
            .map_err(|e| ClientError::Protocol(format!("TLS to {addr}: {e}")))?;
        Ok(BrokerStream::Tls(Box::new(rustls::StreamOwned::new(
            session, tcp,
        ))))
    }

    /// The socket underneath.
    pub fn socket(&self) -> &TcpStream {
        match self {
            BrokerStream::Plain(s) => s,
            BrokerStream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for BrokerStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BrokerStream::Plain(s) => s.read(buf),
            BrokerStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for BrokerStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            BrokerStream::Plain(s) => s.write(buf),
            BrokerStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            BrokerStream::Plain(s) => s.flush(),
            BrokerStream::Tls(s) => s.flush(),
        }
    }
}

// SAFETY: a socket's read is recv(2) into the buffer; rustls' stream copies
// its decrypted plaintext into the buffer and never reads it.
unsafe impl ReadsIntoOnly for BrokerStream {}

/// Logs in on `conn` as `login`: SaslHandshake, then SaslAuthenticate
/// messages until the mechanism is done. A refusal is the broker's error
/// (SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM).
pub fn log_in(conn: &mut Connection, login: &SaslLogin) -> Result<(), ClientError> {
    let mechanism = StrBytes::from_static_str(login.mechanism.name());
    let (_, handshake) =
        conn.call(|_| SaslHandshakeRequest::default().with_mechanism(mechanism))?;
    if handshake.error_code != codes::NONE {
        let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(ClientError::kafka(
            "SaslHandshake",
            handshake.error_code,
            login.mechanism.name(),
            Some(&format!("the broker offers {}", offered.join(", "))),
        ));
    }
    match login.mechanism {
        SaslMechanism::Plain => {
            let message = format!("\0{}\0{}", login.username, login.password);
            authenticate(conn, message.into_bytes())?;
        }
        SaslMechanism::Scram(mechanism) => {
            let nonce = wire::scram::random_nonce()
                .ok_or_else(|| ClientError::Protocol("no randomness for a SCRAM nonce".into()))?;
            let mut scram = ScramClient::new(mechanism, &login.username, &login.password, &nonce);
            let server_first = authenticate(conn, scram.client_first())?;
            let client_final = scram
                .client_final(&server_first)
                .map_err(|e| ClientError::Protocol(format!("SCRAM: {e}")))?;
            let server_final = authenticate(conn, client_final)?;
            scram
                .check_server_final(&server_final)
                .map_err(|e| ClientError::Protocol(format!("SCRAM: {e}")))?;
        }
    }
    Ok(())
}

/// One SaslAuthenticate: the broker's answer.
fn authenticate(conn: &mut Connection, message: Vec<u8>) -> Result<Bytes, ClientError> {
    let (_, answer) =
        conn.call(|_| SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)))?;
    if answer.error_code != codes::NONE {
        return Err(ClientError::kafka(
            "SaslAuthenticate",
            answer.error_code,
            "",
            answer.error_message.as_ref().map(|m| m.as_str()),
        ));
    }
    Ok(answer.auth_bytes)
}
