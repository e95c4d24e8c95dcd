//! The POSIX `mmap` reference program, in Rust.
//!
//! One anonymous and one `/dev/zero`-backed shared mapping of 4096 bytes, `"string 1"`
//! written to both, then `fork`. The child prints both, sleeps, and prints both again; the
//! parent, after a shorter sleep, writes `"string 2"` to both and prints them. The child's
//! second line shows `string 2`: the mappings are shared, not copied on fork.
//!
//! ```text
//! cargo run --example seed_mmap              # the reference delays: parent 2 s, child 3 s
//! cargo run --example seed_mmap -- --fast    # 200 ms and 300 ms
//! ```

use std::io::Write;
use std::time::Duration;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult};
use shm_ipc::core::{Region, SharedMemory};

/// Bytes the reference program maps.
const MAP_LEN: usize = 4096;

fn main() -> Result<(), shm_ipc::MainError> {
    let fast = std::env::args().skip(1).any(|arg| arg == "--fast");
    let (parent_delay, child_delay) = if fast {
        (Duration::from_millis(200), Duration::from_millis(300))
    } else {
        (Duration::from_secs(2), Duration::from_secs(3))
    };

    let anon = Region::anonymous(MAP_LEN)?;
    let zero = Region::dev_zero(MAP_LEN)?;
    put_str(&anon, "string 1")?;
    put_str(&zero, "string 1")?;
    print_both(&anon, &zero)?;

    // SAFETY: this program is single-threaded, so no lock can be held across the fork; the
    // child only reads the mappings, prints, sleeps and `_exit`s.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match child(&anon, &zero, child_delay) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // SAFETY: ends the child without running the parent's destructors a second time
            // (the mappings are unmapped by the kernel at exit).
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            std::thread::sleep(parent_delay);
            put_str(&anon, "string 2")?;
            put_str(&zero, "string 2")?;
            print_both(&anon, &zero)?;
            // Unlike the C original, reap the child so it never outlives us as an orphan.
            waitpid(child, None)?;
        }
    }
    Ok(())
}

fn child(anon: &Region, zero: &Region, delay: Duration) -> Result<(), Box<dyn std::error::Error>> {
    print_both(anon, zero)?;
    std::thread::sleep(delay);
    print_both(anon, zero)?;
    Ok(())
}

/// `strcpy` into the region: the bytes, then a NUL.
fn put_str(region: &Region, text: &str) -> Result<(), shm_ipc::core::AccessError> {
    region.write_bytes(0, text.as_bytes())?;
    region.write_bytes(text.len(), &[0])
}

/// Reads the NUL-terminated string at the start of the region (copied out first).
fn get_str(region: &Region) -> Result<String, shm_ipc::core::AccessError> {
    let mut buf = [0u8; 64];
    region.read_bytes(0, &mut buf)?;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn print_both(anon: &Region, zero: &Region) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "PID {}:\tanonymous {}, zero-backed {}",
        getpid(),
        get_str(anon)?,
        get_str(zero)?
    )?;
    out.flush()?;
    Ok(())
}
