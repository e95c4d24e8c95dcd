//! Workers and pools: answers, order, errors, and no process left behind.

mod common;

use shm_fork::{spawn_pool, spawn_worker, ExitStatus, WorkerError};

fn main() {
    common::run(&[
        (
            "worker_answers_calls_in_order",
            worker_answers_calls_in_order,
        ),
        (
            "pool_map_matches_in_process_results",
            pool_map_matches_in_process_results,
        ),
        ("pool_call_goes_round_robin", pool_call_goes_round_robin),
        (
            "pool_of_zero_workers_is_an_error",
            pool_of_zero_workers_is_an_error,
        ),
        (
            "panicking_handler_is_reported_as_died_panicked",
            panicking_handler_is_reported_as_died_panicked,
        ),
        (
            "killed_worker_is_reported_as_died_by_signal",
            killed_worker_is_reported_as_died_by_signal,
        ),
        (
            "dropped_worker_leaves_no_process",
            dropped_worker_leaves_no_process,
        ),
    ]);
}

fn worker_answers_calls_in_order() {
    let mut worker = spawn_worker(|(a, b): (u32, String)| format!("{b}{a}")).unwrap();
    for i in 0..200 {
        assert_eq!(worker.call((i, "n".into())).unwrap(), format!("n{i}"));
    }
    assert_eq!(worker.shutdown().unwrap(), ExitStatus::Exited(0));
}

fn pool_map_matches_in_process_results() {
    let square_digits = |n: u64| {
        n.to_string()
            .bytes()
            .map(|b| u64::from(b - b'0').pow(2))
            .sum::<u64>()
    };
    let mut pool = spawn_pool(3, square_digits).unwrap();
    assert_eq!(pool.len(), 3);
    let inputs: Vec<u64> = (0..20_000).map(|n| n * 7919).collect();
    let expected: Vec<u64> = inputs.iter().copied().map(square_digits).collect();
    assert_eq!(pool.map(inputs).unwrap(), expected);
    assert!(pool.shutdown().unwrap().iter().all(|s| s.success()));
}

fn pool_call_goes_round_robin() {
    let mut pool = spawn_pool(2, |_: ()| std::process::id()).unwrap();
    let first = pool.call(()).unwrap();
    let second = pool.call(()).unwrap();
    let third = pool.call(()).unwrap();
    assert_ne!(first, second);
    assert_eq!(first, third);
    let pids: Vec<u32> = pool.workers().iter().map(|w| w.pid() as u32).collect();
    assert_eq!(pids, [first, second]);
}

fn pool_of_zero_workers_is_an_error() {
    let err = spawn_pool(0, |n: u32| n).unwrap_err();
    assert!(matches!(err, WorkerError::NoWorkers), "{err}");
}

fn panicking_handler_is_reported_as_died_panicked() {
    let mut worker = spawn_worker(|n: u32| {
        assert!(n < 3, "request {n} is too big");
        n
    })
    .unwrap();
    assert_eq!(worker.call(1).unwrap(), 1);
    let pid = worker.pid();
    match worker.call(5) {
        Err(WorkerError::Died {
            pid: p,
            status,
            message,
        }) => {
            assert_eq!(p, pid);
            assert_eq!(status, ExitStatus::Panicked);
            assert_eq!(message.as_deref(), Some("request 5 is too big"));
        }
        other => panic!("expected Died, got {other:?}"),
    }
    // Later calls keep saying so.
    assert!(matches!(worker.call(1), Err(WorkerError::Died { .. })));
}

fn killed_worker_is_reported_as_died_by_signal() {
    let mut worker = spawn_worker(|n: u32| n + 1).unwrap();
    assert_eq!(worker.call(1).unwrap(), 2);
    // SAFETY: plain syscall on our own, unreaped child.
    assert_eq!(unsafe { libc::kill(worker.pid(), libc::SIGKILL) }, 0);
    match worker.call(2) {
        Err(WorkerError::Died { status, .. }) => {
            assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
        }
        other => panic!("expected Died, got {other:?}"),
    }
}

fn dropped_worker_leaves_no_process() {
    let mut worker = spawn_worker(|n: u32| n).unwrap();
    assert_eq!(worker.call(4).unwrap(), 4);
    let pid = worker.pid();
    drop(worker);
    assert!(common::not_our_child(pid));
}
