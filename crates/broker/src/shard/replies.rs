//! Answers of cross-shard jobs, delivered without foreign wakers; one router
//! per shard, owned by that shard's `Shard` and used on its thread only.
//!
//! glommio 0.9 has a race when a thread other than a task's own drops the
//! task's last waker: it decrements the count to zero and then takes a new
//! reference to hand the waker home, and if the owner drops the task's
//! `JoinHandle` in between, the task is freed twice (a `free(): double free`
//! abort, seen about once in five 15-second runs of 10,000 one-record
//! produce requests per second across shards). A request task that awaited a
//! oneshot completed by another shard was exactly that: it completes right
//! after the answer, and its connection drops its handle.
//!
//! So answers travel over one channel per shard to a pump task that lives as
//! long as the shard and whose `JoinHandle` is kept (a task with a handle and
//! that never completes cannot be freed or closed by that race), and the pump
//! hands each answer to its waiting task through a oneshot used on this
//! thread only: request tasks never give a waker to another thread.
//!
//! Whoever registers a call is handed the router by its shard: the shard's
//! own `run_on`, and the shard's `AgentHandle` (replication/agent.rs), built
//! with an `Rc` of the router when the shard is set up (server.rs). Nothing
//! finds it through the thread it runs on.
use futures::channel::oneshot;
use glommio::Task;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;

/// Sends into a bounded channel that another thread reads, without giving
/// that thread this task's waker (see above): when the channel is full, the
/// task sleeps a little on its own timer and tries again. Fails when the
/// receiver is gone.
pub async fn send_to_thread<T>(sender: &flume::Sender<T>, mut value: T) -> Result<(), T> {
    const RETRY_AFTER: std::time::Duration = std::time::Duration::from_micros(200);
    loop {
        match sender.try_send(value) {
            Ok(()) => return Ok(()),
            Err(flume::TrySendError::Full(back)) => {
                value = back;
                glommio::timer::sleep(RETRY_AFTER).await;
            }
            Err(flume::TrySendError::Disconnected(back)) => return Err(back),
        }
    }
}

/// An answer on its way home: the waiting call's id and the value, or
/// `None` when the job was dropped without answering (its shard stopped).
type Reply = (u64, Option<AnyAnswer>);
type AnyAnswer = Box<dyn Any + Send>;

/// One shard's router of answers (see the module comment).
pub struct ReplyRouter {
    next_id: Cell<u64>,
    waiting: RefCell<HashMap<u64, oneshot::Sender<Option<AnyAnswer>>>>,
    sender: flume::Sender<Reply>,
    receiver: RefCell<Option<flume::Receiver<Reply>>>,
    /// Held, never detached: see the module comment.
    pump: RefCell<Option<Task<()>>>,
}

impl Default for ReplyRouter {
    fn default() -> Self {
        let (sender, receiver) = flume::unbounded();
        ReplyRouter {
            next_id: Cell::new(0),
            waiting: RefCell::new(HashMap::new()),
            sender,
            receiver: RefCell::new(Some(receiver)),
            pump: RefCell::new(None),
        }
    }
}

impl ReplyRouter {
    /// Starts the pump on the current executor (once, at shard start).
    pub fn start(self: &Rc<Self>) {
        let Some(receiver) = self.receiver.borrow_mut().take() else {
            return;
        };
        let router = self.clone();
        let pump = glommio::spawn_local(async move {
            while let Ok((id, value)) = receiver.recv_async().await {
                router.deliver(id, value);
            }
        });
        *self.pump.borrow_mut() = Some(pump);
    }

    fn deliver(&self, id: u64, value: Option<AnyAnswer>) {
        if let Some(waiter) = self.waiting.borrow_mut().remove(&id) {
            let _ = waiter.send(value);
        }
    }

    /// A new call: the `ReplyTo` travels with the job to whoever answers,
    /// on any thread; the `PendingReply` stays on this shard and resolves to
    /// the answer.
    pub fn register<T: Send + 'static>(self: &Rc<Self>) -> (ReplyTo<T>, PendingReply<T>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(id, tx);
        let reply_to = ReplyTo {
            id,
            sender: Some(self.sender.clone()),
            value: PhantomData,
        };
        let pending = PendingReply {
            id,
            router: self.clone(),
            answer: rx,
            value: PhantomData,
        };
        (reply_to, pending)
    }
}

/// Where a job sends its answer; dropped unanswered, it reports that.
pub struct ReplyTo<T> {
    id: u64,
    sender: Option<flume::Sender<Reply>>,
    value: PhantomData<fn(T)>,
}

impl<T: Send + 'static> ReplyTo<T> {
    pub fn send(mut self, value: T) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send((self.id, Some(Box::new(value))));
        }
    }
}

impl<T> Drop for ReplyTo<T> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send((self.id, None));
        }
    }
}

/// The answer of one call, awaited on the calling shard.
pub struct PendingReply<T> {
    id: u64,
    router: Rc<ReplyRouter>,
    answer: oneshot::Receiver<Option<AnyAnswer>>,
    value: PhantomData<T>,
}

impl<T: 'static> PendingReply<T> {
    /// The answer, or `None` if the job was dropped unanswered.
    pub async fn answer(mut self) -> Option<T> {
        let value = (&mut self.answer).await.ok()??;
        value.downcast::<T>().ok().map(|b| *b)
    }
}

impl<T> Drop for PendingReply<T> {
    fn drop(&mut self) {
        self.router.waiting.borrow_mut().remove(&self.id);
    }
}
