//! shm-core across a real `fork`: regions are shared both ways, futexes wake across
//! processes, and bad input gets typed errors.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm_core::notify::{Futex, FutexError, FutexWake};
use shm_core::{Region, RegionError, RegionKind, SharedMemory};
use shm_testkit::fork_and_wait;

/// Bound on every wait in this file, so a broken implementation fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

fn regions() -> Vec<Region> {
    vec![
        Region::anonymous(4096).unwrap(),
        Region::dev_zero(4096).unwrap(),
        Region::memfd("across-fork", 4096).unwrap(),
    ]
}

/// Spins (with sleeps) until the word at `offset` holds `value`, or `PATIENCE` runs out.
fn await_word(region: &Region, offset: usize, value: u32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if region.atomic_u32(offset).unwrap().load(Ordering::SeqCst) == value {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

#[test]
fn writes_are_seen_both_ways_in_every_region_kind() {
    for region in regions() {
        let kind = region.kind();
        region.write_bytes(100, b"from parent").unwrap();
        let code = fork_and_wait(
            || {
                let mut buf = [0u8; 11];
                region.read_bytes(100, &mut buf).unwrap();
                if &buf != b"from parent" {
                    return 1;
                }
                region.write_bytes(200, b"from child").unwrap();
                region.atomic_u32(0).unwrap().store(1, Ordering::SeqCst);
                // Now wait for the parent's second write, made after the fork.
                if !await_word(&region, 4, 1) {
                    return 2;
                }
                region.read_bytes(300, &mut buf).unwrap();
                if &buf != b"parent, too" {
                    return 3;
                }
                0
            },
            |_| {
                assert!(await_word(&region, 0, 1), "{kind:?}: child never wrote");
                let mut buf = [0u8; 10];
                region.read_bytes(200, &mut buf).unwrap();
                assert_eq!(&buf, b"from child", "{kind:?}");
                region.write_bytes(300, b"parent, too").unwrap();
                region.atomic_u32(4).unwrap().store(1, Ordering::SeqCst);
            },
        );
        assert_eq!(code, 0, "{kind:?}: child failed");
    }
}

#[test]
fn dev_zero_region_starts_zeroed() {
    let region = Region::options(3 * 4096).populate(true).dev_zero().unwrap();
    assert_eq!(region.kind(), RegionKind::DevZero);
    let mut bytes = vec![0xffu8; region.len()];
    region.read_bytes(0, &mut bytes).unwrap();
    assert!(bytes.iter().all(|b| *b == 0));
}

#[test]
fn memfd_cannot_be_shrunk_or_grown() {
    let region = Region::memfd("sealed", 8192).unwrap();
    let fd = region.fd().unwrap().as_raw_fd();
    for len in [0, 4096, 1 << 20] {
        // SAFETY: plain call on a descriptor the region keeps open.
        let ret = unsafe { libc::ftruncate(fd, len) };
        assert_eq!(ret, -1, "ftruncate to {len} succeeded on a sealed memfd");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM)
        );
    }
    // Still usable at full length.
    region.write_bytes(8191, &[1]).unwrap();
}

#[test]
fn unsealed_memfd_is_refused_on_attach() {
    // SAFETY: plain syscall with a static NUL-terminated name.
    let raw = unsafe { libc::memfd_create(c"unsealed".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: the kernel just returned `raw` to us.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: plain call on the descriptor we own.
    assert_eq!(unsafe { libc::ftruncate(raw, 4096) }, 0);
    let err = Region::options(0).attach_memfd(fd).unwrap_err();
    assert!(matches!(err, RegionError::NotSealed { .. }), "{err}");
}

#[test]
fn futex_wake_in_one_process_releases_wait_in_the_other() {
    let region = Region::anonymous(4096).unwrap();
    let code = fork_and_wait(
        || {
            let futex = Futex::from_atomic(region.atomic_u32(0).unwrap());
            let ready = region.atomic_u32(4).unwrap();
            ready.store(1, Ordering::SeqCst);
            let deadline = Instant::now() + PATIENCE;
            while futex.word().load(Ordering::SeqCst) == 0 {
                match futex.wait(0, Some(deadline)) {
                    Ok(FutexWake::Woken | FutexWake::ValueChanged) => {}
                    Err(_) => return 1,
                }
            }
            0
        },
        |_| {
            assert!(await_word(&region, 4, 1));
            // Give the child time to go to sleep, so the wake has a sleeper to release.
            std::thread::sleep(Duration::from_millis(50));
            let futex = Futex::from_atomic(region.atomic_u32(0).unwrap());
            futex.word().store(1, Ordering::SeqCst);
            futex.wake(1).unwrap();
        },
    );
    assert_eq!(code, 0);
}

#[test]
fn futex_wait_with_deadline_times_out() {
    let region = Region::anonymous(4096).unwrap();
    let futex = Futex::from_atomic(region.atomic_u32(0).unwrap());
    let start = Instant::now();
    let result = futex.wait(0, Some(start + Duration::from_millis(30)));
    assert!(matches!(result, Err(FutexError::TimedOut)));
    assert!(start.elapsed() >= Duration::from_millis(30));
    let already_passed = futex.wait(0, Some(start));
    assert!(matches!(already_passed, Err(FutexError::TimedOut)));
}

#[test]
fn zero_length_is_refused() {
    assert!(matches!(Region::anonymous(0), Err(RegionError::ZeroLength)));
    assert!(matches!(Region::dev_zero(0), Err(RegionError::ZeroLength)));
    assert!(matches!(
        Region::memfd("z", 0),
        Err(RegionError::ZeroLength)
    ));
}

#[test]
fn overflowing_length_is_refused() {
    for len in [usize::MAX, usize::MAX - 4095, isize::MAX as usize] {
        assert!(
            matches!(
                Region::anonymous(len),
                Err(RegionError::LengthOverflow { .. })
            ),
            "{len}"
        );
    }
}

#[test]
fn length_the_kernel_refuses_is_a_map_error() {
    // 2^60 bytes: far beyond what the kernel lets one process map.
    let err = Region::anonymous(1 << 60).unwrap_err();
    assert!(matches!(err, RegionError::MapFailed { .. }), "{err}");
}

#[test]
fn huge_pages_without_a_pool_are_a_clear_error() {
    let pool: u64 = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let result = Region::options(4096).huge_pages(true).anonymous();
    if pool == 0 {
        let err = result.unwrap_err();
        assert!(
            matches!(err, RegionError::HugePagesUnavailable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("huge pages"));
    } else {
        let region = result.unwrap();
        assert_eq!(region.len() % (2 << 20), 0);
    }
}

#[test]
fn dev_zero_and_memfd_unavailable_are_typed_errors() {
    // With no descriptors allowed, neither /dev/zero nor a memfd can be opened. Done in a
    // child so the limit does not leak into the test harness.
    let region = Region::anonymous(4096).unwrap();
    let code = fork_and_wait(
        || {
            let limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain call with a valid rlimit on our stack.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                return 10;
            }
            let dev_zero = matches!(
                Region::dev_zero(4096),
                Err(RegionError::DevZeroUnavailable(_))
            );
            let memfd = matches!(
                Region::memfd("x", 4096),
                Err(RegionError::MemfdUnavailable(_))
            );
            region.atomic_u32(0).unwrap().store(
                u32::from(dev_zero) | (u32::from(memfd) << 1),
                Ordering::SeqCst,
            );
            0
        },
        |_| {},
    );
    assert_eq!(code, 0);
    assert_eq!(region.atomic_u32(0).unwrap().load(Ordering::SeqCst), 0b11);
}

#[test]
fn out_of_range_and_misaligned_access_is_refused() {
    use shm_core::AccessError;
    let region = Region::options(4096).guard_pages(true).anonymous().unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(
        region.read_bytes(4090, &mut buf),
        Err(AccessError::OutOfBounds { .. })
    ));
    assert!(matches!(
        region.write_bytes(usize::MAX, &buf),
        Err(AccessError::OutOfBounds { .. })
    ));
    assert!(matches!(
        region.atomic_u64(4092),
        Err(AccessError::Misaligned { .. })
    ));
    assert!(matches!(
        region.atomic_u64(4096),
        Err(AccessError::OutOfBounds { .. })
    ));
    assert!(matches!(
        region.atomic_u32(2),
        Err(AccessError::Misaligned { align: 4, .. })
    ));
    assert!(region.atomic_u64(4088).is_ok());
}

#[test]
fn guard_pages_fault_on_stray_access() {
    let region = Region::options(4096).guard_pages(true).anonymous().unwrap();
    let code = fork_and_wait(
        || {
            // SAFETY: deliberately touches the guard page just past the usable range, in a
            // child, to show it faults; the child dies of SIGSEGV before reaching `0`.
            unsafe { std::ptr::write_volatile(region.as_ptr().add(4096), 1) };
            0
        },
        |_| {},
    );
    assert_eq!(code, 128 + libc::SIGSEGV);
}

#[test]
fn locked_and_populated_region_is_usable() {
    match Region::options(8192).lock(true).populate(true).anonymous() {
        Ok(region) => region.write_bytes(8000, b"locked").unwrap(),
        // Without CAP_IPC_LOCK and with a tiny RLIMIT_MEMLOCK, locking is refused: typed.
        Err(err) => assert!(matches!(err, RegionError::LockFailed { .. }), "{err}"),
    }
}
