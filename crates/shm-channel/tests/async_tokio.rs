//! Async endpoints under tokio's multi-threaded runtime (feature `tokio`): a million
//! messages, cancelled receives and sends that lose nothing, a dead peer that wakes a
//! pending future, for every flavor; and the sync side paying nothing.
#![cfg(feature = "tokio")]

use shm_channel::{Builder, Sender};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use shm_channel::Endpoint;
use shm_channel::{broadcast, mpsc, spsc, typed, RecvError, SendError};
use shm_core::liveness::ProcessIdentity;
use shm_testkit::{fork_child, fork_lock};

/// Generous bound on every wait, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `future` once; its output if it completed (it is dropped either way).
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    match future.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[test]
fn a_million_messages_between_tasks_arrive_in_order() {
    const COUNT: u64 = 1_000_000;
    let (mut tx, mut rx) = spsc::channel(1 << 12).unwrap();
    assert!(tx.has_doorbells());
    runtime().block_on(async move {
        let producer = tokio::spawn(async move {
            for seq in 0..COUNT {
                tx.send_async(&seq.to_le_bytes()).await.unwrap();
            }
        });
        let consumer = tokio::spawn(async move {
            for seq in 0..COUNT {
                let msg = rx.recv_async().await.unwrap();
                assert_eq!(msg, seq.to_le_bytes());
            }
            assert_eq!(rx.recv_async().await, Err(RecvError::Disconnected));
        });
        tokio::time::timeout(PATIENCE, async {
            producer.await.unwrap();
            consumer.await.unwrap();
        })
        .await
        .expect("the million messages took longer than the patience");
    });
}

#[test]
fn typed_values_through_mpsc_from_many_tasks() {
    const PER_SENDER: u64 = 50_000;
    let (tx, rx) = Builder::<mpsc::Mpsc>::new(1 << 12).create().unwrap();
    let mut rx =
        typed::Receiver::<(u64, u64), mpsc::Mpsc, typed::DefaultCodec>::try_from(rx).unwrap();
    runtime().block_on(async move {
        let mut producers = Vec::new();
        for id in 0..3u64 {
            let mut tx = typed::Sender::<(u64, u64), mpsc::Mpsc, typed::DefaultCodec>::try_from(
                tx.try_clone().unwrap(),
            )
            .unwrap();
            producers.push(tokio::spawn(async move {
                for seq in 0..PER_SENDER {
                    tx.send_async((id, seq)).await.unwrap();
                }
            }));
        }
        drop(tx);
        let consumer = tokio::spawn(async move {
            let mut next = [0u64; 3];
            while let Ok((id, seq)) = rx.recv_async().await {
                assert_eq!(seq, next[id as usize], "sender {id} out of order");
                next[id as usize] += 1;
            }
            next
        });
        let next = tokio::time::timeout(PATIENCE, consumer)
            .await
            .expect("fan-in took longer than the patience")
            .unwrap();
        assert_eq!(next, [PER_SENDER; 3]);
        for producer in producers {
            producer.await.unwrap();
        }
    });
}

#[test]
fn cancelled_receives_lose_nothing() {
    const COUNT: u64 = 20_000;
    let (mut tx, mut rx) = spsc::channel(1 << 10).unwrap();
    runtime().block_on(async move {
        let producer = tokio::spawn(async move {
            for seq in 0..COUNT {
                tx.send_async(&seq.to_le_bytes()).await.unwrap();
                // Pauses longer than the receiver's timer, so that some receives are
                // surely cancelled while pending.
                if seq % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        let mut seq = 0;
        let mut cancelled = 0u64;
        let deadline = Instant::now() + PATIENCE;
        while seq < COUNT {
            assert!(Instant::now() < deadline, "stuck at {seq}");
            // Race each receive against a very short timer: many are cancelled while
            // pending (announced as async waiters), some complete.
            tokio::select! {
                msg = rx.recv_async() => {
                    assert_eq!(msg.unwrap(), seq.to_le_bytes());
                    seq += 1;
                }
                _ = tokio::time::sleep(Duration::from_micros(50)) => cancelled += 1,
            }
            // A future polled once and dropped: cancelled if pending, and then it must
            // have taken nothing.
            if seq % 16 == 0 && seq < COUNT {
                match poll_once(rx.recv_async()) {
                    Some(msg) => {
                        assert_eq!(msg.unwrap(), seq.to_le_bytes());
                        seq += 1;
                    }
                    None => cancelled += 1,
                }
            }
        }
        producer.await.unwrap();
        assert_eq!(rx.recv_async().await, Err(RecvError::Disconnected));
        assert!(
            cancelled > 0,
            "no receive was ever cancelled: the test tested nothing"
        );
    });
}

#[test]
fn cancelled_sends_send_nothing() {
    let (mut tx, mut rx) = spsc::channel(64).unwrap();
    let big = [7u8; 40];
    runtime().block_on(async move {
        tx.send_async(&big).await.unwrap();
        // The ring has no room for a second: the future is pending, then dropped.
        assert!(poll_once(tx.send_async(&big)).is_none());
        let timed_out = tokio::time::timeout(Duration::from_millis(20), tx.send_async(&big)).await;
        assert!(timed_out.is_err());
        assert_eq!(rx.recv_async().await.unwrap(), big);
        // Only the first message was sent; the ring is empty again.
        assert!(rx.try_recv().is_err());
        tx.send_async(b"after").await.unwrap();
        assert_eq!(rx.recv_async().await.unwrap(), b"after");
    });
}

#[test]
fn broadcast_receivers_wait_asynchronously() {
    let (mut tx, rx) = Builder::<broadcast::Broadcast>::new(1 << 12)
        .create()
        .unwrap();
    let second = rx.try_clone().unwrap();
    runtime().block_on(async move {
        let mut tasks = Vec::new();
        for mut rx in [rx, second] {
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Ok(msg) = rx.recv_async().await {
                    got.push(msg[0]);
                }
                got
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..100u8 {
            tx.send_async(&[i]).await.unwrap();
        }
        drop(tx);
        for task in tasks {
            let got = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
            assert_eq!(got, (0..100).collect::<Vec<u8>>());
        }
    });
}

/// Hands `end` to a forked child that owns it and sleeps; starts `pending` (a future that
/// must wait on that peer), kills the child, and returns what the woken future returned.
fn outcome_when_the_peer_dies<E: Endpoint + Send + 'static, T: Send + 'static>(
    end: E,
    pending: impl Future<Output = T> + Send + 'static,
) -> T {
    let lock = fork_lock();
    let mut end = Some(end);
    let child = fork_child(&lock, || {
        let end = end.take().unwrap();
        end.adopt().unwrap();
        std::thread::sleep(PATIENCE * 2);
        drop(end);
        0
    });
    end.take()
        .unwrap()
        .hand_over(ProcessIdentity::of_pid(child.pid()).unwrap())
        .unwrap();
    runtime().block_on(async {
        let pending = tokio::spawn(pending);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !pending.is_finished(),
            "the future did not wait for its peer"
        );
        child.kill();
        tokio::time::timeout(PATIENCE, pending)
            .await
            .expect("the dead peer did not wake the pending future")
            .unwrap()
    })
}

#[test]
fn a_pending_receive_is_woken_by_the_peer_dying() {
    let (tx, mut rx) = spsc::channel(4096).unwrap();
    let outcome = outcome_when_the_peer_dies(tx, async move { rx.recv_async().await });
    assert_eq!(outcome, Err(RecvError::PeerDied));
}

#[test]
fn a_pending_send_is_woken_by_the_peer_dying() {
    let (mut tx, rx) = Builder::<mpsc::Mpsc>::new(64).create().unwrap();
    tx.try_send(&[1; 40]).unwrap(); // the ring is full now
    let outcome = outcome_when_the_peer_dies(rx, async move { tx.send_async(&[2; 40]).await });
    assert!(
        matches!(outcome, Err(SendError::PeerDied(()))),
        "{outcome:?}"
    );
}

#[test]
fn a_pending_broadcast_receive_is_woken_by_the_writer_dying() {
    let (tx, mut rx) = Builder::<broadcast::Broadcast>::new(1 << 12)
        .create()
        .unwrap();
    let outcome = outcome_when_the_peer_dies(tx, async move { rx.recv_async().await });
    assert!(outcome.is_err(), "{outcome:?}");
}

#[test]
fn sync_peers_make_no_doorbell_calls_while_nobody_awaits() {
    // Only the wake counters can tell: a sync-only stream makes no wake syscalls at all
    // when the receiver never sleeps, doorbells or not.
    let (mut tx, mut rx) = spsc::channel(1 << 12).unwrap();
    for i in 0..1000u32 {
        tx.send(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.try_recv().unwrap(), i.to_le_bytes());
    }
    assert_eq!(tx.stats().wake_syscalls, 0);
    assert_eq!(rx.stats().wake_syscalls, 0);
}

#[test]
fn a_receiver_stream_ends_at_disconnect() {
    use futures_core::Stream;
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    runtime().block_on(async move {
        let consumer = tokio::spawn(async move {
            let mut stream = rx.stream();
            let mut got = Vec::new();
            while let Some(msg) =
                std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
            {
                got.push(msg.unwrap()[0]);
            }
            got
        });
        for i in 0..50u8 {
            tx.send_async(&[i]).await.unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        drop(tx);
        let got = tokio::time::timeout(PATIENCE, consumer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, (0..50).collect::<Vec<u8>>());
    });
}

#[test]
fn a_million_messages_from_a_forked_sync_sender_wake_an_async_receiver() {
    // The doorbell is inherited across fork: the child, synchronous, rings it for the
    // parent's task.
    const COUNT: u64 = 1_000_000;
    let lock = fork_lock();
    let (tx, mut rx) = spsc::channel(1 << 12).unwrap();
    let mut tx = Some(tx);
    let child = fork_child(&lock, || {
        let mut tx = tx.take().unwrap();
        tx.adopt().unwrap();
        for seq in 0..COUNT {
            if tx.send(&seq.to_le_bytes()).is_err() {
                return 1;
            }
            // Now and then a pause, so the receiver goes pending and must be rung.
            if seq % 100_000 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        0
    });
    tx.take()
        .unwrap()
        .hand_over(ProcessIdentity::of_pid(child.pid()).unwrap())
        .unwrap();
    let received = runtime().block_on(async move {
        tokio::time::timeout(PATIENCE, async move {
            let mut seq = 0u64;
            while let Ok(msg) = rx.recv_async().await {
                assert_eq!(msg, seq.to_le_bytes());
                seq += 1;
            }
            seq
        })
        .await
        .expect("the stream from the child took longer than the patience")
    });
    assert_eq!(received, COUNT);
    assert_eq!(child.wait(), 0);
}

#[test]
fn a_byte_stream_copies_through_async_write_and_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const LEN: usize = 8 << 20;
    let (mut writer, mut reader) = shm_channel::stream::pipe(1 << 14).unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let expected = data.clone();
    runtime().block_on(async move {
        let producer = tokio::spawn(async move {
            // Odd-sized writes, so frames and reads never line up.
            for chunk in data.chunks(7777) {
                writer.write_all(chunk).await.unwrap();
            }
            writer.shutdown().await.unwrap();
        });
        let mut copied = Vec::with_capacity(LEN);
        let mut buf = [0u8; 3000];
        loop {
            let n = tokio::time::timeout(PATIENCE, reader.read(&mut buf))
                .await
                .expect("stuck reading")
                .unwrap();
            if n == 0 {
                break; // end of stream: the writer was dropped
            }
            copied.extend_from_slice(&buf[..n]);
        }
        producer.await.unwrap();
        assert_eq!(copied.len(), expected.len());
        assert!(copied == expected, "the bytes differ");
    });
}

#[test]
fn an_async_write_to_a_dropped_reader_is_a_broken_pipe() {
    use tokio::io::AsyncWriteExt;
    let (mut writer, reader) = shm_channel::stream::pipe(1 << 12).unwrap();
    drop(reader);
    runtime().block_on(async move {
        let err = writer.write_all(b"nobody reads").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn parked_waits_are_woken_through_the_doorbell() {
    // `Park`: no polling at all, every wait sleeps in the reactor until the peer rings.
    const COUNT: u64 = 100_000;
    let (mut tx, mut rx) = Builder::<spsc::Spsc>::new(1 << 10)
        .wait_strategy(shm_core::notify::WaitStrategy::Park)
        .create()
        .unwrap();
    runtime().block_on(async move {
        let producer = tokio::spawn(async move {
            for seq in 0..COUNT {
                tx.send_async(&seq.to_le_bytes()).await.unwrap();
            }
            tx.stats().wake_syscalls
        });
        let consumer = tokio::spawn(async move {
            for seq in 0..COUNT {
                assert_eq!(rx.recv_async().await.unwrap(), seq.to_le_bytes());
            }
            rx.stats().wake_syscalls
        });
        let (rang_receiver, rang_sender) = tokio::time::timeout(PATIENCE, async {
            (producer.await.unwrap(), consumer.await.unwrap())
        })
        .await
        .expect("parked waits were not woken");
        // Both sides announced themselves and were rung at least once.
        assert!(
            rang_receiver > 0 && rang_sender > 0,
            "{rang_receiver} {rang_sender}"
        );
    });
}

/// Runs `future` on a current-thread runtime with IO and no timer, failing the test (not
/// hanging it) if it has not completed after `PATIENCE`.
fn within_patience<T>(runtime: &tokio::runtime::Runtime, future: impl Future<Output = T>) -> T {
    let (alarm, rung) = tokio::sync::oneshot::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(PATIENCE);
        let _ = alarm.send(());
    });
    let outcome = runtime.block_on(async {
        tokio::select! {
            biased;
            _ = rung => None,
            value = future => Some(value),
        }
    });
    drop(watchdog); // detached: it only sends to a receiver that may be gone
    outcome.expect("the future was not woken within the patience")
}

#[test]
fn a_wait_moved_to_another_runtime_is_woken_there() {
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    let io_only = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    };
    // The first runtime stays alive, but nobody drives it after its first wait.
    let first = io_only();
    tx.send(b"one").unwrap();
    assert_eq!(first.block_on(rx.recv_async()).unwrap(), b"one");
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tx.send(b"two").unwrap();
        tx
    });
    let second = io_only();
    assert_eq!(within_patience(&second, rx.recv_async()).unwrap(), b"two");
    drop(sender.join().unwrap());
    drop(first);
}

#[test]
fn a_sender_without_doorbells_still_wakes_an_async_receiver() {
    let builder = Builder::<spsc::Spsc>::new(4096)
        .doorbells(true)
        .wait_strategy(shm_core::notify::WaitStrategy::Park);
    let memory: std::sync::Arc<dyn shm_core::SharedMemory> =
        std::sync::Arc::new(shm_core::Region::anonymous(builder.region_len().unwrap()).unwrap());
    let mut rx = builder.create_receiver_in(memory.clone()).unwrap();
    // A sender attached to the memory alone: it has no doorbells, so it cannot ring.
    let mut tx = Sender::<spsc::Spsc>::attach(memory).unwrap();
    assert!(!tx.has_doorbells() && rx.has_doorbells());
    let sender = std::thread::spawn(move || {
        for i in 0..20u8 {
            std::thread::sleep(Duration::from_millis(3));
            tx.send(&[i]).unwrap();
        }
    });
    let runtime = runtime();
    for i in 0..20u8 {
        assert_eq!(within_patience(&runtime, rx.recv_async()).unwrap(), [i]);
    }
    sender.join().unwrap();
}

/// Sends every message of `msgs` through `sink`, as a `SinkExt::send_all` would.
async fn sink_all<S: futures_sink::Sink<Vec<u8>> + Unpin>(
    sink: &mut S,
    msgs: impl IntoIterator<Item = Vec<u8>>,
) -> Result<(), S::Error> {
    for msg in msgs {
        std::future::poll_fn(|cx| Pin::new(&mut *sink).poll_ready(cx)).await?;
        Pin::new(&mut *sink).start_send(msg)?;
    }
    std::future::poll_fn(|cx| Pin::new(&mut *sink).poll_close(cx)).await
}

/// A byte sender as a `Sink`, over every flavor: a small ring makes it wait for room; what
/// it sends arrives in order; a sink whose receiver is gone hands the message back.
fn byte_sink_sends_everything_in_order<F: shm_channel::Flavor>(
    (mut tx, mut rx): (shm_channel::Sender<F>, shm_channel::Receiver<F>),
) {
    const COUNT: u32 = 2_000;
    let consumer = std::thread::spawn(move || {
        let mut next = 0u32;
        while next < COUNT {
            let msg = rx.recv().unwrap();
            assert_eq!(msg, next.to_le_bytes(), "{}", F::NAME);
            next += 1;
        }
        rx
    });
    runtime().block_on(async {
        let mut sink = tx.sink::<Vec<u8>>();
        let msgs = (0..COUNT).map(|i| i.to_le_bytes().to_vec());
        sink_all(&mut sink, msgs).await.unwrap();
    });
    drop(consumer.join().unwrap());
    if F::NAME != "broadcast" {
        let refused = runtime().block_on(sink_all(&mut tx.sink(), [b"late".to_vec()]));
        assert!(
            matches!(&refused, Err(SendError::Disconnected(m)) if m == b"late"),
            "{}: {refused:?}",
            F::NAME
        );
    }
}

#[test]
fn byte_senders_are_sinks_over_every_flavor() {
    byte_sink_sends_everything_in_order(spsc::channel(256).unwrap());
    byte_sink_sends_everything_in_order(mpsc::channel(256).unwrap());
    byte_sink_sends_everything_in_order(
        broadcast::channel(256, broadcast::Policy::BackPressure).unwrap(),
    );
}

/// A waker that counts its wakes.
struct Counting(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Counting {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A `reserve_async` cancelled while it waited in the reactor: later rings of the space
/// doorbell, meant for another sender of the channel in this process, never wake its task
/// (before, its registration kept the task's waker and every ring woke it).
#[test]
fn a_cancelled_async_wait_is_never_woken_again() {
    let (mut first, mut rx) = Builder::<mpsc::Mpsc>::new(256).create().unwrap();
    let mut second = first.try_clone().unwrap();
    // Straight to the reactor, no spinning: the cancelled wait is surely registered.
    first.set_wait_strategy(shm_core::notify::WaitStrategy::Park);
    while first.try_send(&[1; 24]).is_ok() {}
    let counting = std::sync::Arc::new(Counting(std::sync::atomic::AtomicUsize::new(0)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        {
            let waker = std::task::Waker::from(counting.clone());
            let mut cx = Context::from_waker(&waker);
            let mut reserve = std::pin::pin!(first.reserve_async(24));
            assert!(reserve.as_mut().poll(&mut cx).is_pending());
        } // cancelled
        let woken = counting.0.load(std::sync::atomic::Ordering::SeqCst);
        let reader = std::thread::spawn(move || {
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(2));
                rx.recv().unwrap();
            }
            rx
        });
        // Another sender waits for room the reader frees: each release rings the doorbell.
        for _ in 0..20 {
            tokio::time::timeout(PATIENCE, second.send_async(&[2; 24]))
                .await
                .unwrap()
                .unwrap();
        }
        drop(reader.join().unwrap());
        assert_eq!(
            counting.0.load(std::sync::atomic::Ordering::SeqCst),
            woken,
            "the cancelled wait's task was woken by rings meant for another sender"
        );
    });
}

/// A runtime of one thread: a spawned task runs only while the test's future awaits.
fn one_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// MPSC senders each have a lane: an async sender waiting for room in its full lane holds
/// up no other sender (tokio's bounded channel shares one capacity and serves waiting
/// senders in turn; here there is nothing to share), and gets its room once the receiver
/// has taken from its lane.
#[test]
fn a_waiting_async_sender_holds_up_no_other_sender() {
    let (tx, mut rx) = Builder::<mpsc::Mpsc>::new(256).create().unwrap();
    let mut waiting = tx.try_clone().unwrap();
    let mut other = tx;
    while waiting.try_send(&[1; 24]).is_ok() {}
    one_thread().block_on(async {
        let task = tokio::spawn(async move {
            let mut grant = waiting.reserve_async(24).await.unwrap();
            grant.write_at(0, &[2; 24]).unwrap();
            grant.commit(24).unwrap();
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // The other sender's lane has room: its send goes through at once.
        other.try_send(&[3; 24]).unwrap();
        // Taking everything frees the waiting sender's lane.
        let mut got = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            got.push(msg[0]);
        }
        assert!(got.contains(&3) && got.iter().filter(|&&b| b == 1).count() > 1);
        tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
        assert_eq!(rx.recv().unwrap(), [2; 24]);
    });
}
