//! Pipelines: a source, N stages and a sink, each stage in its own process, connected by
//! typed shared-memory channels.
//!
//! The source and every stage are forked when the pipeline starts; the sink runs in the
//! calling process and gets the results in order. The first failure of any process — a
//! stage's `Err`, a panic, a crash — stops the whole pipeline, and is reported naming the
//! stage. Dropping a running pipeline kills all its processes.
//!
//! ```
//! use shm_fork::Pipeline;
//!
//! let squares_as_text: Vec<String> = Pipeline::source(|| 1..=4u64)
//!     .stage("square", |n| n * n)
//!     .stage("format", |n| format!("<{n}>"))
//!     .collect()?;
//! assert_eq!(squares_as_text, ["<1>", "<4>", "<9>", "<16>"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::{self, Display};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shm_channel::codec::Codec;
use shm_channel::typed::{self, DefaultCodec};
use shm_channel::{ChannelError, RecvError, SendError, TryRecvError};
use shm_core::notify::WaitStrategy;

use crate::child::{
    Child, ExitStatus, DOWNSTREAM_LOST_EXIT_CODE, FAILED_EXIT_CODE, PANIC_EXIT_CODE,
    UPSTREAM_LOST_EXIT_CODE,
};
use crate::fork::{payload_text, ChildOptions, ForkError};
use crate::report::{Outcome, Report};

/// Default ring capacity of each channel between two processes of a pipeline, in bytes.
pub const DEFAULT_PIPELINE_CAPACITY: usize = 1 << 18;

/// How long the processes of a pipeline whose output has ended get to exit before they
/// are killed: by then each one has returned from its loop or lost a channel.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// What went wrong in one process of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageFailure {
    /// The stage's function returned this error (or the process could not use its
    /// channels: a message too large for the ring, say).
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
    Receive(RecvError),
}

/// Everything a pipeline needs to start its processes.
struct Launch {
    capacity: usize,
    strategy: WaitStrategy,
    options: ChildOptions,
    processes: Vec<Process>,
}

/// One forked process of a running pipeline.
#[derive(Debug)]
struct Process {
    index: usize,
    name: String,
    child: Child,
}

/// Starts the source and the stages so far; returns the last stage's output.
type Launcher<T> = Box<dyn FnOnce(&mut Launch) -> Result<typed::Receiver<T>, PipelineError>>;

/// A pipeline not started yet, whose output is `T`: a source and zero or more stages.
pub struct Pipeline<T> {
    capacity: usize,
    strategy: WaitStrategy,
    stages: usize,
    launch: Launcher<T>,
}

impl<T> fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("capacity", &self.capacity)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

impl<T: 'static> Pipeline<T>
where
    DefaultCodec: Codec<T>,
{
    /// A pipeline whose source process sends every item `source()` yields.
    pub fn source<I, S>(source: S) -> Pipeline<T>
    where
        S: FnOnce() -> I + 'static,
        I: IntoIterator<Item = T>,
    {
        Pipeline {
            capacity: DEFAULT_PIPELINE_CAPACITY,
            strategy: WaitStrategy::default(),
            stages: 0,
            launch: Box::new(move |launch: &mut Launch| {
                let (mut sender, mut receiver) = typed::channel::<T>(launch.capacity)?;
                sender.set_wait_strategy(launch.strategy);
                receiver.set_wait_strategy(launch.strategy);
                let child = launch
                    .options
                    .checked_fork((sender,), move |(sender,), report| {
                        run_source(source, sender, report)
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
    pub fn capacity(mut self, bytes: usize) -> Pipeline<T> {
        self.capacity = bytes;
        self
    }

    /// How every process of the pipeline waits for input or room (default: spin, then
    /// park). With more processes than cores, spinning steals time from the stage being
    /// waited for: [`WaitStrategy::Park`] or a short spin can do better there.
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Pipeline<T> {
        self.strategy = strategy;
        self
    }

    /// Adds a stage, in its own process, that maps each item with `f`.
    pub fn stage<U, F>(self, name: impl Into<String>, mut f: F) -> Pipeline<U>
    where
        U: 'static,
        DefaultCodec: Codec<U>,
        F: FnMut(T) -> U + 'static,
    {
        self.try_stage(name, move |item| Ok::<U, std::convert::Infallible>(f(item)))
    }

    /// Adds a stage, in its own process, that maps each item with `f`; the first `Err`
    /// stops the pipeline, reported as [`StageFailure::Error`] with its text.
    pub fn try_stage<U, E, F>(self, name: impl Into<String>, f: F) -> Pipeline<U>
    where
        U: 'static,
        DefaultCodec: Codec<U>,
        E: Display,
        F: FnMut(T) -> Result<U, E> + 'static,
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
                let (mut sender, mut receiver) = typed::channel::<U>(launch.capacity)?;
                sender.set_wait_strategy(launch.strategy);
                receiver.set_wait_strategy(launch.strategy);
                let child = launch
                    .options
                    .checked_fork((input, sender), move |(input, output), report| {
                        run_stage(input, output, f, report)
                    })?;
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
    pub fn start(self) -> Result<RunningPipeline<T>, PipelineError> {
        if self.stages == 0 {
            return Err(PipelineError::NoStages);
        }
        let mut launch = Launch {
            capacity: self.capacity,
            strategy: self.strategy,
            options: ChildOptions::new(),
            processes: Vec::new(),
        };
        // On error, `launch.processes` drops here and kills what was started.
        let output = (self.launch)(&mut launch)?;
        Ok(RunningPipeline {
            output: Some(output),
            processes: launch.processes,
        })
    }

    /// Runs the pipeline to its end, feeding every result, in order, to `sink` in the
    /// calling process. On error the sink may have seen a prefix of the results.
    pub fn run(self, mut sink: impl FnMut(T)) -> Result<(), PipelineError> {
        let mut running = self.start()?;
        while let Some(item) = running.recv()? {
            sink(item);
        }
        Ok(())
    }

    /// Runs the pipeline to its end and collects the results, in order.
    pub fn collect(self) -> Result<Vec<T>, PipelineError> {
        let mut results = Vec::new();
        self.run(|item| results.push(item))?;
        Ok(results)
    }
}

/// The source process: sends every item, then drops its sender (end of stream).
fn run_source<T, I, S>(source: S, mut output: typed::Sender<T>, report: &Report) -> i32
where
    DefaultCodec: Codec<T>,
    S: FnOnce() -> I,
    I: IntoIterator<Item = T>,
{
    let mut items = match panic::catch_unwind(AssertUnwindSafe(|| source().into_iter())) {
        Ok(items) => items,
        Err(payload) => return record_panic(report, payload),
    };
    loop {
        match panic::catch_unwind(AssertUnwindSafe(|| items.next())) {
            Ok(Some(item)) => {
                if let Err(code) = forward(&mut output, item, report) {
                    return code;
                }
            }
            Ok(None) => return 0,
            Err(payload) => return record_panic(report, payload),
        }
    }
}

/// A stage process: receives, maps, sends, until its input ends or something fails.
fn run_stage<A, B, E: Display>(
    mut input: typed::Receiver<A>,
    mut output: typed::Sender<B>,
    mut f: impl FnMut(A) -> Result<B, E>,
    report: &Report,
) -> i32
where
    DefaultCodec: Codec<A> + Codec<B>,
{
    loop {
        // Natural batching: results go out deferred while input is at hand; before waiting
        // for more input, what is pending is published.
        let item = match input.try_recv() {
            Ok(item) => Ok(item),
            Err(TryRecvError::Empty) => {
                output.flush();
                input.recv().map_err(TryRecvError::from)
            }
            Err(err) => Err(err),
        };
        let item = match item {
            Ok(item) => item,
            // The upstream process finished: the end of the stream.
            Err(TryRecvError::Disconnected) => return 0,
            // The upstream process died: its own status says why.
            Err(TryRecvError::PeerDied | TryRecvError::Corrupted(_)) => {
                return UPSTREAM_LOST_EXIT_CODE
            }
            Err(err) => {
                report.record(Outcome::Failed, &format!("receiving an item: {err}"));
                return FAILED_EXIT_CODE;
            }
        };
        let result = match panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            Ok(Ok(result)) => result,
            Ok(Err(err)) => {
                // Recorded before the endpoints drop, so the parent finds the cause as soon
                // as the stream ends.
                report.record(Outcome::Failed, &err.to_string());
                return FAILED_EXIT_CODE;
            }
            Err(payload) => return record_panic(report, payload),
        };
        if let Err(code) = forward(&mut output, result, report) {
            return code;
        }
    }
}

/// Sends one item downstream, deferred (published in batches: by the stage's flush before
/// it waits for input, by the channel once an eighth of the ring is pending, and when the
/// sender drops at the end); on failure, the exit code to end with.
fn forward<T>(output: &mut typed::Sender<T>, item: T, report: &Report) -> Result<(), i32>
where
    DefaultCodec: Codec<T>,
{
    match output.send_deferred(item) {
        Ok(()) => Ok(()),
        Err(SendError::Disconnected(_) | SendError::PeerDied(_)) => Err(DOWNSTREAM_LOST_EXIT_CODE),
        Err(err) => {
            report.record(Outcome::Failed, &format!("sending an item: {err}"));
            Err(FAILED_EXIT_CODE)
        }
    }
}

fn record_panic(report: &Report, payload: Box<dyn std::any::Any + Send>) -> i32 {
    report.record(Outcome::Panicked, payload_text(&*payload));
    // Dropping the payload could panic again, outside any catch_unwind.
    std::mem::forget(payload);
    PANIC_EXIT_CODE
}

/// A started pipeline: its processes and the output of its last stage.
///
/// Dropping it before the end kills every process of the pipeline.
#[derive(Debug)]
pub struct RunningPipeline<T> {
    /// `None` once the output has ended (or failed).
    output: Option<typed::Receiver<T>>,
    /// Source first, then the stages in order.
    processes: Vec<Process>,
}

impl<T> RunningPipeline<T>
where
    DefaultCodec: Codec<T>,
{
    /// The next result: `Ok(Some(item))`, or `Ok(None)` once the pipeline ran to its end
    /// and every process exited cleanly. After an error or the end, returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`PipelineError::Stage`] naming the first process that failed (the others are then
    /// killed); [`PipelineError::Receive`] if the output could not be decoded.
    pub fn recv(&mut self) -> Result<Option<T>, PipelineError> {
        let Some(output) = self.output.as_mut() else {
            return Ok(None);
        };
        match output.recv() {
            Ok(item) => Ok(Some(item)),
            Err(RecvError::Disconnected) => {
                self.output = None;
                self.conclude(None).map(|()| None)
            }
            Err(err) => {
                self.output = None;
                self.conclude(Some(err)).map(|()| None)
            }
        }
    }

    /// The pids of the pipeline's processes: the source first, then each stage.
    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(|p| p.child.pid()).collect()
    }

    /// The output has ended (cleanly or not): find the first failure, stop everything.
    fn conclude(&mut self, output_error: Option<RecvError>) -> Result<(), PipelineError> {
        // A failed process records why before it drops its channels, and a crashed one is
        // dead before anyone downstream notices: the cause is usually visible already.
        if let Some(failure) = self.visible_failure() {
            self.teardown();
            return Err(failure);
        }
        // Otherwise every process is on its way out: give them time to exit.
        let deadline = Instant::now() + EXIT_GRACE;
        let mut hung = None;
        for process in &mut self.processes {
            let left = deadline.saturating_duration_since(Instant::now());
            if !matches!(process.child.wait_timeout(left), Ok(Some(_))) {
                process.child.kill_and_reap();
                hung.get_or_insert(process.index);
            }
        }
        if let Some(failure) = self.visible_failure() {
            return Err(failure);
        }
        if let Some(index) = hung {
            return Err(self.failure_of(index, StageFailure::Hung));
        }
        // Exits that are only consequences, with no cause found: name the first.
        if let Some(process) = self
            .processes
            .iter()
            .find(|p| !p.child.status().is_some_and(ExitStatus::success))
        {
            let status = process
                .child
                .status()
                .unwrap_or(ExitStatus::Signaled(libc::SIGKILL));
            return Err(self.failure_of(process.index, StageFailure::Died(status)));
        }
        match output_error {
            None => Ok(()),
            Some(err) => Err(PipelineError::Receive(err)),
        }
    }

    /// The first process, in pipeline order, that failed by itself (not as a consequence
    /// of another's failure), reaping it if it has exited or is about to.
    fn visible_failure(&mut self) -> Option<PipelineError> {
        for process in &mut self.processes {
            let child = &mut process.child;
            let status = match child.try_wait() {
                Ok(Some(status)) => Some(status),
                Ok(None) => {
                    let recorded = child.report().outcome();
                    if matches!(recorded, Outcome::Panicked | Outcome::Failed) {
                        // It recorded its failure and is exiting: collect its status.
                        match child.wait_timeout(EXIT_GRACE) {
                            Ok(Some(status)) => Some(status),
                            _ => {
                                child.kill_and_reap();
                                child.status()
                            }
                        }
                    } else {
                        None
                    }
                }
                Err(_) => None,
            };
            if let Some(status) = status {
                if let Some(failure) = classify(status, child) {
                    let index = process.index;
                    return Some(self.failure_of(index, failure));
                }
            }
        }
        None
    }

    fn failure_of(&self, index: usize, failure: StageFailure) -> PipelineError {
        let name = self
            .processes
            .iter()
            .find(|p| p.index == index)
            .map_or_else(String::new, |p| p.name.clone());
        PipelineError::Stage {
            index,
            name,
            failure,
        }
    }

    /// Kills and reaps every process still running.
    fn teardown(&mut self) {
        self.output = None;
        for process in &mut self.processes {
            process.child.kill_and_reap();
        }
    }
}

/// What a process's exit says about it: `None` for a success or a mere consequence of
/// another process's failure.
fn classify(status: ExitStatus, child: &Child) -> Option<StageFailure> {
    let message = || child.failure_message().unwrap_or_default();
    match status {
        ExitStatus::Exited(0) => None,
        ExitStatus::Exited(UPSTREAM_LOST_EXIT_CODE | DOWNSTREAM_LOST_EXIT_CODE) => None,
        ExitStatus::Exited(FAILED_EXIT_CODE) => Some(StageFailure::Error(message())),
        ExitStatus::AdoptFailed => Some(StageFailure::Error(message())),
        ExitStatus::Panicked => Some(StageFailure::Panicked(message())),
        other => Some(StageFailure::Died(other)),
    }
}

impl<T> Iterator for RunningPipeline<T>
where
    DefaultCodec: Codec<T>,
{
    type Item = Result<T, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.recv().transpose()
    }
}

impl<T> Drop for RunningPipeline<T> {
    fn drop(&mut self) {
        // The output first, so that a last stage blocked on a full ring sees it go; then
        // every process is killed and reaped (each `Child` does so on drop).
        self.output = None;
        for process in &mut self.processes {
            process.child.kill_and_reap();
        }
    }
}
