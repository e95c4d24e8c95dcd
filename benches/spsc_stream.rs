//! Streams 64-byte messages between two threads: the shm ring (byte frames, batched and
//! unbatched, and plain-data typed), crossbeam-channel `bounded`, and rtrb, in one run.
//!
//! `cargo bench --bench spsc_stream`; the figure to compare is throughput (elements/s).
//! A second group times the ring's hot paths in one thread (send, grants, deferred
//! sends, typed codecs), without cross-core traffic.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shm_channel::{codec::Plain, spsc, typed};

/// Payload bytes per message.
const MSG: usize = 64;
/// Ring capacity in bytes for the shm ring; the slot-based queues get the same number of
/// 64-byte slots as the ring has room for 64-byte frames (64 + 8 header).
const RING_BYTES: usize = 1 << 16;
const SLOTS: usize = RING_BYTES / (MSG + 8);
/// Messages per measured iteration.
const BATCH: u64 = 100_000;

fn stream<P, C>(iters: u64, produce: P, consume: C) -> Duration
where
    P: FnOnce(u64) + Send,
    C: FnOnce(u64),
{
    let total = iters * BATCH;
    std::thread::scope(|s| {
        let start = Instant::now();
        s.spawn(move || produce(total));
        consume(total);
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_stream_64B");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(10);

    group.bench_function("shm-ring", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = spsc::channel(RING_BYTES).unwrap();
            stream(
                iters,
                move |n| {
                    let msg = [7u8; MSG];
                    for _ in 0..n {
                        tx.send(&msg).unwrap();
                    }
                },
                move |n| {
                    let mut buf = [0u8; MSG];
                    for _ in 0..n {
                        black_box(rx.recv_into(&mut buf).unwrap());
                    }
                },
            )
        })
    });

    group.bench_function("shm-ring-batched", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = spsc::channel(RING_BYTES).unwrap();
            stream(
                iters,
                move |n| {
                    let msg = [7u8; MSG];
                    let mut left = n;
                    while left > 0 {
                        for _ in 0..left.min(32) {
                            tx.send_deferred(&msg).unwrap();
                        }
                        tx.flush();
                        left -= left.min(32);
                    }
                },
                move |n| {
                    let mut buf = [0u8; MSG];
                    for _ in 0..n {
                        black_box(rx.recv_into(&mut buf).unwrap());
                    }
                },
            )
        })
    });

    group.bench_function("shm-typed-plain", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) =
                typed::pair::<[u64; 8], _, Plain>(spsc::channel(RING_BYTES).unwrap()).unwrap();
            stream(
                iters,
                move |n| {
                    for i in 0..n {
                        tx.send([i; 8]).unwrap();
                    }
                },
                move |n| {
                    for _ in 0..n {
                        black_box(rx.recv().unwrap());
                    }
                },
            )
        })
    });

    group.bench_function("crossbeam-bounded", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = crossbeam_channel::bounded::<[u8; MSG]>(SLOTS);
            stream(
                iters,
                move |n| {
                    for _ in 0..n {
                        tx.send([7u8; MSG]).unwrap();
                    }
                },
                move |n| {
                    for _ in 0..n {
                        black_box(rx.recv().unwrap());
                    }
                },
            )
        })
    });

    group.bench_function("rtrb", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; MSG]>::new(SLOTS);
            stream(
                iters,
                move |n| {
                    for _ in 0..n {
                        while tx.push([7u8; MSG]).is_err() {
                            std::hint::spin_loop();
                        }
                    }
                },
                move |n| {
                    for _ in 0..n {
                        loop {
                            if let Ok(v) = rx.pop() {
                                black_box(v);
                                break;
                            }
                            std::hint::spin_loop();
                        }
                    }
                },
            )
        })
    });
    group.finish();
}

/// The ring's hot paths in one thread (no cross-core traffic): what a send and a receive
/// cost in instructions.
fn hot_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_ops_one_thread");
    group.throughput(Throughput::Elements(1));

    let (mut tx, mut rx) = spsc::channel(RING_BYTES).unwrap();
    let msg = [7u8; MSG];
    let mut buf = [0u8; MSG];
    group.bench_function("send+recv_into 64B", |b| {
        b.iter(|| {
            tx.send(black_box(&msg)).unwrap();
            black_box(rx.recv_into(&mut buf).unwrap());
        })
    });
    group.bench_function("reserve+commit+read 64B", |b| {
        b.iter(|| {
            let mut grant = tx.reserve(MSG).unwrap();
            grant.write_at(0, black_box(&msg)).unwrap();
            grant.commit(MSG).unwrap();
            let frame = rx.read().unwrap();
            black_box(frame.copy_to(&mut buf));
        })
    });
    group.bench_function("send_deferred x32 + flush + recv x32", |b| {
        b.iter(|| {
            for _ in 0..32 {
                tx.send_deferred(black_box(&msg)).unwrap();
            }
            tx.flush();
            for _ in 0..32 {
                black_box(rx.recv_into(&mut buf).unwrap());
            }
        })
    });

    let (mut ptx, mut prx) =
        typed::pair::<[u64; 8], _, Plain>(spsc::channel(RING_BYTES).unwrap()).unwrap();
    group.bench_function("typed plain [u64; 8]", |b| {
        b.iter(|| {
            ptx.send(black_box([1; 8])).unwrap();
            black_box(prx.recv().unwrap());
        })
    });
    let (mut btx, mut brx) = typed::channel::<(u64, String, Vec<u32>)>(RING_BYTES).unwrap();
    let value = (42u64, "order-1234".to_string(), vec![1u32, 2, 3, 4]);
    group.bench_function("typed bincode (u64, String, Vec<u32>)", |b| {
        b.iter(|| {
            btx.send(black_box(value.clone())).unwrap();
            black_box(brx.recv().unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, bench, hot_paths);
criterion_main!(benches);
