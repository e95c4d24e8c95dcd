//! Pipelines: results equal to the in-process computation, failures named after their
//! stage, and no process left behind.

mod common;

use serde::{Deserialize, Serialize};
use shm_channel::codec::{BatchCodec, Bincode, Plain, Postcard};
use shm_fork::{ExitStatus, Pipeline, PipelineError, StageFailure};

fn main() {
    common::run(&[
        (
            "three_stages_over_a_million_items_match_in_process",
            three_stages_over_a_million_items_match_in_process,
        ),
        (
            "every_codec_matches_in_process_over_a_million_items",
            every_codec_matches_in_process_over_a_million_items,
        ),
        (
            "serde_structs_match_in_process_with_every_serde_codec",
            serde_structs_match_in_process_with_every_serde_codec,
        ),
        (
            "plain_records_of_256_bytes_match_in_process",
            plain_records_of_256_bytes_match_in_process,
        ),
        ("zero_stages_is_an_error", zero_stages_is_an_error),
        ("batch_stage_error_is_named", batch_stage_error_is_named),
        ("stage_error_is_named", stage_error_is_named),
        ("stage_panic_is_named", stage_panic_is_named),
        ("source_panic_is_named", source_panic_is_named),
        (
            "stage_killed_mid_stream_is_named",
            stage_killed_mid_stream_is_named::<Bincode>,
        ),
        (
            "plain_stage_killed_mid_stream_is_named",
            stage_killed_mid_stream_is_named::<Plain>,
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

/// The in-process computation of [`codec_pipeline`].
fn expected_top_bits() -> Vec<u32> {
    (0..ITEMS)
        .map(scramble)
        .filter(|n| n % 3 != 0)
        .map(|n| (n >> 40) as u32)
        .collect()
}

/// Scramble, filter (a batch stage), top bits, with every channel on codec `C`.
fn codec_pipeline<C: BatchCodec<u64> + BatchCodec<u32>>() -> Vec<u32> {
    Pipeline::<u64, C>::source_with(|| 0..ITEMS)
        .stage("scramble", scramble)
        .stage_batch("filter", |batch: &[u64], out: &mut Vec<u64>| {
            out.extend(batch.iter().copied().filter(|n| n % 3 != 0))
        })
        .stage("top-bits", |n: u64| (n >> 40) as u32)
        .collect()
        .unwrap()
}

fn every_codec_matches_in_process_over_a_million_items() {
    let expected = expected_top_bits();
    for (codec, got) in [
        ("plain", codec_pipeline::<Plain>()),
        ("bincode", codec_pipeline::<Bincode>()),
        ("postcard", codec_pipeline::<Postcard>()),
    ] {
        assert_eq!(got.len(), expected.len(), "{codec}");
        assert!(got == expected, "{codec}: output differs from in process");
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    qty: Vec<u16>,
}

fn order(id: u64) -> Order {
    Order {
        id,
        item: format!("item-{}", scramble(id) % 1000),
        qty: (0..id % 4).map(|q| q as u16).collect(),
    }
}

fn restock(mut o: Order) -> Order {
    o.qty.push(o.id as u16);
    o.item.push('!');
    o
}

fn serde_pipeline<C: BatchCodec<Order> + BatchCodec<u64>>() -> Vec<u64> {
    Pipeline::<u64, C>::source_with(|| 0..ITEMS)
        .stage("order", order)
        .stage("restock", restock)
        .stage("weigh", |o: Order| {
            o.item.len() as u64 + o.qty.iter().map(|&q| q as u64).sum::<u64>()
        })
        .collect()
        .unwrap()
}

fn serde_structs_match_in_process_with_every_serde_codec() {
    let expected: Vec<u64> = (0..ITEMS)
        .map(order)
        .map(restock)
        .map(|o| o.item.len() as u64 + o.qty.iter().map(|&q| q as u64).sum::<u64>())
        .collect();
    for (codec, got) in [
        ("bincode", serde_pipeline::<Bincode>()),
        ("postcard", serde_pipeline::<Postcard>()),
    ] {
        assert!(got == expected, "{codec}: output differs from in process");
    }
}

/// A 256-byte plain-data record.
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Record {
    id: u64,
    words: [u64; 31],
}

fn record(id: u64) -> Record {
    let mut words = [0; 31];
    words[(id % 31) as usize] = scramble(id);
    Record { id, words }
}

fn fold(mut r: Record) -> Record {
    r.words[0] = r.words.iter().fold(r.id, |acc, w| acc.rotate_left(5) ^ w);
    r
}

fn plain_records_of_256_bytes_match_in_process() {
    assert_eq!(std::mem::size_of::<Record>(), 256);
    let expected: Vec<u64> = (0..ITEMS)
        .map(record)
        .map(fold)
        .map(|r| r.words[0])
        .collect();
    let got: Vec<u64> = Pipeline::source_pod(|| 0..ITEMS)
        .stage("record", record)
        .stage("fold", fold)
        .stage("first", |r: Record| r.words[0])
        .collect()
        .unwrap();
    assert!(got == expected, "output differs from in process");
}

fn batch_stage_error_is_named() {
    let err = Pipeline::source_pod(|| 0..100_000u32)
        .try_stage_batch("sum", |batch: &[u32], out: &mut Vec<u64>| {
            if batch.contains(&60_000) {
                return Err("saw 60000".to_string());
            }
            out.push(batch.iter().map(|&n| n as u64).sum());
            Ok(())
        })
        .stage("pass", |n: u64| n)
        .collect()
        .unwrap_err();
    assert_stage_failure(err, 1, "sum", StageFailure::Error("saw 60000".into()));
}

/// `err` names stage `index`, called `name`, failing with `failure`.
fn assert_stage_failure(err: PipelineError, index: usize, name: &str, failure: StageFailure) {
    match err {
        PipelineError::Stage {
            index: found_index,
            name: found_name,
            failure: found_failure,
        } => {
            assert_eq!((found_index, found_name.as_str()), (index, name));
            assert_eq!(found_failure, failure);
        }
        other => panic!("expected a stage failure, got {other}"),
    }
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
    assert_stage_failure(err, 2, "check", StageFailure::Error("bad item 1000".into()));
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
    assert_stage_failure(
        err,
        1,
        "boom",
        StageFailure::Panicked("stage saw 77".into()),
    );
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

fn stage_killed_mid_stream_is_named<C: BatchCodec<u64>>() {
    let mut running = Pipeline::<u64, C>::source_with(|| 0..u64::MAX)
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
    let killed = StageFailure::Died(ExitStatus::Signaled(libc::SIGKILL));
    assert_stage_failure(err, 2, "two", killed);
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
