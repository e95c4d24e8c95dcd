//! The versioned layout header at offset 0 of every shared structure.
//!
//! The creator of a region writes the header last (the magic with `Release` after every other
//! field), and whoever attaches reads the magic with `Acquire` first, then every other field
//! exactly once, and compares each with what its own build expects. A mismatch is a
//! [`HeaderError`] that names the field; nothing in the header is trusted before it passed.
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | which structure lives here (e.g. an SPSC ring); 0 = not initialised |
//! | 8 | `layout_version` | bumped on every incompatible layout change |
//! | 12 | `platform` | word size in bytes (bits 0–7), endianness (bits 8–15: 1 little, 2 big) |
//! | 16 | `capacity` | the structure's capacity (its meaning is the structure's) |
//! | 24 | `layout_hash` | hash of the sizes and alignments of the shared structs |
//! | 32 | `region_len` | bytes of the region the structure spans |
//! | 40 | reserved | zero |
//!
//! # Examples
//!
//! ```
//! use shm_ipc::core::header::{self, HeaderError, LayoutSpec};
//! use shm_ipc::core::{HeapRegion, SharedMemory};
//!
//! const SPEC: LayoutSpec = LayoutSpec {
//!     magic: u64::from_le_bytes(*b"EXAMPLE1"),
//!     version: 1,
//!     layout_hash: header::layout_hash(&[(64, 8), (128, 128)]),
//! };
//! let region = HeapRegion::new(4096)?;
//! header::write(&region, &SPEC, 1024)?;
//! let info = header::validate(&region, &SPEC)?;
//! assert_eq!(info.capacity_untrusted, 1024);
//!
//! let other = LayoutSpec { version: 2, ..SPEC };
//! assert!(matches!(header::validate(&region, &other), Err(HeaderError::VersionMismatch { found: 1, expected: 2 })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::{AccessError, SharedMemory};

/// Bytes the header occupies at offset 0.
pub const HEADER_LEN: usize = size_of::<LayoutHeader>();

/// Endianness code written in the header's platform word: 1 little, 2 big.
const ENDIANNESS: u32 = if cfg!(target_endian = "little") { 1 } else { 2 };
/// Word size written in the header's platform word.
const WORD_SIZE: u32 = size_of::<usize>() as u32;
/// This build's platform word.
const PLATFORM: u32 = WORD_SIZE | (ENDIANNESS << 8);

/// The header as it lies in shared memory. Every field is atomic, so a peer writing it
/// concurrently (or maliciously) is never a data race on our side.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct LayoutHeader {
    magic: AtomicU64,
    layout_version: AtomicU32,
    platform: AtomicU32,
    capacity: AtomicU64,
    layout_hash: AtomicU64,
    region_len: AtomicU64,
    reserved: [AtomicU64; 3],
}

const _: () = {
    assert!(offset_of!(LayoutHeader, magic) == 0);
    assert!(offset_of!(LayoutHeader, layout_version) == 8);
    assert!(offset_of!(LayoutHeader, platform) == 12);
    assert!(offset_of!(LayoutHeader, capacity) == 16);
    assert!(offset_of!(LayoutHeader, layout_hash) == 24);
    assert!(offset_of!(LayoutHeader, region_len) == 32);
    assert!(offset_of!(LayoutHeader, reserved) == 40);
    assert!(size_of::<LayoutHeader>() == 64);
    assert!(align_of::<LayoutHeader>() == 64);
};

/// What a structure expects of its header: which structure, which version, which layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutSpec {
    /// Identifies the structure; must not be zero (zero means "not initialised").
    pub magic: u64,
    /// Layout version of the structure.
    pub version: u32,
    /// [`layout_hash`] of the structure's shared types.
    pub layout_hash: u64,
}

/// What a valid header says. `capacity_untrusted` passed no check but "the header is ours":
/// the structure validates it against its own rules and the mapping's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The capacity the creator wrote.
    pub capacity_untrusted: u64,
    /// The region length the creator wrote; checked to be at most the mapped length.
    pub region_len: u64,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The region is too small to hold the header.
    #[error("the region is {len} bytes, too small for a {needed}-byte header")]
    TooSmall {
        /// Mapped length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The magic is zero: nobody has initialised this region (or is still doing so).
    #[error("the region holds no header (magic is zero): not initialised yet")]
    NotInitialized,
    /// The magic is not the one expected: another structure, or garbage.
    #[error("wrong magic {found:#018x}, expected {expected:#018x}")]
    BadMagic {
        /// Magic found.
        found: u64,
        /// Magic expected.
        expected: u64,
    },
    /// The layout version differs.
    #[error("layout version {found}, expected {expected}")]
    VersionMismatch {
        /// Version found.
        found: u32,
        /// Version expected.
        expected: u32,
    },
    /// Written by a build with another word size.
    #[error("word size {found} bytes, expected {expected}")]
    WordSizeMismatch {
        /// Word size found.
        found: u32,
        /// Word size expected.
        expected: u32,
    },
    /// Written by a build with another endianness.
    #[error("endianness code {found}, expected {expected} (1 little, 2 big)")]
    EndiannessMismatch {
        /// Code found.
        found: u32,
        /// Code expected.
        expected: u32,
    },
    /// The hash of the shared structs' sizes and alignments differs: another build's layout.
    #[error("layout hash {found:#018x}, expected {expected:#018x}")]
    LayoutMismatch {
        /// Hash found.
        found: u64,
        /// Hash expected.
        expected: u64,
    },
    /// The creator claims a region longer than what is mapped here.
    #[error("the header declares {declared} bytes but only {mapped} are mapped")]
    LengthMismatch {
        /// Length the header declares.
        declared: u64,
        /// Length mapped here.
        mapped: usize,
    },
}

/// FNV-1a hash of a list of `(size, align)` pairs: the layout fingerprint of shared structs.
///
/// ```
/// use shm_ipc::core::header::layout_hash;
/// assert_ne!(layout_hash(&[(8, 8)]), layout_hash(&[(16, 8)]));
/// ```
pub const fn layout_hash(items: &[(usize, usize)]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < items.len() {
        let pair = [items[i].0 as u64, items[i].1 as u64];
        let mut p = 0;
        while p < 2 {
            let bytes = pair[p].to_le_bytes();
            let mut b = 0;
            while b < 8 {
                hash ^= bytes[b] as u64;
                hash = hash.wrapping_mul(FNV_PRIME);
                b += 1;
            }
            p += 1;
        }
        i += 1;
    }
    hash
}

/// The header at offset 0 of `memory`.
fn header_of<M: SharedMemory + ?Sized>(memory: &M) -> Result<&LayoutHeader, HeaderError> {
    let too_small = HeaderError::TooSmall {
        len: memory.len(),
        needed: HEADER_LEN,
    };
    let ptr = memory
        .ptr_at(0, HEADER_LEN)
        .map_err(|_: AccessError| too_small)?;
    // SAFETY: the header's 64 bytes lie inside the region (checked), the region base is
    // page-aligned (the `SharedMemory` contract), so the 64-byte alignment holds; every field
    // is an atomic integer, valid for any bit pattern and for concurrent writers, and the
    // reference lives no longer than the borrow of `memory`.
    Ok(unsafe { &*ptr.cast::<LayoutHeader>() })
}

/// Writes a header for `spec` with `capacity`, claiming the whole region. The magic is
/// stored last, with `Release`, so an attacher that sees it sees every other field.
pub fn write<M: SharedMemory + ?Sized>(
    memory: &M,
    spec: &LayoutSpec,
    capacity: u64,
) -> Result<(), HeaderError> {
    let header = header_of(memory)?;
    // Relaxed: these stores are published by the Release store of the magic below.
    header.magic.store(0, Ordering::Relaxed);
    header.layout_version.store(spec.version, Ordering::Relaxed);
    header.platform.store(PLATFORM, Ordering::Relaxed);
    header.capacity.store(capacity, Ordering::Relaxed);
    header
        .layout_hash
        .store(spec.layout_hash, Ordering::Relaxed);
    // Relaxed (this and the reserved words): published by the magic's Release store.
    header
        .region_len
        .store(memory.len() as u64, Ordering::Relaxed);
    for word in &header.reserved {
        word.store(0, Ordering::Relaxed);
    }
    // SYNC: header published. Pairs with the Acquire load of the magic in `validate`.
    header.magic.store(spec.magic, Ordering::Release);
    Ok(())
}

/// Validates the header of `memory` against `spec`, loading each field once.
pub fn validate<M: SharedMemory + ?Sized>(
    memory: &M,
    spec: &LayoutSpec,
) -> Result<HeaderInfo, HeaderError> {
    let header = header_of(memory)?;
    // SYNC: header published. Pairs with the Release store of the magic in `write`.
    let magic = header.magic.load(Ordering::Acquire);
    if magic == 0 {
        return Err(HeaderError::NotInitialized);
    }
    if magic != spec.magic {
        return Err(HeaderError::BadMagic {
            found: magic,
            expected: spec.magic,
        });
    }
    // Relaxed: ordered after the Acquire load of the magic above.
    let version = header.layout_version.load(Ordering::Relaxed);
    if version != spec.version {
        return Err(HeaderError::VersionMismatch {
            found: version,
            expected: spec.version,
        });
    }
    // Relaxed (here and below): ordered after the Acquire load of the magic.
    let platform = header.platform.load(Ordering::Relaxed);
    let (word_size, endianness) = (platform & 0xff, (platform >> 8) & 0xff);
    if word_size != WORD_SIZE {
        return Err(HeaderError::WordSizeMismatch {
            found: word_size,
            expected: WORD_SIZE,
        });
    }
    if endianness != ENDIANNESS || platform >> 16 != 0 {
        return Err(HeaderError::EndiannessMismatch {
            found: endianness,
            expected: ENDIANNESS,
        });
    }
    // Relaxed: as above.
    let hash = header.layout_hash.load(Ordering::Relaxed);
    if hash != spec.layout_hash {
        return Err(HeaderError::LayoutMismatch {
            found: hash,
            expected: spec.layout_hash,
        });
    }
    // Relaxed: as above.
    let region_len = header.region_len.load(Ordering::Relaxed);
    if region_len > memory.len() as u64 {
        return Err(HeaderError::LengthMismatch {
            declared: region_len,
            mapped: memory.len(),
        });
    }
    Ok(HeaderInfo {
        // Relaxed: as above.
        capacity_untrusted: header.capacity.load(Ordering::Relaxed),
        region_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeapRegion;

    const SPEC: LayoutSpec = LayoutSpec {
        magic: u64::from_le_bytes(*b"TESTSPEC"),
        version: 3,
        layout_hash: layout_hash(&[(64, 64), (8, 8)]),
    };

    fn written() -> HeapRegion {
        let region = HeapRegion::new(4096).unwrap();
        write(&region, &SPEC, 512).unwrap();
        region
    }

    fn poke_u64(region: &HeapRegion, offset: usize, value: u64) {
        region
            .atomic_u64(offset)
            .unwrap()
            .store(value, Ordering::SeqCst);
    }

    fn poke_u32(region: &HeapRegion, offset: usize, value: u32) {
        region
            .atomic_u32(offset)
            .unwrap()
            .store(value, Ordering::SeqCst);
    }

    #[test]
    fn valid_header_round_trips() {
        let info = validate(&written(), &SPEC).unwrap();
        assert_eq!(info.capacity_untrusted, 512);
        assert_eq!(info.region_len, 4096);
    }

    #[test]
    fn zeroed_region_is_not_initialized() {
        let region = HeapRegion::new(4096).unwrap();
        assert_eq!(validate(&region, &SPEC), Err(HeaderError::NotInitialized));
    }

    #[test]
    fn region_smaller_than_header_is_refused() {
        let region = HeapRegion::new(32).unwrap();
        assert_eq!(
            validate(&region, &SPEC),
            Err(HeaderError::TooSmall {
                len: 32,
                needed: 64
            })
        );
        assert!(write(&region, &SPEC, 1).is_err());
    }

    #[test]
    fn wrong_magic_is_named() {
        let region = written();
        poke_u64(&region, 0, 0xdead_beef);
        assert_eq!(
            validate(&region, &SPEC),
            Err(HeaderError::BadMagic {
                found: 0xdead_beef,
                expected: SPEC.magic
            })
        );
    }

    #[test]
    fn wrong_version_is_named() {
        let region = written();
        poke_u32(&region, 8, 9);
        assert_eq!(
            validate(&region, &SPEC),
            Err(HeaderError::VersionMismatch {
                found: 9,
                expected: 3
            })
        );
    }

    #[test]
    fn wrong_word_size_and_endianness_are_named() {
        let region = written();
        poke_u32(&region, 12, 4 | (ENDIANNESS << 8));
        assert!(matches!(
            validate(&region, &SPEC),
            Err(HeaderError::WordSizeMismatch { found: 4, .. })
        ));
        poke_u32(&region, 12, WORD_SIZE | (7 << 8));
        assert!(matches!(
            validate(&region, &SPEC),
            Err(HeaderError::EndiannessMismatch { found: 7, .. })
        ));
    }

    #[test]
    fn wrong_layout_hash_is_named() {
        let region = written();
        poke_u64(&region, 24, 1);
        assert!(matches!(
            validate(&region, &SPEC),
            Err(HeaderError::LayoutMismatch { found: 1, .. })
        ));
    }

    #[test]
    fn declared_length_beyond_mapping_is_refused() {
        let region = written();
        poke_u64(&region, 32, u64::MAX);
        assert_eq!(
            validate(&region, &SPEC),
            Err(HeaderError::LengthMismatch {
                declared: u64::MAX,
                mapped: 4096
            })
        );
    }

    #[test]
    fn layout_hash_depends_on_order_sizes_and_alignments() {
        let a = layout_hash(&[(8, 8), (16, 8)]);
        assert_ne!(a, layout_hash(&[(16, 8), (8, 8)]));
        assert_ne!(a, layout_hash(&[(8, 8), (16, 16)]));
        assert_eq!(a, layout_hash(&[(8, 8), (16, 8)]));
    }
}
