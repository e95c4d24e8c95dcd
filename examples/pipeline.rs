//! Pipelines of processes (a source, three stages, the parent as sink) over shared memory
//! and over the best pipe variant, in one run, each result checked against the same
//! computation in one process.
//!
//! ```text
//! cargo run --release --example pipeline [items (default 20 M)] [repetitions (default 5)] [auto|park|spin-then-park]
//! ```
//!
//! Three variants, each run against pipes alternately (shm, pipe, shm, pipe, …;
//! `repetitions` times, default 5):
//!
//! - **u64, plain data**: `mix` (u64 → u64), `select` (a batch stage keeping one item in
//!   four, as u32), `label` (u32 → an 8-byte `Label`), with `Pipeline::source_pod`: no codec.
//! - **u64, serde**: the same stages with `Pipeline::source` (bincode on every channel).
//! - **256 B records, plain data**: `record` (u64 → a 256-byte `Record`), `fold` (Record →
//!   Record), `digest` (Record → u64), with `items / 8` items: the copy cost matters.
//!
//! The pipe pipeline is the same processes connected by pipes with 64 KiB buffers on both
//! ends (`BufWriter` on the write end, 64 KiB per `read`, whole items handed to the stage
//! at once): the best pipe variant, which the shm figure is compared with. The serde row
//! is compared with the same pipeline carrying bincode over those pipes (each process
//! encodes its batch of results with bincode's standard configuration, as the shm
//! channels do, behind a 4-byte length, and decodes what it reads from one slice): the
//! same codec work on both sides, so the ratio is the transport's. The plain pipes are
//! shown beside it, as the cost of choosing serde over plain data.
//!
//! The third argument sets how the shm pipeline's processes wait: `auto` (the default,
//! `WaitStrategy::for_processes`: with two cores or more the five processes spin then
//! park; on one core they sleep at once and are woken in batches), `park`, or
//! `spin-then-park` (a 50 µs spin, its first 5 µs busy, whatever the cores).
//!
//! Each line prints the items per second (millions; median and min–max over the
//! repetitions) of both, and the ratio shm / pipe (of the medians, and min–max of each shm
//! run against the pipe run right after it).

use std::io::{Read, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use shm_channel::codec::BatchCodec;
use shm_core::notify::WaitStrategy;
use shm_fork::{Child, Pipeline};

#[path = "support/mod.rs"]
mod support;

/// A kept item with its label: the output of the small-item pipelines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable, Serialize, Deserialize,
)]
#[repr(C)]
struct Label {
    n: u32,
    label: u32,
}

/// A 256-byte record, for the variant where the copy cost matters.
#[derive(
    Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable, Serialize, Deserialize,
)]
#[repr(C)]
struct Record {
    id: u64,
    words: [u64; 31],
}

/// Stage 1: a cheap hash (splitmix64's finaliser) of the item.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stage 2, on a batch: keep one item in four, as its top 32 bits.
fn select(batch: &[u64], out: &mut Vec<u32>) {
    out.extend(
        batch
            .iter()
            .filter(|n| *n % 4 == 0)
            .map(|n| (n >> 32) as u32),
    );
}

/// Stage 3: a label for the kept items.
fn label(n: u32) -> Label {
    Label {
        n,
        label: n.count_ones() % 8,
    }
}

fn record(id: u64) -> Record {
    let mut words = [0u64; 31];
    let mut z = id;
    for w in &mut words {
        z = mix(z);
        *w = z;
    }
    Record { id, words }
}

fn fold(mut r: Record) -> Record {
    let mut acc = r.id;
    for w in &mut r.words {
        acc = acc.rotate_left(7) ^ *w;
        *w = acc;
    }
    r
}

fn digest(r: Record) -> u64 {
    r.words.iter().fold(r.id, |acc, w| acc.wrapping_add(*w))
}

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), shm_ipc::MainError> {
    let mut args = std::env::args().skip(1);
    let items: u64 = args.next().map_or(Ok(20_000_000), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let records = items / 8;
    let wait = match args.next().as_deref() {
        None | Some("auto") => WaitStrategy::for_processes(5),
        Some("park") => WaitStrategy::Park,
        Some("spin-then-park") => WaitStrategy::SpinThenPark {
            spin: shm_core::notify::DEFAULT_SPIN,
        },
        Some(other) => return Err(format!("unknown wait strategy {other}").into()),
    };

    let start = Instant::now();
    let labels: Vec<Label> = local_labels(items);
    let local_small = items as f64 / start.elapsed().as_secs_f64() / 1e6;
    let start = Instant::now();
    let digests: Vec<u64> = (0..records).map(record).map(fold).map(digest).collect();
    let local_records = records as f64 / start.elapsed().as_secs_f64() / 1e6;

    let (labels, digests) = (&labels, &digests);
    let small_stages: Stages<u64, u32, Label> = (
        |b, out| out.extend(b.iter().map(|&n| mix(n))),
        select,
        |b, out| out.extend(b.iter().map(|&n| label(n))),
    );
    let small_pipes =
        |mode: Mode| move || timed(items, labels, || pipe_pipeline(items, small_stages, mode));
    let small = support::alternate(
        reps,
        &mut [
            &mut || {
                timed(items, labels, || {
                    small_pipeline(Pipeline::source_pod(move || 0..items), wait)
                })
            },
            &mut small_pipes(Mode::Blocks),
            &mut || {
                timed(items, labels, || {
                    small_pipeline(Pipeline::source(move || 0..items), wait)
                })
            },
            &mut small_pipes(Mode::Bincode),
            &mut small_pipes(Mode::Blocks),
            &mut small_pipes(Mode::PerItem),
        ],
    )?;
    let record_stages: Stages<Record, Record, u64> = (
        |b, out| out.extend(b.iter().map(|&n| record(n))),
        |b, out| out.extend(b.iter().map(|&r| fold(r))),
        |b, out| out.extend(b.iter().map(|&r| digest(r))),
    );
    let large = support::alternate(
        reps,
        &mut [
            &mut || {
                timed(records, digests, || {
                    Ok(Pipeline::source_pod(move || 0..records)
                        .wait_strategy(wait)
                        .stage("record", record)
                        .stage("fold", fold)
                        .stage("digest", digest)
                        .collect()?)
                })
            },
            &mut || {
                timed(records, digests, || {
                    pipe_pipeline(records, record_stages, Mode::Blocks)
                })
            },
        ],
    )?;

    println!(
        "source + 3 stage processes + the parent as sink, on {} cores, shm waiting {wait:?}; \
         {reps} runs each, alternated; results identical to one process",
        shm_core::notify::available_cores()
    );
    support::header("pipeline", "M items/s");
    support::row(&format!("{items} u64, plain data"), &small[0], &small[1]);
    support::row(
        &format!("{items} u64, serde (bincode)"),
        &small[2],
        &small[3],
    );
    support::row(&format!("{records} records of 256 B"), &large[0], &large[1]);
    support::row(
        &format!("{items} u64, serde; pipes plain"),
        &small[2],
        &small[4],
    );
    let (p, lo, hi) = support::summary(&small[5]);
    println!(
        "reference: u64 over pipes buffered 64 KiB, one read_exact/write_all per item: \
         {p:.2} [{lo:.2}-{hi:.2}] M items/s; plain shm against it: {:.2}x",
        support::summary(&small[0]).0 / p
    );
    println!(
        "one process: {local_small:.2} M items/s (u64), {local_records:.2} M records/s (256 B)"
    );
    Ok(())
}

/// Runs `run` on `items` input items, checks its results against the one-process
/// computation, returns input items per second (millions).
fn timed<T: PartialEq>(
    items: u64,
    expected: &[T],
    run: impl FnOnce() -> Result<Vec<T>, Failure>,
) -> Result<f64, Failure> {
    let start = Instant::now();
    let got = run()?;
    let rate = items as f64 / start.elapsed().as_secs_f64() / 1e6;
    assert!(
        got == expected,
        "the pipeline must compute what one process does"
    );
    Ok(rate)
}

/// The small-item pipeline (mix, select, label) from `source`, its channels on whatever
/// codec `source` chose.
fn small_pipeline<C>(source: Pipeline<u64, C>, wait: WaitStrategy) -> Result<Vec<Label>, Failure>
where
    C: BatchCodec<u64> + BatchCodec<u32> + BatchCodec<Label>,
{
    Ok(source
        .wait_strategy(wait)
        .stage("mix", mix)
        .stage_batch("select", select)
        .stage("label", label)
        .collect()?)
}

fn local_labels(items: u64) -> Vec<Label> {
    let mixed: Vec<u64> = (0..items).map(mix).collect();
    let mut kept = Vec::new();
    select(&mixed, &mut kept);
    kept.into_iter().map(label).collect()
}

/// A stage of the pipe pipeline: what it does with each run of whole items it reads.
type PipeStage<A, B> = fn(&[A], &mut Vec<B>);

/// The three stages of a pipe pipeline fed with u64s.
type Stages<A, B, C> = (PipeStage<u64, A>, PipeStage<A, B>, PipeStage<B, C>);

/// How the pipe pipeline's processes use their 64 KiB buffers.
#[derive(Clone, Copy)]
enum Mode {
    /// Every run of whole items a `read` returned goes to the stage at once (the best).
    Blocks,
    /// One `read_exact` and one `write_all` per item, through `BufReader`/`BufWriter`.
    PerItem,
    /// Every run of items a process hands on, encoded with bincode (standard
    /// configuration) behind its length in 4 bytes; read back whole and decoded from one
    /// slice.
    Bincode,
}

/// Items a pipe pipeline can carry in every [`Mode`].
trait Item: bytemuck::Pod + Serialize + serde::de::DeserializeOwned {}
impl<T: bytemuck::Pod + Serialize + serde::de::DeserializeOwned> Item for T {}

/// Writes `items` to `out` as `mode` carries them (`scratch` holds a bincode encoding).
fn write_items<T: Item>(
    out: &mut impl Write,
    items: &[T],
    mode: Mode,
    scratch: &mut Vec<u8>,
) -> std::io::Result<()> {
    match mode {
        Mode::Blocks | Mode::PerItem => out.write_all(bytemuck::cast_slice(items)),
        Mode::Bincode => {
            scratch.clear();
            bincode::serde::encode_into_std_write(items, scratch, bincode::config::standard())
                .map_err(std::io::Error::other)?;
            let len = u32::try_from(scratch.len()).map_err(std::io::Error::other)?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(scratch)
        }
    }
}

/// The pipe pipeline: a source of `0..items` as u64, three stages, the parent as sink.
fn pipe_pipeline<A, B, C>(
    items: u64,
    stages: Stages<A, B, C>,
    mode: Mode,
) -> Result<Vec<C>, Failure>
where
    A: Item,
    B: Item,
    C: Item,
{
    let mut children = Vec::new();
    let (input, out) = support::pipe()?;
    children.push(shm_fork::fork(move || {
        let mut out = support::buffered(out);
        // Blocks and bincode: 64 KiB of items per write; per item: one `write_all` each.
        let per_write = match mode {
            Mode::Blocks | Mode::Bincode => (support::PIPE_BUFFER / 8) as u64,
            Mode::PerItem => 1,
        };
        let (mut chunk, mut scratch) = (Vec::new(), Vec::new());
        let mut n = 0;
        while n < items {
            chunk.clear();
            chunk.extend(n..items.min(n + per_write));
            n += chunk.len() as u64;
            write_items(&mut out, &chunk, mode, &mut scratch).unwrap();
        }
        out.flush().unwrap();
        0
    })?);
    let input = pipe_stage(input, &mut children, stages.0, mode)?;
    let input = pipe_stage(input, &mut children, stages.1, mode)?;
    let mut input = pipe_stage(input, &mut children, stages.2, mode)?;
    let mut results = Vec::new();
    read(&mut input, mode, |got| results.extend_from_slice(got))?;
    for mut child in children {
        let status = child.wait()?;
        assert!(status.success(), "pipe stage {status}");
    }
    Ok(results)
}

/// Forks a stage that reads `A`s from `input`, runs `f` on each run of whole items read,
/// and writes the results to a new pipe, whose read end it returns. The write end moves
/// into the stage (the parent's copy closes when `fork` returns), so the next process
/// sees end-of-file when this one finishes.
fn pipe_stage<A: Item, B: Item>(
    mut input: std::fs::File,
    children: &mut Vec<Child>,
    f: PipeStage<A, B>,
    mode: Mode,
) -> Result<std::fs::File, Failure> {
    let (next, out) = support::pipe()?;
    children.push(shm_fork::fork(move || {
        let mut out = support::buffered(out);
        let (mut results, mut scratch) = (Vec::new(), Vec::new());
        read::<A>(&mut input, mode, |batch| {
            f(batch, &mut results);
            write_items(&mut out, &results, mode, &mut scratch).unwrap();
            results.clear();
        })
        .unwrap();
        out.flush().unwrap();
        0
    })?);
    Ok(next)
}

/// Reads `A`s until end-of-file as `mode` says, handing them to `each`.
fn read<A: Item>(
    input: &mut std::fs::File,
    mode: Mode,
    mut each: impl FnMut(&[A]),
) -> std::io::Result<()> {
    match mode {
        Mode::Bincode => {
            let mut input = std::io::BufReader::with_capacity(support::PIPE_BUFFER, input);
            let mut encoded = Vec::new();
            loop {
                let mut len = [0; 4];
                match input.read_exact(&mut len) {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    read => read?,
                }
                encoded.resize(u32::from_le_bytes(len) as usize, 0);
                input.read_exact(&mut encoded)?;
                let (items, _): (Vec<A>, usize) =
                    bincode::serde::decode_from_slice(&encoded, bincode::config::standard())
                        .map_err(std::io::Error::other)?;
                each(&items);
            }
        }
        Mode::Blocks => support::read_items(input, each),
        Mode::PerItem => {
            let mut input = std::io::BufReader::with_capacity(support::PIPE_BUFFER, input);
            let mut item = A::zeroed();
            while input.read_exact(bytemuck::bytes_of_mut(&mut item)).is_ok() {
                each(std::slice::from_ref(&item));
            }
            Ok(())
        }
    }
}
