//! The Kafka listener of one shard and its connections.
//!
//! Every shard binds the same port (glommio sets SO_REUSEPORT), so the kernel
//! spreads connections over shards; a connection then lives on the shard
//! that accepted it. Each connection is a pipeline: the reader decodes frame
//! after frame and starts a task per request at once, while the writer sends
//! the answers strictly in request order (the protocol requires it). At most
//! `max.inflight.requests.per.connection` requests are in flight; a bad frame
//! closes that one connection and nothing else.
use crate::broker::{handle_frame, RequestError};
use crate::protocol::frame::{read_frame, Frame};
use crate::shard::Shard;
use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use futures::FutureExt;
use glommio::channels::local_channel;
use glommio::net::{TcpListener, TcpStream};
use glommio::task::JoinHandle;
use std::rc::Rc;
use std::time::Duration;

/// Socket read buffer: small frames arrive several per read call.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts connections until the shard stops.
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    while !shard.is_stopping() {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve_connection(shard.clone(), stream)).detach();
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

type Response = Result<Option<Frame>, RequestError>;

async fn serve_connection(shard: Rc<Shard>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let client_host: Rc<str> = Rc::from(format!(
        "/{}",
        peer.rsplit_once(':').map_or(peer.as_str(), |(h, _)| h)
    ));
    let (read_half, write_half) = stream.split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    let depth = shard.config.max_inflight_per_connection;
    let (queue, responses) = local_channel::new_bounded::<JoinHandle<Response>>(depth);
    let writer = glommio::spawn_local(write_responses(responses, write_half, peer.clone()));
    let mut writer = writer.fuse();
    let max_frame = shard.config.socket_request_max_bytes;
    loop {
        let next = select(Box::pin(read_frame(&mut reader, max_frame)), &mut writer).await;
        let frame = match next {
            Either::Left((Ok(Some(frame)), _)) => frame,
            Either::Left((Ok(None), _)) => break,
            Either::Left((Err(e), _)) => {
                tracing::debug!(%peer, error = %e, "closing connection on a bad frame");
                break;
            }
            // The writer ended (socket error or a request that must close the
            // connection): stop reading too.
            Either::Right(_) => return,
        };
        let task =
            glommio::spawn_local(handle_frame(shard.clone(), frame, client_host.clone())).detach();
        if queue.send(task).await.is_err() {
            return;
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// Sends the answers in request order until the queue ends or a request
/// asks to close the connection. A frame's parts are written one after
/// another (the socket has no vectored write): Fetch's record sets go out
/// from the buffers they were read into.
async fn write_responses(
    responses: local_channel::LocalReceiver<JoinHandle<Response>>,
    mut socket: futures::io::WriteHalf<TcpStream>,
    peer: String,
) {
    'answers: while let Some(task) = responses.recv().await {
        match task.await {
            Some(Ok(Some(frame))) => {
                for part in &frame.parts {
                    if socket.write_all(part).await.is_err() {
                        break 'answers;
                    }
                }
            }
            Some(Ok(None)) => {}
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "closing connection");
                break;
            }
            None => break,
        }
    }
    let _ = socket.close().await;
}
