//! `Select` in one process: which receiver is ready, for every flavor and layer; what
//! counts as ready (a message, the end of a stream, a lag, a copy not owned here); sleeping
//! on many channels and being woken by any; the limits; fairness; `select!`. Across
//! processes: `select_processes.rs`.
#![cfg(not(loom))]

use shm_channel::{Receiver, Sender};
use std::time::{Duration, Instant};

use shm_channel::broadcast::{self, Policy};
use shm_channel::select::{Select, SelectError, SelectTimeoutError, TrySelectError, MAX_RECEIVERS};
use shm_channel::{select, spsc, typed, Endpoint, RecvError, TryRecvError};
use shm_core::liveness::ProcessIdentity;
use shm_core::notify::WaitStrategy;

mod support;
use support::select::{channel, Got, Rx, Tx, KINDS};

const CAP: usize = 4096;
const PATIENCE: Duration = Duration::from_secs(20);

/// One channel of every kind.
fn one_of_each() -> (Vec<Tx>, Vec<Rx>) {
    KINDS.iter().map(|&kind| channel(kind, CAP)).unzip()
}

/// A select over every receiver of `rxs`, made to `run`.
fn select_over<T>(rxs: &mut [Rx], run: impl FnOnce(&mut Select<'_>) -> T) -> T {
    let mut sel = Select::new();
    for rx in rxs.iter_mut() {
        sel.recv(rx.selectable());
    }
    run(&mut sel)
}

#[test]
fn a_select_names_the_receiver_with_a_message_and_takes_nothing() {
    let (mut txs, mut rxs) = one_of_each();
    for k in 0..txs.len() {
        assert_eq!(
            select_over(&mut rxs, |s| s.try_select()),
            Err(TrySelectError)
        );
        txs[k].send(k as u64 + 100).unwrap();
        assert_eq!(select_over(&mut rxs, |s| s.try_select()), Ok(k), "{k}");
        assert_eq!(select_over(&mut rxs, |s| s.select()), Ok(k), "{k}");
        let timed = select_over(&mut rxs, |s| s.select_timeout(PATIENCE));
        assert_eq!(timed, Ok(k), "{k}");
        assert_eq!(rxs[k].try_recv(), Got::Message(k as u64 + 100), "{k}");
    }
    assert_eq!(
        select_over(&mut rxs, |s| s.try_select()),
        Err(TrySelectError)
    );
}

#[test]
fn a_receiver_whose_stream_ended_is_ready_and_its_receive_says_why() {
    let (txs, mut rxs) = one_of_each();
    for (k, tx) in txs.into_iter().enumerate() {
        drop(tx);
        // Only the dropped channels are ready; the first is found wherever the scan starts.
        let ready = select_over(&mut rxs[k..], |s| s.select_timeout(PATIENCE));
        assert_eq!(ready, Ok(0), "{k}");
        match rxs[k].try_recv() {
            Got::Error(e) if e.contains("Disconnected") => {}
            other => panic!("{k}: {other:?}"),
        }
    }
}

#[test]
fn a_copy_not_owned_here_is_ready_and_its_receive_says_so() {
    let (_tx, mut rx) = spsc::channel(CAP).unwrap();
    // Handed to another process (our parent, which never uses it): not ours any more.
    let parent = ProcessIdentity::of_pid(std::os::unix::process::parent_id() as i32).unwrap();
    rx.hand_over(parent).unwrap();
    let mut sel = Select::new();
    sel.recv(&mut rx);
    assert_eq!(sel.select_timeout(PATIENCE), Ok(0));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Recv(RecvError::NotOwner)));
}

#[test]
fn a_lag_found_by_a_select_is_reported_by_the_next_receive() {
    // 8-byte messages take 32 bytes: a 256-byte ring holds the last 8 of 20.
    let (mut tx, mut rx) = broadcast::channel(256, Policy::Overwrite).unwrap();
    for i in 0..20u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let mut sel = Select::new();
    sel.recv(&mut rx);
    assert_eq!(sel.try_select(), Ok(0));
    // Selecting again changes nothing: the lag is kept, not found twice.
    assert_eq!(sel.try_select(), Ok(0));
    let Err(TryRecvError::Recv(broadcast::RecvError::Lagged(missed))) = rx.try_recv() else {
        panic!("the lag was lost");
    };
    let next = u64::from_le_bytes(rx.try_recv().unwrap()[..8].try_into().unwrap());
    assert_eq!(missed, next, "messages 0..{next} missed");
    assert!(next > 0 && next < 20);
}

#[test]
fn a_select_asleep_on_many_channels_is_woken_by_a_send_to_any() {
    let (mut txs, mut rxs): (Vec<Tx>, Vec<Rx>) = (0..100)
        .map(|i| channel(KINDS[i % KINDS.len()], 1024))
        .unzip();
    for k in [0, 37, 99] {
        let sleeper = std::thread::scope(|s| {
            let rxs = &mut rxs;
            let sleeper = s.spawn(move || {
                let started = Instant::now();
                let ready = select_over(rxs, |sel| {
                    sel.set_wait_strategy(WaitStrategy::Park);
                    sel.select_timeout(PATIENCE)
                });
                (ready, started.elapsed())
            });
            std::thread::sleep(Duration::from_millis(30));
            txs[k].send(7).unwrap();
            sleeper.join().unwrap()
        });
        assert_eq!(sleeper.0, Ok(k));
        assert!(sleeper.1 < PATIENCE);
        assert_eq!(rxs[k].try_recv(), Got::Message(7));
    }
}

#[test]
fn receivers_of_one_broadcast_channel_are_each_ready() {
    let (mut tx, mut rx1) = typed::pair::<u32, _, typed::DefaultCodec>(
        broadcast::channel(CAP, Policy::BackPressure).unwrap(),
    )
    .unwrap();
    let mut rx2 = tx.subscribe().unwrap();
    let sleeper = std::thread::scope(|s| {
        let sleeper = s.spawn(|| {
            let mut sel = Select::new();
            sel.recv(&mut rx1);
            sel.recv(&mut rx2);
            sel.select_timeout(PATIENCE)
        });
        std::thread::sleep(Duration::from_millis(20));
        tx.send(5).unwrap();
        sleeper.join().unwrap()
    });
    assert!(matches!(sleeper, Ok(0 | 1)));
    assert_eq!(rx1.try_recv(), Ok(5));
    let mut sel = Select::new();
    sel.recv(&mut rx1);
    sel.recv(&mut rx2);
    assert_eq!(sel.try_select(), Ok(1), "only the second has not read it");
    assert_eq!(rx2.try_recv(), Ok(5));
}

#[test]
fn nothing_ready_times_out_after_the_timeout() {
    let (_txs, mut rxs) = one_of_each();
    for timeout in [Duration::ZERO, Duration::from_millis(30)] {
        let started = Instant::now();
        let got = select_over(&mut rxs, |s| s.select_timeout(timeout));
        assert_eq!(got, Err(SelectTimeoutError::Timeout));
        assert!(started.elapsed() >= timeout);
    }
}

#[test]
fn an_empty_or_oversized_set_is_refused_by_waiting_selects_only() {
    let mut none = Select::new();
    assert_eq!(none.select(), Err(SelectError::NoReceivers));
    assert_eq!(
        none.select_timeout(PATIENCE),
        Err(SelectTimeoutError::Select(SelectError::NoReceivers))
    );
    assert_eq!(none.try_select(), Err(TrySelectError));

    let (mut txs, mut rxs): (Vec<Sender<spsc::Spsc>>, Vec<Receiver<spsc::Spsc>>) = (0
        ..=MAX_RECEIVERS)
        .map(|_| spsc::channel(16).unwrap())
        .unzip();
    txs[MAX_RECEIVERS].send(b"x").unwrap();
    let mut sel = Select::new();
    for rx in &mut rxs {
        sel.recv(rx);
    }
    let too_many = SelectError::TooManyReceivers {
        count: MAX_RECEIVERS + 1,
    };
    assert_eq!(sel.select(), Err(too_many));
    assert_eq!(
        sel.select_timeout(PATIENCE),
        Err(SelectTimeoutError::Select(too_many))
    );
    assert_eq!(sel.try_select(), Ok(MAX_RECEIVERS));
    assert_eq!(rxs[MAX_RECEIVERS].try_recv().unwrap(), b"x");
}

#[test]
fn receivers_that_are_always_ready_are_picked_in_turn() {
    let (mut tx1, mut rx1) = typed::channel::<u32>(1 << 16).unwrap();
    let (mut tx2, mut rx2) = typed::channel::<u32>(1 << 16).unwrap();
    let mut picked = [0u32; 2];
    for i in 0..2000 {
        tx1.send(i).unwrap();
        tx2.send(i).unwrap();
        let ready = {
            let mut sel = Select::new();
            sel.recv(&mut rx1);
            sel.recv(&mut rx2);
            sel.select().unwrap()
        };
        picked[ready] += 1;
        // Keep both ready: take one message from the one picked, and let the other queue.
        let _ = [&mut rx1, &mut rx2][ready].try_recv().unwrap();
    }
    // A fair coin gives 1000 ± 100 at four standard deviations; never-the-same-one is
    // what matters.
    assert!(picked.iter().all(|&n| n > 800), "{picked:?}");
}

#[test]
fn select_macro_receives_from_the_ready_arm_or_runs_the_default() {
    let (mut numbers_tx, mut numbers) = typed::channel::<u32>(CAP).unwrap();
    let (mut words_tx, mut words) = spsc::channel(CAP).unwrap();
    words_tx.send(b"word").unwrap();
    let got = select! {
        recv(numbers) -> n => format!("number {n:?}"),
        recv(words) -> w => format!("word {:?}", w.map(String::from_utf8)),
    };
    assert_eq!(got, "word Ok(Ok(\"word\"))");
    let got = select! {
        recv(numbers) -> _n => "number",
        recv(words) -> _w => "word",
        default => "nothing",
    };
    assert_eq!(got, "nothing");
    let started = Instant::now();
    let got = select! {
        recv(numbers) -> _n => "number",
        default(Duration::from_millis(20)) => "nothing in time",
    };
    assert_eq!(got, "nothing in time");
    assert!(started.elapsed() >= Duration::from_millis(20));
    numbers_tx.send(3).unwrap();
    numbers_tx.send(4).unwrap();
    drop(numbers_tx);
    let mut sum = 0;
    loop {
        select! {
            recv(numbers) -> n => match n {
                Ok(n) => sum += n,
                Err(_) => break,
            },
            recv(words) -> w => panic!("{w:?}"),
        }
    }
    assert_eq!(sum, 7);
}
