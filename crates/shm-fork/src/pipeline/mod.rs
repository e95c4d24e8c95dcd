//! Pipelines: a source, N stages and a sink, each stage in its own process, connected by
//! shared-memory channels that move items in batches.
//!
//! The source and every stage are forked when the pipeline starts; the sink runs in the
//! calling process and gets the results in order. The first failure of any process — a
//! stage's `Err`, a panic, a crash — stops the whole pipeline, and is reported naming the
//! stage. Dropping a running pipeline kills all its processes.
//!
//! ```
//! use shm_ipc::fork::Pipeline;
//!
//! let squares_as_text: Vec<String> = Pipeline::source(|| 1..=4u64)
//!     .stage("square", |n| n * n)
//!     .stage("format", |n| format!("<{n}>"))
//!     .collect()?;
//! assert_eq!(squares_as_text, ["<1>", "<4>", "<9>", "<16>"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Batches
//!
//! Items travel in batches, never one frame per item: the source sends its items a frame
//! at a time (up to an eighth of the ring); a stage takes every frame its input holds
//! ([`bulk::Receiver::drain_into`]), applies its function to the whole batch, and publishes
//! the results once. A pipeline is torn down as a whole when any process fails, so a batch
//! taken but not passed on is never redelivered: there is nothing to redeliver it to.
//!
//! # Items: plain data or serde
//!
//! [`Pipeline::source`] carries items with the default serde codec (bincode), so any
//! `Serialize + DeserializeOwned` type goes. [`Pipeline::source_pod`] carries `bytemuck::Pod`
//! items without any codec: each batch is copied as it is. The choice holds for every
//! channel of the pipeline (each stage's output must then be `Pod` too);
//! [`Pipeline::source_with`] names another [`BatchCodec`] (postcard, say).
//!
//! ```
//! use shm_ipc::fork::Pipeline;
//!
//! // Plain data: no codec on any channel; a batch stage filters.
//! let kept: Vec<u32> = Pipeline::source_pod(|| 0..1000u64)
//!     .stage("square", |n| n * n)
//!     .stage_batch("even", |batch: &[u64], out: &mut Vec<u32>| {
//!         out.extend(batch.iter().filter(|n| *n % 2 == 0).map(|n| *n as u32))
//!     })
//!     .collect()?;
//! assert_eq!(kept.len(), 500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Waiting
//!
//! By default every process waits as [`WaitStrategy::for_processes`] says for the
//! pipeline's process count (source, stages and the sink): the adaptive spin-then-park
//! up to two processes a core plus one (its spin is short and mostly yields); when they
//! outnumber the cores by more, never spin (a spinning stage takes the core of one that
//! has work): sleep at once and be woken in batches ([`WaitStrategy::Batched`]: once a
//! quarter of the ring is filled, or freed), so a stage costs its neighbours one wake-up
//! per batch, not per frame.

use std::fmt::{self, Display};

use shm_channel::bulk;
use shm_channel::codec::{BatchCodec, Plain};
use shm_channel::spsc::Spsc;
use shm_channel::typed::DefaultCodec;
use shm_channel::{typed, Builder, ChannelError};
use shm_core::notify::{Handshake, WaitStrategy};

use crate::child::{Child, ExitStatus};
use crate::fork::{ChildOptions, ForkError};

mod process;
mod running;

pub use running::RunningPipeline;

/// Default ring capacity of each channel between two processes of a pipeline, in bytes.
pub const DEFAULT_PIPELINE_CAPACITY: usize = 1 << 18;

/// What went wrong in one process of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageFailure {
    /// The stage's function returned this error (or the process could not use its
    /// channels: an item too large for the ring, say).
    Error(String),
    /// The stage's function (or the source's iterator) panicked with this message.
    Panicked(String),
    /// The process died: a signal (a crash, a kill) or an unexpected exit code.
    Died(ExitStatus),
    /// The process did not exit after the pipeline ended, and was killed.
    Hung,
}

impl Display for StageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageFailure::Error(message) => write!(f, "failed: {message}"),
            StageFailure::Panicked(message) => write!(f, "panicked: {message}"),
            StageFailure::Died(status) => write!(f, "died: {status}"),
            StageFailure::Hung => f.write_str("did not exit after the pipeline ended"),
        }
    }
}

/// Why a pipeline could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline has a source but no stage.
    #[error("a pipeline needs at least one stage")]
    NoStages,
    /// A channel between two processes could not be created.
    #[error("cannot create a pipeline channel: {0}")]
    Channel(#[from] ChannelError),
    /// A process could not be forked.
    #[error("cannot fork a pipeline process: {0}")]
    Fork(#[from] ForkError),
    /// A process of the pipeline failed; the others were stopped.
    #[error("pipeline stage {index} (`{name}`) {failure}")]
    Stage {
        /// 0 for the source, 1 for the first stage, ...
        index: usize,
        /// The stage's name (`"source"` for the source).
        name: String,
        /// What went wrong.
        failure: StageFailure,
    },
    /// The calling process could not receive the last stage's output (decode error,
    /// corrupt ring), though every process exited cleanly.
    #[error("cannot receive the pipeline's output: {0}")]
    Receive(typed::RecvError),
}

/// Everything a pipeline needs to start its processes.
struct Launch {
    capacity: usize,
    strategy: WaitStrategy,
    /// The wake handshake of every channel: [`Handshake::for_processes`].
    handshake: Handshake,
    options: ChildOptions,
    processes: Vec<Process>,
}

/// The two ends of a channel between two processes of a pipeline.
type Link<T, C> = (bulk::Sender<T, Spsc, C>, bulk::Receiver<T, Spsc, C>);

impl Launch {
    /// A channel between two processes of the pipeline, both ends waiting as it says.
    fn channel<T, C: BatchCodec<T>>(&self) -> Result<Link<T, C>, PipelineError> {
        let (sender, receiver) = Builder::<Spsc>::new(self.capacity)
            .wait_strategy(self.strategy)
            .handshake(self.handshake)
            .create()?;
        let sender = bulk::Sender::try_from(sender).map_err(ChannelError::from)?;
        let receiver = bulk::Receiver::try_from(receiver).map_err(ChannelError::from)?;
        Ok((sender, receiver))
    }
}

/// One forked process of a running pipeline.
#[derive(Debug)]
struct Process {
    index: usize,
    name: String,
    child: Child,
}

/// Starts the source and the stages so far; returns the last stage's output.
type Launcher<T, C> =
    Box<dyn FnOnce(&mut Launch) -> Result<bulk::Receiver<T, Spsc, C>, PipelineError>>;

/// A pipeline not started yet, whose output is `T`, carried by codec `C` (plain data, or
/// the default serde codec): a source and zero or more stages.
pub struct Pipeline<T, C = DefaultCodec> {
    capacity: usize,
    /// `None`: chosen at start for the pipeline's process count.
    strategy: Option<WaitStrategy>,
    stages: usize,
    launch: Launcher<T, C>,
}

impl<T, C> fmt::Debug for Pipeline<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("capacity", &self.capacity)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

impl<T: 'static> Pipeline<T>
where
    DefaultCodec: BatchCodec<T>,
{
    /// A pipeline whose source process sends every item `source()` yields; items travel
    /// with the default serde codec.
    pub fn source<I, S>(source: S) -> Pipeline<T>
    where
        S: FnOnce() -> I + 'static,
        I: IntoIterator<Item = T>,
    {
        Pipeline::source_with(source)
    }
}

impl<T: bytemuck::Pod> Pipeline<T, Plain> {
    /// A pipeline of plain-data items: like [`source`](Pipeline::source), but every channel
    /// copies its items as they are, without a codec.
    pub fn source_pod<I, S>(source: S) -> Pipeline<T, Plain>
    where
        S: FnOnce() -> I + 'static,
        I: IntoIterator<Item = T>,
    {
        Pipeline::source_with(source)
    }
}

impl<T: 'static, C: BatchCodec<T>> Pipeline<T, C> {
    /// A pipeline whose channels use codec `C`:
    /// `Pipeline::<_, Postcard>::source_with(|| 0..10u32)`.
    pub fn source_with<I, S>(source: S) -> Pipeline<T, C>
    where
        S: FnOnce() -> I + 'static,
        I: IntoIterator<Item = T>,
    {
        Pipeline {
            capacity: DEFAULT_PIPELINE_CAPACITY,
            strategy: None,
            stages: 0,
            launch: Box::new(move |launch: &mut Launch| {
                let (sender, receiver) = launch.channel::<T, C>()?;
                let child = launch
                    .options
                    .checked_fork((sender,), move |(sender,), report| {
                        process::run_source(source, sender, report)
                    })?;
                launch.processes.push(Process {
                    index: 0,
                    name: "source".to_string(),
                    child,
                });
                Ok(receiver)
            }),
        }
    }

    /// The ring capacity of every channel of the pipeline, in bytes (default
    /// [`DEFAULT_PIPELINE_CAPACITY`]); it bounds the largest item.
    pub fn capacity(mut self, bytes: usize) -> Pipeline<T, C> {
        self.capacity = bytes;
        self
    }

    /// How every process of the pipeline waits for input or room (default:
    /// [`WaitStrategy::for_processes`] with the pipeline's process count).
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Pipeline<T, C> {
        self.strategy = Some(strategy);
        self
    }

    /// Adds a stage, in its own process, that maps each item with `f`.
    pub fn stage<U, F>(self, name: impl Into<String>, mut f: F) -> Pipeline<U, C>
    where
        U: 'static,
        C: BatchCodec<U>,
        F: FnMut(T) -> U + 'static,
    {
        self.try_stage(name, move |item| Ok::<U, std::convert::Infallible>(f(item)))
    }

    /// Adds a stage, in its own process, that maps each item with `f`; the first `Err`
    /// stops the pipeline, reported as [`StageFailure::Error`] with its text.
    pub fn try_stage<U, E, F>(self, name: impl Into<String>, mut f: F) -> Pipeline<U, C>
    where
        U: 'static,
        C: BatchCodec<U>,
        E: Display,
        F: FnMut(T) -> Result<U, E> + 'static,
    {
        self.then(name, move |batch: &mut Vec<T>, out: &mut Vec<U>| {
            out.reserve(batch.len());
            for item in batch.drain(..) {
                out.push(f(item)?);
            }
            Ok::<(), E>(())
        })
    }

    /// Adds a stage, in its own process, that works on whole batches: `f` gets the items
    /// at hand, in order, and pushes its results (any number of them) onto the output.
    pub fn stage_batch<U, F>(self, name: impl Into<String>, mut f: F) -> Pipeline<U, C>
    where
        U: 'static,
        C: BatchCodec<U>,
        F: FnMut(&[T], &mut Vec<U>) + 'static,
    {
        self.try_stage_batch(name, move |batch: &[T], out: &mut Vec<U>| {
            f(batch, out);
            Ok::<(), std::convert::Infallible>(())
        })
    }

    /// [`stage_batch`](Pipeline::stage_batch) with a function that can fail: the first
    /// `Err` stops the pipeline, reported as [`StageFailure::Error`] with its text.
    pub fn try_stage_batch<U, E, F>(self, name: impl Into<String>, mut f: F) -> Pipeline<U, C>
    where
        U: 'static,
        C: BatchCodec<U>,
        E: Display,
        F: FnMut(&[T], &mut Vec<U>) -> Result<(), E> + 'static,
    {
        self.then(name, move |batch: &mut Vec<T>, out: &mut Vec<U>| {
            let done = f(batch, out);
            batch.clear();
            done
        })
    }

    /// Adds a stage running `process` on each batch (which it empties) in its own process.
    fn then<U, E, F>(self, name: impl Into<String>, process: F) -> Pipeline<U, C>
    where
        U: 'static,
        C: BatchCodec<U>,
        E: Display,
        F: FnMut(&mut Vec<T>, &mut Vec<U>) -> Result<(), E> + 'static,
    {
        let name = name.into();
        let index = self.stages + 1;
        let upstream = self.launch;
        Pipeline {
            capacity: self.capacity,
            strategy: self.strategy,
            stages: index,
            launch: Box::new(move |launch: &mut Launch| {
                let input = upstream(launch)?;
                let (sender, receiver) = launch.channel::<U, C>()?;
                let child = launch.options.checked_fork(
                    (input, sender),
                    move |(input, output), report| {
                        process::run_stage(input, output, process, report)
                    },
                )?;
                launch.processes.push(Process { index, name, child });
                Ok(receiver)
            }),
        }
    }

    /// Forks every process and returns the running pipeline, whose output the caller
    /// reads with [`RunningPipeline::recv`] (or as an iterator).
    ///
    /// # Errors
    ///
    /// [`PipelineError::NoStages`] without a stage (nothing is forked);
    /// [`PipelineError::Channel`] / [`PipelineError::Fork`] if a process could not be set up
    /// (those already forked are killed).
    pub fn start(self) -> Result<RunningPipeline<T, C>, PipelineError> {
        if self.stages == 0 {
            return Err(PipelineError::NoStages);
        }
        // The source, the stages and the sink (the calling process).
        let processes = self.stages + 2;
        let mut launch = Launch {
            capacity: self.capacity,
            strategy: self
                .strategy
                .unwrap_or_else(|| WaitStrategy::for_processes(processes)),
            handshake: Handshake::for_processes(processes),
            options: ChildOptions::new(),
            processes: Vec::new(),
        };
        // On error, `launch.processes` drops here and kills what was started.
        let output = (self.launch)(&mut launch)?;
        Ok(RunningPipeline::new(output, launch.processes))
    }

    /// Runs the pipeline to its end, feeding every result, in order, to `sink` in the
    /// calling process. On error the sink may have seen a prefix of the results.
    pub fn run(self, mut sink: impl FnMut(T)) -> Result<(), PipelineError> {
        let mut running = self.start()?;
        let mut batch = Vec::new();
        while running.recv_batch(&mut batch)? {
            batch.drain(..).for_each(&mut sink);
        }
        Ok(())
    }

    /// Runs the pipeline to its end and collects the results, in order.
    pub fn collect(self) -> Result<Vec<T>, PipelineError> {
        let mut running = self.start()?;
        let mut results = Vec::new();
        while running.recv_batch(&mut results)? {}
        Ok(results)
    }
}
