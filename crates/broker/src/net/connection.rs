//! One client connection, on the shard that accepted it: a pipeline whose
//! reader decodes frame after frame and starts a task per request at once,
//! while the writer sends the answers strictly in request order (the
//! protocol requires it).
//!
//! Bounds: at most `max.inflight.requests.per.connection` requests in
//! flight; at most `connection.inflight.max.bytes` held in requests and
//! unsent answers (the reader stops reading past it: `broker::budget`); a
//! connection with nothing read, written or in process for
//! `connections.max.idle.ms` is closed, and so is one whose started frame
//! does not arrive whole within `socket.request.read.timeout.ms`. A bad
//! frame closes that one connection and nothing else.
use crate::broker::budget::{ConnectionBudget, Hold, ShardBudget};
use crate::broker::{handle_frame, RequestError};
use crate::security::Session;
use crate::shard::Shard;
use bytes::BytesMut;
use futures::future::{select, Either};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use futures::AsyncWrite;
use futures::FutureExt;
use glommio::channels::local_channel;
use glommio::task::JoinHandle;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use thiserror::Error;
use wire::frame::{read_frame, Frame, FrameError, WritesOnly};

/// Socket read buffer: small frames arrive several per read call.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Answers go to the socket in writes of at most this much, so that a
/// client reading slowly still counts as active between them.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Why the reader stopped reading.
#[derive(Debug, Error)]
enum Closing {
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("a frame did not arrive whole within {0:?}")]
    SlowFrame(Duration),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// An answer, with the bytes it holds on the connection until it is sent.
type Answer = (Result<Option<Frame>, RequestError>, Hold);

/// When the connection last moved, and how many requests are in process.
#[derive(Debug)]
struct Activity {
    last: Cell<Instant>,
    handling: Cell<usize>,
}

impl Activity {
    fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// Whether nothing moved for `idle` and no request is in process.
    fn idle_for(&self, idle: Duration) -> bool {
        self.handling.get() == 0 && self.last.get().elapsed() >= idle
    }
}

/// A connection's byte stream: TCP, or TLS over TCP (`tls::TlsConnection`).
pub trait Stream: WritesOnly + AsyncWrite + Unpin + 'static {}
impl<S: WritesOnly + AsyncWrite + Unpin + 'static> Stream for S {}

/// Serves one connection until the client closes it, a limit closes it,
/// or a request must close it.
pub async fn serve_connection<S: Stream>(
    shard: Rc<Shard>,
    stream: S,
    peer: String,
    session: Rc<Session>,
    shard_budget: Rc<ShardBudget>,
) {
    let settings = shard.config.connection_settings();
    let budget = ConnectionBudget::new(settings.connection_inflight_max_bytes, shard_budget);
    let activity = Rc::new(Activity {
        last: Cell::new(Instant::now()),
        handling: Cell::new(0),
    });
    let (read_half, write_half) = stream.split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    let depth = shard.config.max_inflight_per_connection;
    let (queue, answers) = local_channel::new_bounded::<JoinHandle<Answer>>(depth);
    let writer = write_answers(answers, write_half, peer.clone(), activity.clone());
    let mut writer = glommio::spawn_local(writer).fuse();
    let timeouts = Timeouts {
        idle: Duration::from_millis(settings.idle_ms),
        frame: Duration::from_millis(settings.frame_timeout_ms),
        max_frame_bytes: shard.config.socket_request_max_bytes,
    };
    loop {
        let next = read_request(&mut reader, &budget, &activity, &timeouts);
        let frame = match select(Box::pin(next), &mut writer).await {
            Either::Left((Ok(Some(frame)), _)) => frame,
            Either::Left((Ok(None), _)) => break,
            Either::Left((Err(e), _)) => {
                // Whatever the writer still holds is dropped with it: a
                // client that stopped reading cannot keep it open.
                tracing::debug!(%peer, error = %e, "closing connection");
                return;
            }
            // The writer ended (socket error or a request that must close the
            // connection): stop reading too.
            Either::Right(_) => return,
        };
        if session_expired(&session, &frame) {
            tracing::info!(%peer, principal = %session.principal, "SASL session expired without re-authentication; closing the connection");
            break;
        }
        let task = start_request(&shard, frame, &session, &budget, &activity);
        if queue.send(task).await.is_err() {
            return;
        }
    }
    drop(queue);
    finish_writing(writer, &activity, timeouts.idle).await;
}

/// Whether the connection's SASL session has expired and `frame` is not
/// part of re-authenticating (KIP-368: Kafka then closes the connection).
fn session_expired(session: &Session, frame: &[u8]) -> bool {
    const SASL_HANDSHAKE: i16 = 17;
    const SASL_AUTHENTICATE: i16 = 36;
    let Some(sasl) = &session.sasl else {
        return false;
    };
    let api_key = match frame {
        [a, b, ..] => i16::from_be_bytes([*a, *b]),
        _ => -1,
    };
    sasl.expired(Instant::now()) && !matches!(api_key, SASL_HANDSHAKE | SASL_AUTHENTICATE)
}

/// Lets the writer send the answers still due after the client stopped
/// sending, unless it stops reading them for `idle`.
async fn finish_writing(
    mut writer: impl std::future::Future<Output = ()> + Unpin,
    activity: &Activity,
    idle: Duration,
) {
    loop {
        let left = idle.saturating_sub(activity.last.get().elapsed());
        let tick = glommio::timer::sleep(left.max(Duration::from_millis(1)));
        match select(&mut writer, Box::pin(tick)).await {
            Either::Left(_) => return,
            Either::Right(_) if activity.idle_for(idle) => return,
            Either::Right(_) => {
                if activity.handling.get() > 0 {
                    // A request in process is activity.
                    activity.touch();
                }
            }
        }
    }
}

/// The deadlines of the reader.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    idle: Duration,
    frame: Duration,
    max_frame_bytes: u32,
}

/// Starts the handler of one request; the request's bytes are held until it
/// is done, then its answer's bytes until the writer has sent them.
fn start_request(
    shard: &Rc<Shard>,
    frame: BytesMut,
    session: &Rc<Session>,
    budget: &Rc<ConnectionBudget>,
    activity: &Rc<Activity>,
) -> JoinHandle<Answer> {
    let request_hold = budget.hold(frame.len());
    activity.handling.set(activity.handling.get() + 1);
    let (shard, session, budget, activity) = (
        shard.clone(),
        session.clone(),
        budget.clone(),
        activity.clone(),
    );
    glommio::spawn_local(async move {
        let answer = handle_frame(shard, frame, session, budget.clone()).await;
        drop(request_hold);
        activity.handling.set(activity.handling.get() - 1);
        activity.touch();
        let answer_bytes = match &answer {
            Ok(Some(frame)) => frame.len(),
            _ => 0,
        };
        let hold = budget.hold(answer_bytes);
        (answer, hold)
    })
    .detach()
}

/// Waits (within the budget and the idle deadline) for the next frame to
/// start, then reads it whole within the frame deadline. `Ok(None)` at a
/// clean end of stream.
async fn read_request<S: Stream>(
    reader: &mut BufReader<ReadHalf<S>>,
    budget: &ConnectionBudget,
    activity: &Activity,
    timeouts: &Timeouts,
) -> Result<Option<BytesMut>, Closing> {
    if !wait_for_frame_start(reader, budget, activity, timeouts.idle).await? {
        return Ok(None);
    }
    activity.touch();
    if frame_is_buffered(reader.buffer()) {
        // No deadline needed (and no timer made) for what is already here.
        return Ok(read_frame(reader, timeouts.max_frame_bytes).await?);
    }
    let frame = read_frame(reader, timeouts.max_frame_bytes);
    let deadline = glommio::timer::sleep(timeouts.frame);
    match select(Box::pin(frame), Box::pin(deadline)).await {
        Either::Left((frame, _)) => {
            activity.touch();
            Ok(frame?)
        }
        Either::Right(_) => Err(Closing::SlowFrame(timeouts.frame)),
    }
}

/// Whether `buffered` holds a whole frame (its length prefix and body).
fn frame_is_buffered(buffered: &[u8]) -> bool {
    let Some(prefix) = buffered.get(..4) else {
        return false;
    };
    let claimed = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    claimed >= 0 && buffered.len() - 4 >= claimed as usize
}

/// Waits until the budget lets the reader read and a byte has arrived
/// (true) or the stream ended (false), closing on the idle deadline.
async fn wait_for_frame_start<S: Stream>(
    reader: &mut BufReader<ReadHalf<S>>,
    budget: &ConnectionBudget,
    activity: &Activity,
    idle: Duration,
) -> Result<bool, Closing> {
    if !reader.buffer().is_empty() && budget.may_read() {
        return Ok(true);
    }
    loop {
        let ready = async {
            budget.wait_until_readable().await;
            reader.fill_buf().await.map(|b| !b.is_empty())
        };
        let left = idle.saturating_sub(activity.last.get().elapsed());
        let tick = glommio::timer::sleep(left.max(Duration::from_millis(1)));
        match select(Box::pin(ready), Box::pin(tick)).await {
            Either::Left((arrived, _)) => return Ok(arrived.map_err(FrameError::Io)?),
            Either::Right(_) if activity.idle_for(idle) => return Err(Closing::Idle(idle)),
            // Activity meanwhile (an answer written), or a request in
            // process, which counts as activity.
            Either::Right(_) => {
                if activity.handling.get() > 0 {
                    activity.touch();
                }
            }
        }
    }
}

/// Sends the answers in request order until the queue ends or a request
/// asks to close the connection. A frame's parts are written one after
/// another (the socket has no vectored write): Fetch's record sets go out
/// from the buffers they were read into.
async fn write_answers<S: Stream>(
    answers: local_channel::LocalReceiver<JoinHandle<Answer>>,
    mut socket: WriteHalf<S>,
    peer: String,
    activity: Rc<Activity>,
) {
    while let Some(task) = answers.recv().await {
        match task.await {
            Some((Ok(Some(frame)), hold)) => {
                let sent = write_frame(&mut socket, &frame, &activity).await;
                drop(hold);
                if sent.is_err() {
                    break;
                }
            }
            Some((Ok(None), _)) => {}
            Some((Err(e), _)) => {
                tracing::debug!(%peer, error = %e, "closing connection");
                break;
            }
            None => break,
        }
    }
    let _ = socket.close().await;
}

async fn write_frame<S: Stream>(
    socket: &mut WriteHalf<S>,
    frame: &Frame,
    activity: &Activity,
) -> std::io::Result<()> {
    for part in &frame.parts {
        for chunk in part.chunks(WRITE_CHUNK_BYTES) {
            socket.write_all(chunk).await?;
            activity.touch();
        }
    }
    // TLS keeps the last records of a frame in its buffer until flushed.
    socket.flush().await
}
