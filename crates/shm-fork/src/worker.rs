//! Workers: forked processes that serve requests over a request/response pair
//! ([`shm_channel::rpc`]): [`Worker::call`] is the pair's [`Client::call`](rpc::Client::call),
//! the worker's loop its server's.
//!
//! ```
//! let mut worker = shm_ipc::fork::spawn_worker(|n: u64| n * n)?;
//! assert_eq!(worker.call(7)?, 49);
//! assert!(worker.shutdown()?.success());
//!
//! let mut pool = shm_ipc::fork::spawn_pool(2, |s: String| s.len())?;
//! let lengths = pool.map(["a", "bb", "ccc"].map(String::from))?;
//! assert_eq!(lengths, [1, 2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use shm_channel::codec::Codec;
use shm_channel::rpc::{self, RpcError};
use shm_channel::typed::{self, DefaultCodec};
use shm_channel::{ChannelError, CodecError, TrySendError};

use crate::child::{Child, ExitStatus, FAILED_EXIT_CODE, PANIC_EXIT_CODE};
use crate::fork::{payload_text, ChildOptions, ForkError};
use crate::report::{Outcome, Report};

/// Default ring capacity of each direction of a worker's channels, in bytes: room for many
/// small messages in flight, small enough that a pool of workers stays cheap.
pub const DEFAULT_WORKER_CAPACITY: usize = 1 << 16;

/// How long a worker whose channel broke is given to finish exiting before it is killed:
/// it has already dropped (or lost) its endpoints, so it is only unwinding and `_exit`ing.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Why a worker could not be started or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A pool of zero workers was asked for.
    #[error("a worker pool needs at least one worker")]
    NoWorkers,
    /// The channels could not be created.
    #[error("cannot create the worker's channels: {0}")]
    Channel(#[from] ChannelError),
    /// The worker process could not be forked.
    #[error("cannot fork the worker: {0}")]
    Fork(#[from] ForkError),
    /// The request could not be sent (too large for the ring, or not encodable).
    #[error("cannot send the request: {0}")]
    Send(typed::SendError<()>),
    /// The response could not be received (not decodable, or the ring is corrupt).
    #[error("cannot receive the response: {0}")]
    Receive(typed::RecvError),
    /// The worker process is gone: it panicked in the handler, crashed or was killed.
    #[error("worker {pid} {status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Died {
        /// The worker's pid.
        pid: i32,
        /// How it ended.
        status: ExitStatus,
        /// Its panic message or error, if it recorded one.
        message: Option<String>,
    },
}

/// Options for [`spawn_worker`] and [`spawn_pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    capacity: usize,
    child: ChildOptions,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions::new()
    }
}

impl WorkerOptions {
    /// [`DEFAULT_WORKER_CAPACITY`] per direction, default [`ChildOptions`].
    pub fn new() -> WorkerOptions {
        WorkerOptions {
            capacity: DEFAULT_WORKER_CAPACITY,
            child: ChildOptions::new(),
        }
    }

    /// The ring capacity of each direction, in bytes (bounds the largest message).
    pub fn capacity(mut self, bytes: usize) -> WorkerOptions {
        self.capacity = bytes;
        self
    }

    /// How the worker processes are forked (on-drop behaviour, parent-death signal).
    pub fn child_options(mut self, options: ChildOptions) -> WorkerOptions {
        self.child = options;
        self
    }

    /// Forks one worker running `handler` for every request; see [`spawn_worker`].
    pub fn spawn<Req, Resp, F>(&self, handler: F) -> Result<Worker<Req, Resp>, WorkerError>
    where
        DefaultCodec: Codec<Req> + Codec<Resp>,
        F: FnMut(Req) -> Resp,
    {
        let (client, server) = rpc::pair::<Req, Resp>(self.capacity)?;
        let child = self
            .child
            .checked_fork(server, |server, report| serve(server, handler, report))?;
        Ok(Worker { client, child })
    }

    /// Forks `workers` workers, each running its own clone of `handler`; see [`spawn_pool`].
    pub fn spawn_pool<Req, Resp, F>(
        &self,
        workers: usize,
        handler: F,
    ) -> Result<WorkerPool<Req, Resp>, WorkerError>
    where
        DefaultCodec: Codec<Req> + Codec<Resp>,
        F: FnMut(Req) -> Resp + Clone,
    {
        if workers == 0 {
            return Err(WorkerError::NoWorkers);
        }
        let workers = (0..workers)
            .map(|_| self.spawn(handler.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WorkerPool { workers, next: 0 })
    }
}

/// Forks a worker process that answers each request with `handler(request)`, in order.
///
/// Requests and responses travel through a request/response pair ([`rpc::pair`], default
/// codec) of [`DEFAULT_WORKER_CAPACITY`] bytes each way. The worker exits (code 0) when the [`Worker`]
/// handle's request channel is dropped; dropping the handle kills it.
pub fn spawn_worker<Req, Resp, F>(handler: F) -> Result<Worker<Req, Resp>, WorkerError>
where
    DefaultCodec: Codec<Req> + Codec<Resp>,
    F: FnMut(Req) -> Resp,
{
    WorkerOptions::new().spawn(handler)
}

/// Forks a pool of `workers` worker processes, each running a clone of `handler`.
/// `workers == 0` is [`WorkerError::NoWorkers`].
pub fn spawn_pool<Req, Resp, F>(
    workers: usize,
    handler: F,
) -> Result<WorkerPool<Req, Resp>, WorkerError>
where
    DefaultCodec: Codec<Req> + Codec<Resp>,
    F: FnMut(Req) -> Resp + Clone,
{
    WorkerOptions::new().spawn_pool(workers, handler)
}

/// The worker's loop, in the child: the pair's server, with each request's handler call
/// guarded (a panic is recorded for the parent before the endpoints drop).
fn serve<Req, Resp>(
    mut server: rpc::Server<Req, Resp>,
    mut handler: impl FnMut(Req) -> Resp,
    report: &Report,
) -> i32
where
    DefaultCodec: Codec<Req> + Codec<Resp>,
{
    loop {
        let (id, request) = match server.recv() {
            Ok(next) => next,
            // The parent dropped its client: a clean shutdown.
            Err(RpcError::Disconnected) => return 0,
            Err(err) => {
                report.record(Outcome::Failed, &format!("receiving a request: {err}"));
                return FAILED_EXIT_CODE;
            }
        };
        let response = match panic::catch_unwind(AssertUnwindSafe(|| handler(request))) {
            Ok(response) => response,
            Err(payload) => {
                // Recorded before the endpoints drop, so the parent finds it as soon as it
                // sees the channel close.
                report.record(Outcome::Panicked, payload_text(&*payload));
                std::mem::forget(payload);
                return PANIC_EXIT_CODE;
            }
        };
        match server.reply(id, response) {
            Ok(()) => {}
            Err(RpcError::Disconnected) => return 0,
            Err(err) => {
                report.record(Outcome::Failed, &format!("sending a response: {err}"));
                return FAILED_EXIT_CODE;
            }
        }
    }
}

/// A worker process and the parent's end of its request/response pair. Dropping it kills
/// the worker; [`shutdown`](Worker::shutdown) lets it finish.
#[derive(Debug)]
pub struct Worker<Req, Resp> {
    client: rpc::Client<Req, Resp>,
    child: Child,
}

impl<Req, Resp> Worker<Req, Resp>
where
    DefaultCodec: Codec<Req> + Codec<Resp>,
{
    /// Sends `request` and waits for the worker's response.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Died`] if the worker is gone (a panic in the handler, a crash, a
    /// kill), with how it ended; [`WorkerError::Send`] / [`WorkerError::Receive`] if a
    /// message could not be encoded, decoded or fit in the ring.
    pub fn call(&mut self, request: Req) -> Result<Resp, WorkerError> {
        if self.child.status().is_some() {
            return Err(self.died());
        }
        self.client.call(request).map_err(|err| self.failed(err))
    }

    /// Sends `request` without waiting for its response (see [`WorkerPool::map`]).
    fn send(&mut self, request: Req) -> Result<(), WorkerError> {
        if self.child.status().is_some() {
            return Err(self.died());
        }
        self.client
            .send(request)
            .map(drop)
            .map_err(|err| self.failed(err))
    }

    /// The next response (the worker answers in order).
    fn receive(&mut self) -> Result<Resp, WorkerError> {
        match self.client.recv() {
            Ok((_, response)) => Ok(response),
            Err(err) => Err(self.failed(err)),
        }
    }

    /// The error of a failed call: a gone worker is reaped and says how it ended.
    fn failed(&mut self, err: RpcError) -> WorkerError {
        match err {
            RpcError::Disconnected | RpcError::PeerDied => self.died(),
            RpcError::Send(err) => WorkerError::Send(err),
            RpcError::Recv(err) => WorkerError::Receive(err),
            other => WorkerError::Receive(typed::RecvError::Decode(CodecError::Decode(
                other.to_string(),
            ))),
        }
    }

    /// The worker's channel broke: reap it and say how it ended.
    fn died(&mut self) -> WorkerError {
        let pid = self.child.pid();
        let status = match self.child.wait_timeout(EXIT_GRACE) {
            Ok(Some(status)) => status,
            _ => {
                self.child.kill_and_reap();
                self.child
                    .status()
                    .unwrap_or(ExitStatus::Signaled(libc::SIGKILL))
            }
        };
        WorkerError::Died {
            pid,
            status,
            message: self.child.failure_message(),
        }
    }

    /// The worker process.
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// The worker's pid.
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Closes the request channel, lets the worker answer what it has and exit, and
    /// returns how it ended (`Exited(0)` for a clean shutdown). Blocks until it exits.
    pub fn shutdown(self) -> Result<ExitStatus, WorkerError> {
        let Worker { client, mut child } = self;
        drop(client);
        child.wait().map_err(|err| WorkerError::Died {
            pid: child.pid(),
            status: ExitStatus::Signaled(libc::SIGKILL),
            message: Some(err.to_string()),
        })
    }
}

/// A pool of workers; requests go round-robin.
#[derive(Debug)]
pub struct WorkerPool<Req, Resp> {
    workers: Vec<Worker<Req, Resp>>,
    /// The worker the next [`call`](WorkerPool::call) goes to.
    next: usize,
}

impl<Req, Resp> WorkerPool<Req, Resp>
where
    DefaultCodec: Codec<Req> + Codec<Resp>,
{
    /// The number of workers (never 0).
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always `false`: a pool has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The workers.
    pub fn workers(&self) -> &[Worker<Req, Resp>] {
        &self.workers
    }

    /// Sends `request` to the next worker (round-robin) and waits for its response.
    pub fn call(&mut self, request: Req) -> Result<Resp, WorkerError> {
        let index = self.next;
        self.next = (self.next + 1) % self.workers.len();
        self.workers[index].call(request)
    }

    /// Answers every request, spread round-robin over the workers with many in flight at
    /// once, and returns the responses in the order of the requests. The first error stops
    /// it.
    pub fn map(
        &mut self,
        requests: impl IntoIterator<Item = Req>,
    ) -> Result<Vec<Resp>, WorkerError> {
        let count = self.workers.len();
        // Workers with a request in flight, oldest first: since each worker answers in
        // order, the oldest request's answer is the next one its worker sends.
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let mut responses = Vec::new();
        for request in requests {
            let index = self.next;
            self.next = (self.next + 1) % count;
            let mut request = request;
            loop {
                let back = match self.workers[index].client.try_send(request) {
                    Ok(_) => {
                        in_flight.push_back(index);
                        break;
                    }
                    Err(TrySendError::Full(full)) => full,
                    Err(TrySendError::Send(err)) => return Err(self.workers[index].failed(err)),
                };
                request = back;
                match in_flight.pop_front() {
                    // Collect the oldest answer: its worker can always make progress (every
                    // older answer has been taken), and that frees rings.
                    Some(oldest) => responses.push(self.workers[oldest].receive()?),
                    // Nothing in flight: the worker drains its ring on its own.
                    None => {
                        self.workers[index].send(request)?;
                        in_flight.push_back(index);
                        break;
                    }
                }
            }
        }
        while let Some(oldest) = in_flight.pop_front() {
            responses.push(self.workers[oldest].receive()?);
        }
        Ok(responses)
    }

    /// Shuts every worker down (see [`Worker::shutdown`]) and returns how each ended.
    pub fn shutdown(self) -> Result<Vec<ExitStatus>, WorkerError> {
        self.workers.into_iter().map(Worker::shutdown).collect()
    }
}
