//! Helpers shared by this crate's test binaries.
//!
//! The safe fork API refuses to fork a multi-threaded process, and libtest runs tests on
//! threads, so every test binary of this crate is `harness = false`: its `main` calls
//! [`run`] (the test kit's single-threaded runner) with its tests, which runs them one
//! after another on the main thread and exits non-zero if any failed.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_core::{Region, SharedMemory};

/// A generous bound for things that must happen "soon" (a SIGKILLed process disappearing).
/// Tests never assert that something is fast, only that it happens before this.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The single-threaded runner every test binary's `main` calls (see the module docs).
pub use shm_testkit::harness::run;

/// One shared page, zeroed, visible to every process forked after it was mapped.
pub fn shared_page() -> Region {
    Region::anonymous(4096).expect("map a shared page")
}

/// The 8-byte word number `index` of `region`.
pub fn word(region: &Region, index: usize) -> &AtomicU64 {
    region.atomic_u64(index * 8).expect("word in the page")
}

/// A 4-byte flag at byte `offset` of `region`.
pub fn flag(region: &Region, offset: usize) -> &AtomicU32 {
    region.atomic_u32(offset).expect("flag in the page")
}

/// Child side: sleeps in short naps until `flag` is non-zero. Used to keep a child alive
/// for exactly as long as the test wants, without asserting anything about time.
pub fn block_until_set(flag: &AtomicU32) {
    while flag.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A gate a parent opens for its children: a flag in a shared page.
pub struct Gate(Region);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate(shared_page())
    }

    /// Child side: waits until the gate is open.
    pub fn pass(&self) {
        block_until_set(flag(&self.0, 0));
    }

    /// Parent side: opens the gate.
    pub fn open(&self) {
        flag(&self.0, 0).store(1, Ordering::SeqCst);
    }
}

/// A child that exits with `code` once `gate` is open (and cannot before).
pub fn gated_child(gate: &Gate, code: i32) -> shm_fork::Child {
    shm_fork::fork(|| {
        gate.pass();
        code
    })
    .expect("fork")
}

/// Child side: never returns (until killed).
pub fn block_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Polls `condition` until it holds or [`DEADLINE`] passes; returns whether it held.
pub fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DEADLINE;
    let mut nap = Duration::from_millis(1);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// Whether `pid` is not (or no longer) an unreaped child of this process.
pub fn not_our_child(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid int for the kernel to write; WNOHANG never blocks.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    ret == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// Bytes of one block of the test byte streams.
pub const BLOCK: usize = 1 << 20;

/// Blocks of the long stream tests: 1 GiB in release builds, 64 MiB in debug builds
/// (where generating and hashing every byte is ~30x slower).
pub fn long_stream_blocks() -> u64 {
    if cfg!(debug_assertions) {
        64
    } else {
        1024
    }
}

/// Block `k` of a test stream: xorshift words seeded by `k`.
pub fn stream_block(k: u64, block: &mut [u8]) {
    let mut rng = shm_testkit::Rng::new(k.wrapping_add(1).wrapping_mul(0x9e37_79b9));
    for word in block.chunks_exact_mut(8) {
        word.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
}

/// FNV-1a over the 8-byte words of whole blocks.
fn hash_block(mut hash: u64, block: &[u8]) -> u64 {
    for word in block.chunks_exact(8) {
        hash = (hash ^ u64::from_le_bytes(word.try_into().unwrap())).wrapping_mul(0x100_0000_01b3);
    }
    hash
}

/// The hash a stream of `blocks` blocks starts from.
const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Writes `blocks` blocks to `out` in writes of pseudo-random sizes (1 to 70 000 bytes);
/// the hash of what it wrote.
pub fn write_stream(out: &mut impl std::io::Write, blocks: u64) -> std::io::Result<u64> {
    let mut block = vec![0u8; BLOCK];
    let mut sizes = shm_testkit::Rng::new(7);
    let mut hash = HASH_SEED;
    for k in 0..blocks {
        stream_block(k, &mut block);
        hash = hash_block(hash, &block);
        let mut at = 0;
        while at < BLOCK {
            let piece = (1 + sizes.below(70_000) as usize).min(BLOCK - at);
            let n = out.write(&block[at..at + piece])?;
            at += n;
        }
    }
    out.flush()?;
    Ok(hash)
}

/// Reads whole blocks until end of stream, in reads of pseudo-random sizes (1 to
/// 100 000 bytes): the blocks read and their hash. A stream ending mid-block is an error.
pub fn read_stream(input: &mut impl std::io::Read) -> std::io::Result<(u64, u64)> {
    let mut block = vec![0u8; BLOCK];
    let mut sizes = shm_testkit::Rng::new(11);
    let mut hash = HASH_SEED;
    let mut blocks = 0;
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            let piece = (1 + sizes.below(100_000) as usize).min(BLOCK - filled);
            let n = input.read(&mut block[filled..filled + piece])?;
            if n == 0 {
                return if filled == 0 {
                    Ok((blocks, hash))
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
            filled += n;
        }
        hash = hash_block(hash, &block);
        blocks += 1;
    }
}

/// Messages per channel of the select tests.
pub const SELECT_MESSAGES: u64 = 300;

/// The three channels of the select tests, created as memfds (to pass across `exec` or the
/// rendezvous): one of each flavor; the senders, then the receivers.
pub type ThreeSenders = (
    shm_channel::Sender<shm_channel::spsc::Spsc>,
    shm_channel::Sender<shm_channel::mpsc::Mpsc>,
    shm_channel::Sender<shm_channel::broadcast::Broadcast>,
);
pub type ThreeReceivers = (
    shm_channel::Receiver<shm_channel::spsc::Spsc>,
    shm_channel::Receiver<shm_channel::mpsc::Mpsc>,
    shm_channel::Receiver<shm_channel::broadcast::Broadcast>,
);

/// Three fresh memfd channels, one of each flavor.
pub fn three_channels() -> (ThreeSenders, ThreeReceivers) {
    let (s, rs) = shm_channel::Builder::<shm_channel::spsc::Spsc>::new(1024)
        .create_memfd()
        .unwrap();
    let (m, rm) = shm_channel::Builder::<shm_channel::mpsc::Mpsc>::new(1024)
        .create_memfd()
        .unwrap();
    let (b, rb) = shm_channel::Builder::<shm_channel::broadcast::Broadcast>::new(1024)
        .create_memfd()
        .unwrap();
    ((s, m, b), (rs, rm, rb))
}

/// The senders' side: [`SELECT_MESSAGES`] 8-byte sequence numbers on each channel,
/// round-robin, pausing now and then so the select sleeps; then closes them.
pub fn feed_three((mut s, mut m, mut b): ThreeSenders) {
    for seq in 0..SELECT_MESSAGES {
        let msg = seq.to_le_bytes();
        s.send_timeout(&msg, DEADLINE).unwrap();
        m.send_timeout(&msg, DEADLINE).unwrap();
        b.send_timeout(&msg, DEADLINE).unwrap();
        if seq % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The receivers' side: one select loop over the three until each has ended with
/// `Disconnected`, every message checked in order; the report to send back: how many
/// each gave (three `u64`s), 0 if a stream ended otherwise.
pub fn select_three((mut s, mut m, mut b): ThreeReceivers) -> Vec<u8> {
    use shm_channel::select::Select;
    use shm_channel::{RecvError, TryRecvError};
    let mut next = [0u64; 3];
    let mut ended = [false; 3];
    while ended != [true; 3] {
        let (ready, live) = {
            let mut sel = Select::new();
            let live: Vec<usize> = (0..3).filter(|&k| !ended[k]).collect();
            if !ended[0] {
                sel.recv(&mut s);
            }
            if !ended[1] {
                sel.recv(&mut m);
            }
            if !ended[2] {
                sel.recv(&mut b);
            }
            (sel.select_timeout(DEADLINE), live)
        };
        let k = live[ready.expect("a select within DEADLINE")];
        let got = match k {
            0 => s.try_recv(),
            1 => m.try_recv(),
            _ => b.try_recv().map_err(|e| match e {
                TryRecvError::Empty => TryRecvError::Empty,
                TryRecvError::Recv(shm_channel::broadcast::RecvError::Recv(
                    shm_channel::RecvError::Disconnected,
                )) => TryRecvError::Recv(RecvError::Disconnected),
                TryRecvError::Recv(_) => TryRecvError::Recv(RecvError::PeerDied),
            }),
        };
        match got {
            Ok(msg) if msg == next[k].to_le_bytes() => next[k] += 1,
            Err(TryRecvError::Recv(RecvError::Disconnected)) => ended[k] = true,
            _ => return vec![0; 24],
        }
    }
    next.iter().flat_map(|n| n.to_le_bytes()).collect()
}

/// What [`select_three`] reports when every message came, in order.
pub fn select_three_complete() -> Vec<u8> {
    [SELECT_MESSAGES; 3]
        .iter()
        .flat_map(|n| n.to_le_bytes())
        .collect()
}
