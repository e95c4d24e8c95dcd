//! A started pipeline: its output, read in batches, and how the end of the stream is
//! turned into the first failure of any process, named after its stage.

use std::time::{Duration, Instant};

use shm_channel::bulk;
use shm_channel::codec::BatchCodec;
use shm_channel::spsc::Spsc;
use shm_channel::typed::DefaultCodec;
use shm_channel::{typed, Endpoint, RecvError};

use super::{process, PipelineError, Process, StageFailure};
use crate::child::{
    Child, ExitStatus, DOWNSTREAM_LOST_EXIT_CODE, FAILED_EXIT_CODE, UPSTREAM_LOST_EXIT_CODE,
};
use crate::report::Outcome;

/// How long the processes of a pipeline whose output has ended get to exit before they
/// are killed: by then each one has returned from its loop or lost a channel.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// A started pipeline: its processes and the output of its last stage.
///
/// Dropping it before the end kills every process of the pipeline.
#[derive(Debug)]
pub struct RunningPipeline<T, C = DefaultCodec> {
    /// `None` once the output has ended (or failed).
    output: Option<bulk::Receiver<T, Spsc, C>>,
    /// Results received but not handed out yet by [`recv`](RunningPipeline::recv).
    ready: std::vec::IntoIter<T>,
    /// Source first, then the stages in order.
    processes: Vec<Process>,
}

impl<T, C: BatchCodec<T>> RunningPipeline<T, C> {
    pub(super) fn new(output: bulk::Receiver<T, Spsc, C>, processes: Vec<Process>) -> Self {
        RunningPipeline {
            output: Some(output),
            ready: Vec::new().into_iter(),
            processes,
        }
    }

    /// The next result: `Ok(Some(item))`, or `Ok(None)` once the pipeline ran to its end
    /// and every process exited cleanly. After an error or the end, returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`PipelineError::Stage`] naming the first process that failed (the others are then
    /// killed); [`PipelineError::Receive`] if the output could not be decoded.
    pub fn recv(&mut self) -> Result<Option<T>, PipelineError> {
        loop {
            if let Some(item) = self.ready.next() {
                return Ok(Some(item));
            }
            let mut batch = Vec::new();
            if !self.recv_batch(&mut batch)? {
                return Ok(None);
            }
            self.ready = batch.into_iter();
        }
    }

    /// Appends the next results to `out`, as many as the last stage has published (at
    /// least one): `Ok(true)`, or `Ok(false)` once the pipeline ran to its end and every
    /// process exited cleanly. Errors as [`recv`](RunningPipeline::recv).
    pub fn recv_batch(&mut self, out: &mut Vec<T>) -> Result<bool, PipelineError> {
        let ready = self.ready.len();
        if ready > 0 {
            out.extend(self.ready.by_ref());
            return Ok(true);
        }
        let Some(output) = self.output.as_mut() else {
            return Ok(false);
        };
        let most = process::items_in::<T>(output.capacity());
        loop {
            match output.drain_into(out, most) {
                // A batch the last stage found empty (all filtered out) is no result.
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(typed::RecvError::Recv(RecvError::Disconnected)) => {
                    self.output = None;
                    return self.conclude(None).map(|()| false);
                }
                Err(err) => {
                    self.output = None;
                    return self.conclude(Some(err)).map(|()| false);
                }
            }
        }
    }

    /// The pids of the pipeline's processes: the source first, then each stage.
    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(|p| p.child.pid()).collect()
    }

    /// The output has ended (cleanly or not): find the first failure, stop everything.
    fn conclude(&mut self, output_error: Option<typed::RecvError>) -> Result<(), PipelineError> {
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

impl<T, C: BatchCodec<T>> Iterator for RunningPipeline<T, C> {
    type Item = Result<T, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.recv().transpose()
    }
}

impl<T, C> Drop for RunningPipeline<T, C> {
    fn drop(&mut self) {
        // The output first, so that a last stage blocked on a full ring sees it go; then
        // every process is killed and reaped (each `Child` does so on drop).
        self.output = None;
        for process in &mut self.processes {
            process.child.kill_and_reap();
        }
    }
}
