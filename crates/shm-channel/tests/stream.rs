//! The byte stream in one process (two threads): bytes intact through odd write and read
//! sizes, end of stream, broken pipe, timeouts, copies not owned. Across fork and exec:
//! shm-fork's `tests/stream.rs` and `tests/exec.rs`.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use shm_channel::stream::{is_peer_died, pipe, pipe_memfd, StreamError};
use shm_channel::Endpoint;
use shm_testkit::Rng;

/// Pseudo-random bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn bytes_arrive_intact_through_odd_write_and_read_sizes() {
    let data = bytes(4 << 20, 1);
    let (mut writer, mut reader) = pipe(1 << 12).unwrap();
    let sent = data.clone();
    let thread = std::thread::spawn(move || {
        let mut sizes = Rng::new(2);
        let mut at = 0;
        while at < sent.len() {
            let piece = (1 + sizes.below(9000) as usize).min(sent.len() - at);
            at += writer.write(&sent[at..at + piece]).unwrap();
        }
    });
    let mut got = Vec::new();
    let mut sizes = Rng::new(3);
    loop {
        let mut buf = vec![0u8; 1 + sizes.below(5000) as usize];
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    thread.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes changed on the way");
}

#[test]
fn a_write_larger_than_the_ring_is_split() {
    let (mut writer, mut reader) = pipe(1 << 10).unwrap();
    let data = bytes(100_000, 4);
    let sent = data.clone();
    let thread = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    thread.join().unwrap();
    assert!(got == data);
}

#[test]
fn end_of_stream_after_the_writer_is_dropped() {
    let (mut writer, mut reader) = pipe_memfd(4096).unwrap();
    writer.write_all(b"last words").unwrap();
    drop(writer);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last words");
    assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0);
}

#[test]
fn broken_pipe_after_the_reader_is_dropped() {
    let (mut writer, reader) = pipe(4096).unwrap();
    drop(reader);
    let err = writer.write(b"nobody").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    assert!(!is_peer_died(&err));
}

#[test]
fn timeouts_are_timed_out_errors() {
    let (mut writer, mut reader) = pipe(1 << 10).unwrap();
    reader.set_read_timeout(Some(Duration::from_millis(1)));
    assert_eq!(
        reader.read(&mut [0; 8]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    writer.set_write_timeout(Some(Duration::from_millis(1)));
    let err = loop {
        if let Err(err) = writer.write(&[0; 200]) {
            break err;
        }
    };
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn empty_reads_and_writes_do_nothing() {
    let (mut writer, mut reader) = pipe(4096).unwrap();
    assert_eq!(writer.write(&[]).unwrap(), 0);
    assert_eq!(reader.read(&mut []).unwrap(), 0);
    writer.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    reader.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"x");
}

#[test]
fn ends_handed_away_are_not_owner_errors() {
    let (mut writer, mut reader) = pipe(4096).unwrap();
    let init = shm_core::liveness::ProcessIdentity::of_pid(1).unwrap();
    writer.hand_over(init).unwrap();
    reader.hand_over(init).unwrap();
    let err = writer.write(b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let inner = err.get_ref().unwrap().downcast_ref::<StreamError>();
    assert_eq!(inner, Some(&StreamError::NotOwner));
    assert_eq!(
        reader.read(&mut [0; 4]).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn tiny_rings_are_refused() {
    assert!(pipe(32).is_err());
}

/// rtrb's `write_and_read` (tests/write_and_read.rs), on a stream: reads take every byte
/// at hand up to the buffer, across the frames of several writes, and keep the rest of a
/// frame for the next read; a non-blocking write takes what fits.
#[test]
fn reads_take_everything_at_hand_as_rtrb_write_and_read() {
    let (mut p, mut c) = pipe(64).unwrap();
    p.set_nonblocking(true);
    assert_eq!(p.write(&[10, 11]).unwrap(), 2);
    assert!(p.flush().is_ok());
    let mut buf = [0];
    assert_eq!(c.read(&mut buf).unwrap(), 1);
    assert_eq!(buf, [10]);
    assert_eq!(p.write(&[12, 99]).unwrap(), 2);
    let mut buf = [0, 0];
    assert_eq!(
        c.read(&mut buf).unwrap(),
        2,
        "11 (left of a frame) and 12 (the next)"
    );
    assert_eq!(buf, [11, 12]);
    assert_eq!(p.write(&[13, 14]).unwrap(), 2);
    let mut buf = [0];
    assert_eq!(c.read(&mut buf).unwrap(), 1);
    assert_eq!(buf, [99]);
    let mut buf = [20, 21, 22];
    assert_eq!(c.read(&mut buf).unwrap(), 2);
    assert_eq!(buf, [13, 14, 22]);
}

/// rtrb's `push_pop_partial_slice` (tests/chunks.rs), on a stream: a read pops every byte
/// available up to the buffer (`[1, 2, 3, 4, 5]` of two writes); a non-blocking write of
/// more than the ring holds takes what fits; a short buffer takes its length.
#[test]
fn a_read_pops_a_partial_slice_as_rtrb_push_pop_partial_slice() {
    let (mut p, mut c) = pipe(64).unwrap();
    p.set_nonblocking(true);
    let mut buf = [0; 64];
    assert_eq!(p.write(&[1, 2, 3]).unwrap(), 3);
    assert_eq!(p.write(&[4, 5]).unwrap(), 2);
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[1, 2, 3, 4, 5]);
    // A write larger than the ring: a frame of what fits, then `WouldBlock` once full.
    let big: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let mut pushed = 0;
    loop {
        match p.write(&big[pushed..]) {
            Ok(n) => pushed += n,
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::WouldBlock);
                break;
            }
        }
    }
    assert!(pushed > 0 && pushed < big.len(), "{pushed} bytes pushed");
    let n = c.read(&mut buf).unwrap();
    assert_eq!(n, pushed, "every byte written, in one read");
    assert_eq!(&buf[..n], &big[..n]);
    assert_eq!(p.write(&[1, 2, 3, 4, 5]).unwrap(), 5);
    let mut short = [0; 3];
    assert_eq!(c.read(&mut short).unwrap(), 3);
    assert_eq!(short, [1, 2, 3]);
    assert_eq!(c.read(&mut buf).unwrap(), 2);
    assert_eq!(buf[..2], [4, 5]);
}

#[test]
fn nonblocking_ends_say_would_block_and_still_see_the_end() {
    let (mut writer, mut reader) = pipe(64).unwrap();
    reader.set_nonblocking(true);
    writer.set_nonblocking(true);
    let mut buf = [0; 8];
    assert_eq!(
        reader.read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    while writer.write(&[7; 16]).is_ok() {}
    assert_eq!(
        writer.write(&[7]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(reader.read(&mut buf).unwrap(), 8);
    drop(writer);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.iter().all(|&b| b == 7) && !rest.is_empty());
    assert_eq!(
        reader.read(&mut buf).unwrap(),
        0,
        "end of stream, not WouldBlock"
    );
}
