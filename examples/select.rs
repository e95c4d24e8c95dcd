//! Select: one process waiting on several channels at once — whichever has something —
//! with no thread and no descriptor per channel, and no CPU used while nothing comes.
//!
//! ```text
//! cargo run --release --example select                            # the tour
//! cargo run --release --example select -- measure [messages] [reps]
//! ```
//!
//! The tour: three forked workers each send results through a channel of their own (two
//! typed, one of bytes); one of them dies without a word. The parent selects over the
//! channels still open, receives from the one that is ready, and hears the end of each
//! stream — `Disconnected` for the workers that finished, `PeerDied` for the one that died,
//! within the 10 ms slow-check bound. Then a `select!` with a timeout, and the CPU time of a
//! select that waits a second for nothing.
//!
//! `measure` (alternated A B C …, median and min–max of `reps` runs): a select over two
//! busy channels against a plain `recv` loop on one and a `try_recv` polling loop over two
//! (one producer process each time, sending round-robin to the channels); the CPU time of a select idle for a
//! second on 1, 8 and 64 channels against a plain `recv_timeout`; how long after a
//! sender's `SIGKILL` a select over 64 channels wakes.

use shm_channel::{Receiver, Sender};
use std::time::{Duration, Instant};

use shm_channel::select::{Select, SelectTimeoutError, Selectable};
use shm_channel::{select, spsc, typed, RecvError, TryRecvError};
use shm_fork::{fork_with, Child};

#[path = "support/mod.rs"]
mod support;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => tour(),
        Some("measure") => {
            let messages: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
            let reps: usize = args.next().map_or(Ok(5), |a| a.parse())?;
            measure(messages, reps)
        }
        Some(other) => Err(format!("unknown mode {other:?}: none, or `measure`").into()),
    }
}

/// One worker's channel, as the parent receives from it.
enum Results {
    Typed(typed::Receiver<(u32, u64)>),
    Bytes(Receiver<spsc::Spsc>),
}

fn tour() -> Result<(), Failure> {
    // Worker 0 and 1 send typed results, worker 2 text; worker 1 dies half-way.
    let (tx0, rx0) = typed::channel::<(u32, u64)>(4096)?;
    let (tx1, rx1) = typed::channel::<(u32, u64)>(4096)?;
    let (tx2, rx2) = spsc::channel(4096)?;
    let mut children: Vec<Child> = Vec::new();
    for (id, tx) in [(0u32, tx0), (1, tx1)] {
        children.push(fork_with(tx, move |mut tx| {
            for i in 1..=5u64 {
                std::thread::sleep(Duration::from_millis(20 * u64::from(id + 1)));
                tx.send((id, i * i)).unwrap();
                if id == 1 && i == 3 {
                    std::process::abort(); // dies without dropping its sender
                }
            }
            0
        })?);
    }
    children.push(fork_with(tx2, |mut tx| {
        for word in ["select", "waits", "on", "all"] {
            std::thread::sleep(Duration::from_millis(15));
            tx.send(word.as_bytes()).unwrap();
        }
        0
    })?);

    let mut channels = [
        Some(Results::Typed(rx0)),
        Some(Results::Typed(rx1)),
        Some(Results::Bytes(rx2)),
    ];
    while channels.iter().any(Option::is_some) {
        // Build a select over the channels still open: it borrows them, and is gone
        // before we receive.
        let (ready, live) = {
            let mut sel = Select::new();
            let mut live = Vec::new();
            for (worker, channel) in channels.iter_mut().enumerate() {
                match channel {
                    Some(Results::Typed(rx)) => sel.recv(rx),
                    Some(Results::Bytes(rx)) => sel.recv(rx),
                    None => continue,
                };
                live.push(worker);
            }
            (sel.select_timeout(Duration::from_secs(10))?, live)
        };
        let worker = live[ready];
        let ended = match channels[worker].as_mut() {
            Some(Results::Typed(rx)) => match rx.try_recv() {
                Ok((id, value)) => {
                    println!("worker {id}: {value}");
                    None
                }
                Err(error) => Some(error.to_string()),
            },
            Some(Results::Bytes(rx)) => match rx.try_recv() {
                Ok(word) => {
                    println!("worker {worker}: {}", String::from_utf8_lossy(&word));
                    None
                }
                Err(error) => Some(error.to_string()),
            },
            None => None,
        };
        if let Some(why) = ended {
            println!("worker {worker}'s channel ended: {why}");
            channels[worker] = None;
        }
    }
    for mut child in children {
        child.wait()?;
    }

    // `select!` over two quiet channels, with a timeout.
    let (_keep_a, mut a) = spsc::channel(4096)?;
    let (_keep_b, mut b) = typed::channel::<u64>(4096)?;
    let started = Instant::now();
    select! {
        recv(a) -> m => println!("a: {m:?}"),
        recv(b) -> v => println!("b: {v:?}"),
        default(Duration::from_millis(50)) => {
            println!("select!: nothing in {:?}", started.elapsed());
        }
    }

    // A select with nothing to do sleeps.
    let used = idle_cpu(&mut [&mut a, &mut b], Duration::from_secs(1))?;
    println!("CPU time of a select idle for 1 s over 2 channels: {used:?}");
    Ok(())
}

/// The CPU time of a select over `receivers` that waits `wait` for nothing.
fn idle_cpu(receivers: &mut [&mut dyn Selectable], wait: Duration) -> Result<Duration, Failure> {
    let mut sel = Select::new();
    for rx in receivers.iter_mut() {
        sel.recv(&mut **rx);
    }
    let before = shm_testkit::process_cpu_time();
    let got = sel.select_timeout(wait);
    let used = shm_testkit::process_cpu_time() - before;
    assert_eq!(got, Err(SelectTimeoutError::Timeout), "nothing was sent");
    Ok(used)
}

fn measure(messages: u64, reps: usize) -> Result<(), Failure> {
    println!(
        "{messages} messages of 8 B per run, {reps} runs each, alternated, on {} cores",
        shm_core::notify::available_cores()
    );
    let rates = support::alternate(
        reps,
        &mut [
            &mut || select_two(messages),
            &mut || recv_one(messages),
            &mut || poll_two(messages),
        ],
    )?;
    let line = |what: &str, rates: &[f64]| {
        let (m, lo, hi) = support::summary(rates);
        println!("{what:<40} {m:>7.2} M msg/s [{lo:.2}-{hi:.2}]");
    };
    line("select over 2 busy channels", &rates[0]);
    line("recv loop on 1 channel", &rates[1]);
    line("try_recv polling loop over 2 channels", &rates[2]);
    ratio("select / recv loop", &rates[0], &rates[1]);
    ratio("select / polling loop", &rates[0], &rates[2]);

    for count in [1usize, 8, 64] {
        let mut cpu = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            let (_senders, mut receivers): (Vec<_>, Vec<_>) = (0..count)
                .map(|_| spsc::channel(4096))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .unzip();
            let mut refs: Vec<&mut dyn Selectable> = receivers
                .iter_mut()
                .map(|rx| rx as &mut dyn Selectable)
                .collect();
            cpu[0].push(idle_cpu(&mut refs, Duration::from_secs(1))?.as_secs_f64() * 1e3);
            let before = shm_testkit::process_cpu_time();
            let got = receivers[0].recv_timeout(Duration::from_secs(1));
            assert!(got.is_err());
            cpu[1].push((shm_testkit::process_cpu_time() - before).as_secs_f64() * 1e3);
        }
        let (s, slo, shi) = support::summary(&cpu[0]);
        let (r, rlo, rhi) = support::summary(&cpu[1]);
        println!(
            "CPU time idle 1 s, {count:>2} channels: select {s:.2} ms [{slo:.2}-{shi:.2}], \
             recv_timeout on one {r:.2} ms [{rlo:.2}-{rhi:.2}]"
        );
    }

    let mut woke = Vec::new();
    for _ in 0..reps {
        woke.push(wake_after_kill()?.as_secs_f64() * 1e3);
    }
    let (m, lo, hi) = support::summary(&woke);
    println!("select over 64 channels woken after a sender's SIGKILL: {m:.2} ms [{lo:.2}-{hi:.2}]");
    Ok(())
}

/// Median of the per-repetition ratios `a / b`, and their min–max.
fn ratio(what: &str, a: &[f64], b: &[f64]) {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    let (m, lo, hi) = support::summary(&ratios);
    println!("{what:<40} {m:>7.2}x [{lo:.2}-{hi:.2}]");
}

/// A producer process sending `count` messages round-robin over `senders` (channel `k`
/// gets the 8-byte sequence numbers `0, 1, 2, …` of its own), then closing them.
fn producer(senders: Vec<Sender<spsc::Spsc>>, count: u64) -> Result<Child, Failure> {
    Ok(fork_with(senders, move |mut senders| {
        let n = senders.len() as u64;
        for i in 0..count {
            senders[(i % n) as usize]
                .send(&(i / n).to_le_bytes())
                .unwrap();
        }
        0
    })?)
}

/// Checks that `m` is sequence number `*next`, and counts it.
fn check(next: &mut u64, m: &[u8]) {
    assert_eq!(m, next.to_le_bytes(), "lost or reordered");
    *next += 1;
}

fn reap(children: Vec<Child>) -> Result<(), Failure> {
    for mut child in children {
        assert!(child.wait()?.success());
    }
    Ok(())
}

/// M msg/s of a select loop over two channels, both fed by one producer (two processes in
/// all, as for the `recv` loop).
fn select_two(messages: u64) -> Result<f64, Failure> {
    let (tx_a, mut a) = spsc::channel(1 << 16)?;
    let (tx_b, mut b) = spsc::channel(1 << 16)?;
    let start = Instant::now();
    let children = vec![producer(vec![tx_a, tx_b], messages)?];
    let (mut next, mut open) = ([0u64; 2], [true; 2]);
    while open[0] || open[1] {
        let ready = {
            let mut sel = Select::new();
            if open[0] {
                sel.recv(&mut a);
            }
            if open[1] {
                sel.recv(&mut b);
            }
            sel.select()?
        };
        let which = if open[0] { ready } else { 1 };
        let rx = if which == 0 { &mut a } else { &mut b };
        match rx.try_recv() {
            Ok(m) => check(&mut next[which], &m),
            Err(TryRecvError::Recv(RecvError::Disconnected)) => open[which] = false,
            Err(other) => return Err(format!("{other:?}").into()),
        }
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64() / 1e6;
    assert_eq!(next, [messages / 2; 2]);
    reap(children)?;
    Ok(rate)
}

/// M msg/s of a plain `recv` loop on one channel fed by one producer.
fn recv_one(messages: u64) -> Result<f64, Failure> {
    let (tx, mut rx) = spsc::channel(1 << 16)?;
    let start = Instant::now();
    let children = vec![producer(vec![tx], messages)?];
    let mut next = 0;
    loop {
        match rx.recv() {
            Ok(m) => check(&mut next, &m),
            Err(RecvError::Disconnected) => break,
            Err(other) => return Err(format!("{other:?}").into()),
        }
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64() / 1e6;
    assert_eq!(next, messages);
    reap(children)?;
    Ok(rate)
}

/// M msg/s of a `try_recv` loop over two channels fed by one producer (what a user without
/// a select writes), spinning while both are empty.
fn poll_two(messages: u64) -> Result<f64, Failure> {
    let (tx_a, a) = spsc::channel(1 << 16)?;
    let (tx_b, b) = spsc::channel(1 << 16)?;
    let start = Instant::now();
    let children = vec![producer(vec![tx_a, tx_b], messages)?];
    let mut rxs = [a, b];
    let (mut next, mut open) = ([0u64; 2], [true; 2]);
    while open[0] || open[1] {
        let mut idle = true;
        for (i, rx) in rxs.iter_mut().enumerate() {
            if !open[i] {
                continue;
            }
            match rx.try_recv() {
                Ok(m) => {
                    check(&mut next[i], &m);
                    idle = false;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Recv(RecvError::Disconnected)) => open[i] = false,
                Err(other) => return Err(format!("{other:?}").into()),
            }
        }
        if idle {
            std::hint::spin_loop();
        }
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64() / 1e6;
    assert_eq!(next, [messages / 2; 2]);
    reap(children)?;
    Ok(rate)
}

/// How long after a sender's `SIGKILL` a select over 64 channels (one of them the dead
/// sender's) wakes, and the receive says `PeerDied`.
fn wake_after_kill() -> Result<Duration, Failure> {
    let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..64)
        .map(|_| spsc::channel(4096))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let mut senders = senders.into_iter();
    let victim = senders.next().ok_or("no channel")?;
    let mut child = fork_with(victim, |_tx| loop {
        std::thread::sleep(Duration::from_secs(1));
    })?;
    // Killed by another thread while the select sleeps (no fork happens meanwhile).
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: plain syscall with integer arguments; `pid` is our child, not reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0);
        Instant::now()
    });
    let ready = {
        let mut sel = Select::new();
        for rx in &mut receivers {
            sel.recv(rx);
        }
        sel.select_timeout(Duration::from_secs(10))?
    };
    let woke = Instant::now();
    let killed = killer.join().map_err(|_| "the killer thread panicked")?;
    child.wait()?;
    let took = woke.saturating_duration_since(killed);
    assert_eq!(ready, 0);
    assert_eq!(
        receivers[0].try_recv(),
        Err(TryRecvError::Recv(RecvError::PeerDied))
    );
    drop(senders);
    Ok(took)
}
