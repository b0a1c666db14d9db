//! The quorum service's wire format, one TCP port for both Raft traffic
//! between quorum nodes and requests from brokers and admin tools.
//! Used by the quorum process and by `QuorumClient` (tokio).
//!
//! A frame is a `u32` big-endian length followed by that many bytes of JSON.
//! A request frame holds a `RequestFrame` (the shared secret, if any, and a
//! `Request`); the answer is one `Response` frame. Requests on a connection
//! are answered in order. A frame longer than `FRAME_BYTES_MAX` closes the
//! connection; a frame that does not decode gets `Response::BadRequest`.
//!
//! The view never travels whole once it may outgrow a frame: watchers get
//! deltas (`WatchDelta`), and a watcher too far behind, or the CLI, reads
//! it in pages (`WatchPage`, `ReadPage`) of at most `PAGE_BYTES_MAX` each.
use super::changes::{ViewDelta, ViewPage};
use super::model::{BrokerInfo, ClusterView};
use super::raft::{NodeId, TypeConfig};
use super::state::{Applied, CommandError, Proposal};
use model::BrokerId;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted, either way.
pub const FRAME_BYTES_MAX: usize = 16 << 20;
/// Longest long-poll a `Watch` may ask for.
pub const WATCH_TIMEOUT_MS_MAX: u64 = 60_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct RequestFrame {
    /// The quorum's shared secret, when it has one.
    pub auth: Option<String>,
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Raft, between quorum nodes.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Registers a broker and starts its session (leader only).
    RegisterBroker {
        info: BrokerInfo,
    },
    /// Keeps a broker's session alive (leader only).
    Heartbeat {
        broker_id: BrokerId,
    },
    /// Any state-machine command, optionally compare-and-set (leader only).
    Write(Proposal),
    /// A linearizable read of the whole view (leader only). Refused with
    /// `BadRequest` once the view outgrows a frame: read pages instead.
    Read,
    /// Long-poll: the view once its revision exceeds `from_revision`, or the
    /// current view after `timeout_ms`. Served by any node from its applied
    /// state. Refused like `Read` once the view outgrows a frame.
    Watch {
        from_revision: u64,
        timeout_ms: u64,
    },
    /// A linearizable read of one page of the view: topics after `after`
    /// (from the first when `None`). With `revision`, answered only if the
    /// view is still at that revision (else `ViewMoved`), so the pages of
    /// one read belong to one view (leader only).
    ReadPage {
        after: Option<String>,
        revision: Option<u64>,
    },
    /// One page of the applied view, from any node, for a watcher that must
    /// catch up: pages may come from successive revisions, so the watcher
    /// continues with deltas from the first page's revision.
    WatchPage {
        after: Option<String>,
    },
    /// Long-poll: what changed after `from_revision` (`Delta`) once the view
    /// moves past it, or an empty delta after `timeout_ms`; `TooFarBehind`
    /// when the change is not known or too large for a frame (read pages).
    /// Served by any node from its applied state.
    WatchDelta {
        from_revision: u64,
        timeout_ms: u64,
    },
    /// This node's Raft role, served by any node.
    Status,
}

/// One node's view of the Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    /// Leader, Follower, Candidate or Learner.
    pub role: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub revision: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// A write was committed and applied.
    Applied(Applied),
    /// A write was committed but the state machine refused it (nothing changed).
    Rejected(CommandError),
    /// A heartbeat was taken.
    Ok,
    View(ClusterView),
    Page(ViewPage),
    Delta(ViewDelta),
    /// The view is at `revision` and the watcher must read it in pages.
    TooFarBehind {
        revision: u64,
    },
    /// A `ReadPage` for another revision: the view moved on, start again.
    ViewMoved {
        revision: u64,
    },
    Status(NodeStatus),
    /// Ask the leader instead: `(node id, address)` when known.
    NotLeader {
        leader_hint: Option<(NodeId, String)>,
    },
    /// The broker's session is gone: register again.
    UnknownBroker {
        broker_id: BrokerId,
    },
    /// The shared secret is missing or wrong.
    Unauthenticated,
    /// The frame did not decode, or the request is not allowed.
    BadRequest {
        message: String,
    },
    /// No quorum, shutting down, or another transient failure: retry.
    Unavailable {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Reads one frame's body; `None` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    // Grown as bytes arrive: a peer that announces 16 MiB and sends nothing
    // costs nothing.
    let mut body = Vec::new();
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some(body))
}

/// `value` as the bytes of one JSON frame, length included.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; 4];
    serde_json::to_writer(&mut frame, value)?;
    let body_len = frame.len() - 4;
    if body_len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(body_len));
    }
    frame[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(frame)
}

/// Writes `value` as one JSON frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> Result<(), FrameError> {
    let frame = encode_frame(value)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Sends one request and reads its response on an open connection.
pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    frame: &RequestFrame,
) -> Result<Response, FrameError> {
    call_encoded(stream, &encode_frame(frame)?).await
}

/// Like `call`, with the request already encoded by `encode_frame`.
pub async fn call_encoded<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    frame: &[u8],
) -> Result<Response, FrameError> {
    stream.write_all(frame).await?;
    stream.flush().await?;
    match read_frame(stream).await? {
        Some(body) => Ok(serde_json::from_slice(&body)?),
        None => Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Compares secrets in time independent of where they differ.
pub fn secret_matches(expected: &str, given: Option<&str>) -> bool {
    let Some(given) = given else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0 && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(secret_matches("s3cret", Some("s3cret")));
        assert!(!secret_matches("s3cret", Some("s3cre")));
        assert!(!secret_matches("s3cret", Some("s3cret!")));
        assert!(!secret_matches("s3cret", None));
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &Request::Read).await.unwrap();
        let body = read_frame(&mut b).await.unwrap().unwrap();
        assert!(matches!(
            serde_json::from_slice(&body).unwrap(),
            Request::Read
        ));
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_frame(&mut b).await,
            Err(FrameError::TooLarge(_))
        ));
        drop(a);
        assert!(read_frame(&mut b).await.unwrap().is_none());
    }
}
