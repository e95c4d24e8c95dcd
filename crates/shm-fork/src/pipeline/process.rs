//! What runs in the forked processes of a pipeline: the source's loop and a stage's loop,
//! both moving batches, and the exit codes they end with.

use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};

use shm_channel::bulk;
use shm_channel::codec::BatchCodec;
use shm_channel::spsc::Spsc;
use shm_channel::{typed, Endpoint, RecvError, SendError};

use crate::child::{
    DOWNSTREAM_LOST_EXIT_CODE, FAILED_EXIT_CODE, PANIC_EXIT_CODE, UPSTREAM_LOST_EXIT_CODE,
};
use crate::fork::payload_text;
use crate::report::{Outcome, Report};

/// Items of `T` that make one batch of `capacity` bytes' worth: the source sends this
/// many at a time (one frame: an eighth of the ring), a stage takes at most a ring's worth.
pub(super) fn items_in<T>(bytes: usize) -> usize {
    (bytes / std::mem::size_of::<T>().max(1)).max(1)
}

/// The source process: sends the items a batch at a time, then drops its sender (end of
/// stream).
pub(super) fn run_source<T, C, I, S>(
    source: S,
    mut output: bulk::Sender<T, Spsc, C>,
    report: &Report,
) -> i32
where
    C: BatchCodec<T>,
    S: FnOnce() -> I,
    I: IntoIterator<Item = T>,
{
    let mut items = match panic::catch_unwind(AssertUnwindSafe(|| source().into_iter())) {
        Ok(items) => items,
        Err(payload) => return record_panic(report, payload),
    };
    let chunk = items_in::<T>(output.capacity() / 8);
    let mut batch = Vec::with_capacity(chunk);
    loop {
        let filled = panic::catch_unwind(AssertUnwindSafe(|| {
            batch.extend(items.by_ref().take(chunk));
            batch.len() == chunk
        }));
        let more = match filled {
            Ok(more) => more,
            Err(payload) => return record_panic(report, payload),
        };
        if let Err(code) = forward(&mut output, &mut batch, report) {
            return code;
        }
        if !more {
            return 0;
        }
    }
}

/// A stage process: takes the batch its input holds, runs `process` on it, publishes the
/// results, until its input ends or something fails.
pub(super) fn run_stage<A, B, C, E: Display>(
    mut input: bulk::Receiver<A, Spsc, C>,
    mut output: bulk::Sender<B, Spsc, C>,
    mut process: impl FnMut(&mut Vec<A>, &mut Vec<B>) -> Result<(), E>,
    report: &Report,
) -> i32
where
    C: BatchCodec<A> + BatchCodec<B>,
{
    let most = items_in::<A>(input.capacity());
    let (mut batch, mut results) = (Vec::new(), Vec::new());
    loop {
        // Everything sent before is published (by `forward`), so waiting here holds
        // nothing back from the next process.
        match input.drain_into(&mut batch, most) {
            Ok(_) => {}
            // The upstream process finished: the end of the stream.
            Err(typed::RecvError::Recv(RecvError::Disconnected)) => return 0,
            // The upstream process died: its own status says why.
            Err(typed::RecvError::Recv(RecvError::PeerDied | RecvError::Corrupted(_))) => {
                return UPSTREAM_LOST_EXIT_CODE
            }
            Err(err) => {
                report.record(Outcome::Failed, &format!("receiving items: {err}"));
                return FAILED_EXIT_CODE;
            }
        }
        match panic::catch_unwind(AssertUnwindSafe(|| process(&mut batch, &mut results))) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                // Recorded before the endpoints drop, so the parent finds the cause as soon
                // as the stream ends.
                report.record(Outcome::Failed, &err.to_string());
                return FAILED_EXIT_CODE;
            }
            Err(payload) => return record_panic(report, payload),
        }
        batch.clear();
        if let Err(code) = forward(&mut output, &mut results, report) {
            return code;
        }
    }
}

/// Sends (and publishes) a batch downstream and empties it; on failure, the exit code to
/// end with.
fn forward<T, C: BatchCodec<T>>(
    output: &mut bulk::Sender<T, Spsc, C>,
    batch: &mut Vec<T>,
    report: &Report,
) -> Result<(), i32> {
    let sent = output.send(batch);
    batch.clear();
    match sent {
        Ok(()) => Ok(()),
        Err(typed::SendError::Send(SendError::Disconnected(_) | SendError::PeerDied(_))) => {
            Err(DOWNSTREAM_LOST_EXIT_CODE)
        }
        Err(err) => {
            report.record(Outcome::Failed, &format!("sending items: {err}"));
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
