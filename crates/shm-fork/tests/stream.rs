//! The byte stream across a real fork: a long stream checksums equal (1 GiB in release
//! builds, 64 MiB in debug builds: `common::long_stream_blocks`), and a peer killed
//! mid-stream is an error of its own, never a silent end of stream.

mod common;

use std::io::{ErrorKind, Read, Write};

use std::sync::atomic::Ordering;

use common::{
    block_forever, eventually, flag, read_stream, shared_page, word, write_stream, BLOCK,
};
use shm_channel::stream::{is_peer_died, pipe};
use shm_fork::{fork_with, ExitStatus};

fn main() {
    common::run(&[
        (
            "long_stream_from_child_checksums_equal",
            long_stream_from_child_checksums_equal,
        ),
        (
            "long_stream_to_child_checksums_equal",
            long_stream_to_child_checksums_equal,
        ),
        (
            "writer_killed_mid_stream_is_peer_died_not_eof",
            writer_killed_mid_stream_is_peer_died_not_eof,
        ),
        (
            "reader_killed_mid_stream_is_peer_died_not_broken_pipe",
            reader_killed_mid_stream_is_peer_died_not_broken_pipe,
        ),
    ]);
}

fn long_stream_from_child_checksums_equal() {
    let blocks = common::long_stream_blocks();
    let page = shared_page();
    let (writer, mut reader) = pipe(1 << 20).unwrap();
    let mut child = fork_with(writer, |mut writer| {
        let hash = write_stream(&mut writer, blocks).expect("write the stream");
        word(&page, 0).store(hash, Ordering::SeqCst);
        0
    })
    .unwrap();
    let (read, hash) = read_stream(&mut reader).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(read, blocks);
    assert_eq!(hash, word(&page, 0).load(Ordering::SeqCst));
}

fn long_stream_to_child_checksums_equal() {
    let blocks = common::long_stream_blocks();
    let page = shared_page();
    let (mut writer, reader) = pipe(1 << 16).unwrap();
    let mut child = fork_with(reader, |mut reader| {
        let (read, hash) = read_stream(&mut reader).expect("read the stream");
        word(&page, 0).store(read, Ordering::SeqCst);
        word(&page, 1).store(hash, Ordering::SeqCst);
        0
    })
    .unwrap();
    let hash = write_stream(&mut writer, blocks).unwrap();
    drop(writer);
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(word(&page, 0).load(Ordering::SeqCst), blocks);
    assert_eq!(word(&page, 1).load(Ordering::SeqCst), hash);
}

fn writer_killed_mid_stream_is_peer_died_not_eof() {
    let (writer, mut reader) = pipe(1 << 16).unwrap();
    let mut child = fork_with(writer, |mut writer| {
        writer.write_all(&[5; 1000]).expect("write");
        block_forever()
    })
    .unwrap();
    let mut got = [0u8; 1000];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(got, [5; 1000]);
    child.kill().unwrap();
    let err = reader.read(&mut got).unwrap_err();
    assert!(is_peer_died(&err), "{err}");
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
}

fn reader_killed_mid_stream_is_peer_died_not_broken_pipe() {
    let page = shared_page();
    let (mut writer, reader) = pipe(1 << 16).unwrap();
    let mut child = fork_with(reader, |mut reader| {
        let mut first = vec![0u8; BLOCK / 16];
        reader.read_exact(&mut first).expect("read");
        flag(&page, 0).store(1, Ordering::SeqCst);
        block_forever()
    })
    .unwrap();
    writer.write_all(&vec![1; BLOCK / 16]).unwrap();
    assert!(eventually(|| flag(&page, 0).load(Ordering::SeqCst) == 1));
    child.kill().unwrap();
    let err = loop {
        if let Err(err) = writer.write(&[1; 4096]) {
            break err;
        }
    };
    assert!(is_peer_died(&err), "{err}");
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
}
