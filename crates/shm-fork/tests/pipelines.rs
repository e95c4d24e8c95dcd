//! Pipelines: results equal to the in-process computation, failures named after their
//! stage, and no process left behind.

mod common;

use shm_fork::{ExitStatus, Pipeline, PipelineError, StageFailure};

fn main() {
    common::run(&[
        (
            "three_stages_over_a_million_items_match_in_process",
            three_stages_over_a_million_items_match_in_process,
        ),
        ("zero_stages_is_an_error", zero_stages_is_an_error),
        ("stage_error_is_named", stage_error_is_named),
        ("stage_panic_is_named", stage_panic_is_named),
        ("source_panic_is_named", source_panic_is_named),
        (
            "stage_killed_mid_stream_is_named",
            stage_killed_mid_stream_is_named,
        ),
        (
            "dropping_a_running_pipeline_reaps_every_process",
            dropping_a_running_pipeline_reaps_every_process,
        ),
    ]);
}

const ITEMS: u64 = 1_000_000;

fn scramble(n: u64) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

fn three_stages_over_a_million_items_match_in_process() {
    let expected: Vec<u32> = (0..ITEMS)
        .map(scramble)
        .filter(|n| n % 3 != 0)
        .map(|n| (n >> 40) as u32)
        .collect();
    let mut got = Vec::with_capacity(expected.len());
    let mut count = 0usize;
    // Stage 2 drops multiples of 3 as `None`; the sink skips them.
    Pipeline::source(|| 0..ITEMS)
        .stage("scramble", scramble)
        .stage("filter", |n: u64| (n % 3 != 0).then_some(n))
        .stage("top-bits", |n: Option<u64>| n.map(|n| (n >> 40) as u32))
        .run(|item| {
            count += 1;
            got.extend(item);
        })
        .unwrap();
    assert_eq!(count as u64, ITEMS);
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "pipeline output differs from the in-process computation"
    );
}

fn zero_stages_is_an_error() {
    let err = Pipeline::source(|| 0..10u32).collect().unwrap_err();
    assert!(matches!(err, PipelineError::NoStages), "{err}");
}

fn stage_error_is_named() {
    let err = Pipeline::source(|| 0..10_000u32)
        .stage("double", |n| n * 2)
        .try_stage("check", |n: u32| {
            if n == 1000 {
                Err(format!("bad item {n}"))
            } else {
                Ok(n)
            }
        })
        .stage("pass", |n: u32| n)
        .collect()
        .unwrap_err();
    match err {
        PipelineError::Stage {
            index,
            name,
            failure,
        } => {
            assert_eq!((index, name.as_str()), (2, "check"));
            assert_eq!(failure, StageFailure::Error("bad item 1000".into()));
        }
        other => panic!("expected a stage failure, got {other}"),
    }
}

fn stage_panic_is_named() {
    let err = Pipeline::source(|| 0..10_000u32)
        .stage("boom", |n: u32| {
            if n == 77 {
                panic!("stage saw {n}");
            }
            n
        })
        .stage("pass", |n: u32| n)
        .collect()
        .unwrap_err();
    let message = err.to_string();
    match err {
        PipelineError::Stage {
            index,
            name,
            failure,
        } => {
            assert_eq!((index, name.as_str()), (1, "boom"));
            assert_eq!(failure, StageFailure::Panicked("stage saw 77".into()));
        }
        other => panic!("expected a stage failure, got {other}"),
    }
    assert!(
        message.contains("`boom`") && message.contains("panicked"),
        "{message}"
    );
}

fn source_panic_is_named() {
    let err = Pipeline::source(|| {
        (0..100u32).map(|n| if n == 50 { panic!("source gave up") } else { n })
    })
    .stage("pass", |n: u32| n)
    .collect()
    .unwrap_err();
    match err {
        PipelineError::Stage {
            index: 0,
            name,
            failure,
        } => {
            assert_eq!(name, "source");
            assert_eq!(failure, StageFailure::Panicked("source gave up".into()));
        }
        other => panic!("expected the source to fail, got {other}"),
    }
}

fn stage_killed_mid_stream_is_named() {
    let mut running = Pipeline::source(|| 0..u64::MAX)
        .stage("one", |n: u64| n + 1)
        .stage("two", |n: u64| n * 2)
        .stage("three", |n: u64| n)
        .start()
        .unwrap();
    for n in 0..1000 {
        assert_eq!(running.recv().unwrap(), Some((n + 1) * 2));
    }
    let victim = running.pids()[2];
    // SAFETY: plain syscall on a child of ours that the pipeline has not reaped.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    let err = loop {
        match running.recv() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a killed stage ended the stream cleanly"),
            Err(err) => break err,
        }
    };
    match err {
        PipelineError::Stage {
            index,
            name,
            failure,
        } => {
            assert_eq!((index, name.as_str()), (2, "two"));
            assert_eq!(
                failure,
                StageFailure::Died(ExitStatus::Signaled(libc::SIGKILL))
            );
        }
        other => panic!("expected a stage failure, got {other}"),
    }
    // Everything was torn down.
    let pids = running.pids();
    drop(running);
    assert!(pids.iter().all(|&pid| common::not_our_child(pid)));
}

fn dropping_a_running_pipeline_reaps_every_process() {
    let mut running = Pipeline::source(|| 0..u64::MAX)
        .stage("one", |n: u64| n)
        .stage("two", |n: u64| n)
        .start()
        .unwrap();
    assert_eq!(running.recv().unwrap(), Some(0));
    let pids = running.pids();
    assert_eq!(pids.len(), 3);
    drop(running);
    assert!(pids.iter().all(|&pid| common::not_our_child(pid)));
}
