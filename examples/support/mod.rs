//! What the pipeline, fan-in and fan-out examples share: pipes with 64 KiB buffers on both
//! ends (the best pipe variant: whole blocks per `read` and `write`), a reader of whole
//! fixed-size items, and the figures of one run (median and min–max over repetitions run
//! alternately, and the ratio shm / pipe).

#![allow(dead_code)]

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::os::fd::{FromRawFd, OwnedFd};

/// The buffer of each pipe end: 64 KiB per `read` and per `write` (a pipe's default
/// capacity on Linux).
pub const PIPE_BUFFER: usize = 1 << 16;

/// A new pipe, `(read end, write end)`, both close-on-exec.
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for `pipe2` to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned both descriptors to us; each is owned once.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(r), File::from(w)))
}

/// A pipe's write end behind a 64 KiB buffer.
pub fn buffered(file: File) -> BufWriter<File> {
    BufWriter::with_capacity(PIPE_BUFFER, file)
}

/// Reads `A`s from `input` until end-of-file, [`PIPE_BUFFER`] bytes per `read`, handing
/// every run of whole items to `each` (a partial item waits for the rest of its bytes).
/// `A` must not need more than 8-byte alignment.
pub fn read_items<A: bytemuck::Pod>(
    input: &mut impl Read,
    mut each: impl FnMut(&[A]),
) -> io::Result<()> {
    let size = std::mem::size_of::<A>();
    assert!(std::mem::align_of::<A>() <= 8 && size > 0 && size <= PIPE_BUFFER);
    // u64 words: the buffer is 8-aligned, so whole items at its start can be viewed as `A`s.
    let mut words = vec![0u64; PIPE_BUFFER / 8];
    let mut filled = 0;
    loop {
        let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let n = input.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let whole = filled / size * size;
        each(bytemuck::cast_slice(&buf[..whole]));
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
}

/// Runs each of `runs` in turn (A B C A B C …), `reps` times; the rates of each.
pub fn alternate<E>(
    reps: usize,
    runs: &mut [&mut dyn FnMut() -> Result<f64, E>],
) -> Result<Vec<Vec<f64>>, E> {
    let mut rates = vec![Vec::new(); runs.len()];
    for _ in 0..reps {
        for (run, rates) in runs.iter_mut().zip(&mut rates) {
            rates.push(run()?);
        }
    }
    Ok(rates)
}

/// Median, min and max.
pub fn summary(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

/// The header of [`row`]'s table, for rates in `unit`.
pub fn header(what: &str, unit: &str) {
    println!(
        "{what:<28} | shm {unit} median [min-max]  | buffered pipe {unit} median [min-max] | shm/pipe median [min-max]"
    );
}

/// One line of figures: the rates of shm and of the buffered pipe (samples of one run,
/// taken alternately), and their ratio: of the medians, and min–max of the per-repetition
/// ratios (each shm run against the pipe run right after it).
pub fn row(what: &str, shm: &[f64], pipe: &[f64]) {
    let (s, p) = (summary(shm), summary(pipe));
    let ratios: Vec<f64> = shm.iter().zip(pipe).map(|(s, p)| s / p).collect();
    let r = summary(&ratios);
    println!(
        "{what:<28} | {:>8.2} [{:.2}-{:.2}] | {:>8.2} [{:.2}-{:.2}] | {:>5.2}x [{:.2}-{:.2}]",
        s.0,
        s.1,
        s.2,
        p.0,
        p.1,
        p.2,
        s.0 / p.0,
        r.1,
        r.2
    );
}
