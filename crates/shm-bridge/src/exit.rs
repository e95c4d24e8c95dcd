//! Exporters still running when their process exits (`std::process::exit`, or returning
//! from `main` while an exporter lives on in a static, a leaked box or another thread):
//! one `atexit` handler stops each of them and waits, bounded by its linger, for its final
//! pack to be put and confirmed, so that importers learn the stream's length instead of
//! losing its tail silently.
//!
//! The handler only sets flags and waits on condition variables; the exporter threads make
//! every zenoh call (zenoh does not support being called from an `atexit` handler itself,
//! and its runtime threads still run while the handlers do).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

/// What the exit handler and an exporter's thread share.
#[derive(Debug)]
pub(crate) struct Exit {
    /// Set to make the exporter's thread stop (also by `Exporter::stop` and drop).
    pub stop: AtomicBool,
    /// Whether the exporter's thread has finished (its final pack put and confirmed, or it
    /// gave up).
    finished: Mutex<bool>,
    finished_cv: Condvar,
    /// How long the handler waits for this exporter.
    linger: Duration,
    /// The process that started the exporter (a forked child inherits the registration
    /// but not the thread).
    pid: u32,
}

impl Exit {
    /// Marks the exporter's thread as finished.
    pub fn finished(&self) {
        *lock(&self.finished) = true;
        self.finished_cv.notify_all();
    }

    /// Waits until the thread has finished or `deadline` passes.
    fn wait_until(&self, deadline: Instant) {
        let mut finished = lock(&self.finished);
        while !*finished {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            finished = self
                .finished_cv
                .wait_timeout(finished, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The exporters of this process that have not finished yet.
static LIVE: Mutex<Vec<Arc<Exit>>> = Mutex::new(Vec::new());

/// Registers an exporter (and, once per process, the exit handler).
pub(crate) fn register(linger: Duration) -> Arc<Exit> {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // SAFETY: `at_exit` is an `extern "C" fn()` that never unwinds (it catches
        // nothing because nothing in it panics: poisoned locks are taken over) and touches
        // only statics that live for the whole process.
        let status = unsafe { libc::atexit(at_exit) };
        // A failed registration (the C library's table is full) only loses the exit flush.
        let _ = status;
    });
    let exit = Arc::new(Exit {
        stop: AtomicBool::new(false),
        finished: Mutex::new(false),
        finished_cv: Condvar::new(),
        linger,
        pid: std::process::id(),
    });
    lock(&LIVE).push(Arc::clone(&exit));
    exit
}

/// Forgets a finished exporter.
pub(crate) fn unregister(exit: &Arc<Exit>) {
    lock(&LIVE).retain(|live| !Arc::ptr_eq(live, exit));
}

extern "C" fn at_exit() {
    let pid = std::process::id();
    let live: Vec<Arc<Exit>> = lock(&LIVE)
        .iter()
        .filter(|exit| exit.pid == pid)
        .cloned()
        .collect();
    for exit in &live {
        exit.stop.store(true, Ordering::SeqCst);
    }
    let start = Instant::now();
    for exit in &live {
        exit.wait_until(start + exit.linger);
    }
}
