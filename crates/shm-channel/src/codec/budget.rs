//! What one serde decode may do, and the count of what it did: nest containers at most
//! [`MAX_DECODE_DEPTH`] deep (a recursive `T` decoded from a hostile frame would otherwise
//! overflow the receiver's stack), and visit at most [`ELEMENTS_PER_BYTE`] sequence
//! elements or map keys per byte of its frame (a sequence of zero-sized values announcing
//! 2^62 of them would otherwise decode for ever). [`DepthBudget`] keeps the count for one
//! decode; `depth.rs` wraps the format's deserializer so that every container and element
//! passes through it.

use std::cell::Cell;
use std::fmt;

use serde::de;

use crate::CodecError;

/// Deepest nesting the serde codecs (`Bincode`, `Postcard`) decode: a container (struct,
/// tuple, sequence, map, enum, newtype, `Option`) inside more than this many containers
/// (as a field, element, entry, variant content, newtype content or `Some`) makes the frame
/// a [`CodecError::Decode`]. Scalars nest nothing and are not counted.
///
/// Why 128: real messages nest a handful of levels (a recursive type that legitimately
/// goes deeper is better sent flattened), and decoding 128 levels stays far from the
/// default 2 MiB thread stack. Measured in a debug build (the worst case), one level costs
/// about 1.4 KiB of stack through this limiter with either codec (a recursive enum holding a
/// `Vec` of itself: 2.7 KiB per tree level, which is two levels here; about 0.3 KiB per
/// tree level in release), so a message at the limit takes about 180 KiB: under a tenth of
/// 2 MiB, leaving room for the receiver's callers and for types whose derived visitors have
/// much bigger frames. A frame nesting deeper is refused when it gets there, before it can
/// use more stack. (serde_json's default recursion limit is 128 too.)
pub const MAX_DECODE_DEPTH: usize = 128;

/// Sequence elements and map keys a decode may visit per byte of its frame, beyond
/// [`ELEMENTS_FLOOR`]: every element of a real message but a zero-sized one (`()`, an empty
/// struct, `PhantomData`) takes a byte at least, and the formats read a sequence's announced
/// length without comparing it with the bytes left. Without this bound, a frame of a few
/// bytes announcing 2^62 `()`s would keep the receiver decoding for ever.
pub(crate) const ELEMENTS_PER_BYTE: u64 = 8;

/// Sequence elements and map keys any decode may visit, whatever its frame's length.
pub(crate) const ELEMENTS_FLOOR: u64 = 1024;

/// Why a decode was refused by its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Depth,
    Elements,
}

/// Shared by all the wrappers of one decode: the nesting limit, the elements it may still
/// visit, and whether a limit was hit (so the codec can say so even when the format's error
/// type drops custom messages, as postcard's does).
pub(crate) struct DepthBudget {
    max: usize,
    elements_left: Cell<u64>,
    refused: Cell<Option<Refusal>>,
}

impl DepthBudget {
    /// A budget of `max` levels of nesting, for a frame of `frame_len` bytes (which sets
    /// how many sequence elements and map keys the decode may visit: see
    /// [`ELEMENTS_PER_BYTE`]).
    pub(crate) fn new(max: usize, frame_len: usize) -> Self {
        let elements = (frame_len as u64)
            .saturating_mul(ELEMENTS_PER_BYTE)
            .saturating_add(ELEMENTS_FLOOR);
        DepthBudget {
            max,
            elements_left: Cell::new(elements),
            refused: Cell::new(None),
        }
    }

    /// Whether a decode through this budget failed because the value nested too deep.
    #[cfg(test)]
    pub(crate) fn exceeded(&self) -> bool {
        self.refused.get() == Some(Refusal::Depth)
    }

    fn message(&self, refusal: Refusal) -> String {
        match refusal {
            Refusal::Depth => format!("the message nests deeper than {} levels", self.max),
            Refusal::Elements => format!(
                "the message holds more sequence elements or map entries than {ELEMENTS_PER_BYTE} a byte"
            ),
        }
    }

    /// The [`CodecError`] for a decode through this budget that failed with `error`: the
    /// limit that was hit, if one was (whatever the format made of our custom error), else
    /// `error` itself.
    pub(crate) fn decode_error(&self, error: impl fmt::Display) -> CodecError {
        CodecError::Decode(match self.refused.get() {
            Some(refusal) => self.message(refusal),
            None => error.to_string(),
        })
    }

    /// Whether a container may sit at `depth` (on every container of every message: the
    /// refusal is out of line).
    #[inline]
    pub(super) fn enter<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.max {
            return Err(self.refuse(Refusal::Depth));
        }
        Ok(())
    }

    /// Counts one more sequence element or map key: refused once the frame's share is
    /// spent.
    #[inline]
    pub(super) fn element<E: de::Error>(&self) -> Result<(), E> {
        match self.elements_left.get().checked_sub(1) {
            Some(left) => {
                self.elements_left.set(left);
                Ok(())
            }
            None => Err(self.refuse(Refusal::Elements)),
        }
    }

    #[cold]
    #[inline(never)]
    fn refuse<E: de::Error>(&self, refusal: Refusal) -> E {
        self.refused.set(Some(refusal));
        E::custom(self.message(refusal))
    }
}
