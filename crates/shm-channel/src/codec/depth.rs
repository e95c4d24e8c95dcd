//! The limits of `budget.rs` applied to serde decoding: wrappers of a format's deserializer.
//!
//! serde has no depth limit of its own: a recursive `T` (a tree, a linked list, an enum
//! holding a `Box` of itself) is decoded by recursion, one handful of stack frames per level,
//! so a frame of a few kilobytes nesting tens of thousands of levels overflows the
//! receiver's stack and aborts the process. A peer must never be able to do that (docs/safety.md),
//! so the serde codecs decode through [`DepthLimited`], which counts how deep the value
//! being decoded sits and fails with a decode error past
//! [`MAX_DECODE_DEPTH`](super::MAX_DECODE_DEPTH), and counts the elements it visits against
//! the frame's share (`budget.rs`).
//!
//! How it works: [`DepthLimited`] wraps the format's deserializer and forwards every
//! `deserialize_*` call of a container with the visitor wrapped (scalars, which nest
//! nothing, go straight through: most fields cost no wrapping). The wrapped visitor forwards every
//! `visit_*` call, except that the accessors it is handed for nested values (sequences,
//! maps, enum variants, newtype structs, `Some`) are wrapped too, so that each nested value
//! is again decoded through a [`DepthLimited`], one level deeper. A value's depth is the
//! number of containers around it: the message itself is at depth 0, the fields of a
//! top-level struct at depth 1, and so on; the limit applies to containers.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use super::budget::{DepthBudget, MAX_DECODE_DEPTH};
use crate::CodecError;

/// A deserializer for a value at `depth`, failing if `depth` is past the budget.
pub(crate) struct DepthLimited<'b, D> {
    inner: D,
    depth: usize,
    budget: &'b DepthBudget,
}

impl<'b, D> DepthLimited<'b, D> {
    /// Wraps the deserializer of a whole message (depth 0).
    pub(crate) fn new(inner: D, budget: &'b DepthBudget) -> Self {
        DepthLimited {
            inner,
            depth: 0,
            budget,
        }
    }
}

/// Forwards `deserialize_*` methods (and, `visit:`, a visitor's `visit_*` methods that carry
/// no nested value): `nesting` ones with the visitor wrapped, after
/// checking the depth; `borrowed` ones (owned strings and byte buffers) as their borrowed
/// forms, which the codecs decode out of the frame's private copy after checking that the
/// frame holds the length announced, and nothing else allocates (an owned `String` or byte
/// buffer is then built by its visitor, of exactly that length: a hostile length costs an
/// error, never an allocation of that size; bincode's owned forms allocate the announced
/// length first); `scalar` ones as they are. The formats behind the serde codecs are
/// not self-describing — the hint decides what they visit, a scalar for a scalar hint, and
/// a scalar nests nothing — so scalars need no wrapping. (A self-describing format could
/// answer a scalar hint with a sequence: this is sound only for `Bincode` and `Postcard`,
/// the deserializers this wraps.)
macro_rules! forward {
    (nesting: $($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(
                self,
                $($arg: $ty,)*
                visitor: V,
            ) -> Result<V::Value, Self::Error> {
                self.budget.enter(self.depth)?;
                let visitor = DepthVisitor {
                    inner: visitor,
                    depth: self.depth,
                    budget: self.budget,
                };
                self.inner.$method($($arg,)* visitor)
            }
        )*
    };
    (borrowed: $($method:ident => $borrowed:ident;)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$borrowed(visitor)
            }
        )*
    };
    (scalar: $($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(
                self,
                $($arg: $ty,)*
                visitor: V,
            ) -> Result<V::Value, Self::Error> {
                self.inner.$method($($arg,)* visitor)
            }
        )*
    };
    // `visit_*` methods of a visitor that carry no nested value.
    (visit: $($method:ident($($arg:ident: $ty:ty)?);)*) => {
        $(
            fn $method<E: de::Error>(self, $($arg: $ty)?) -> Result<V::Value, E> {
                self.inner.$method($($arg)?)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for DepthLimited<'_, D> {
    type Error = D::Error;

    forward! {
        nesting:
        deserialize_any();
        deserialize_option();
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_ignored_any();
    }

    forward! {
        borrowed:
        deserialize_string => deserialize_str;
        deserialize_byte_buf => deserialize_bytes;
    }

    forward! {
        scalar:
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_bytes();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_identifier();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The seed of a whole message (depth 0), decoded into `out`: the value is moved once,
/// into the caller's slot, rather than returned up through the format's `Result` layers
/// (measured: 8 % more typed bincode messages a second over the main job's stream).
pub(crate) struct MessageSeed<'b, 'o, T> {
    budget: &'b DepthBudget,
    out: &'o mut Option<T>,
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for MessageSeed<'_, '_, T> {
    type Value = ();

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        *self.out = Some(T::deserialize(DepthLimited::new(
            deserializer,
            self.budget,
        ))?);
        Ok(())
    }
}

/// A serde format behind a codec (bincode, postcard): how a seed decodes from the start of
/// a private copy of a frame. The one piece each serde codec writes for decoding; the
/// limits around it are [`decode_message`]'s and `batch.rs`'s, the same for both.
pub(crate) trait SerdeFormat {
    /// The format's decoding error.
    type Error: fmt::Display;

    /// Decodes through `seed` from the start of `bytes`: the value, and the bytes it took
    /// (at most `bytes.len()`).
    fn decode_seed<'de, S: DeserializeSeed<'de>>(
        bytes: &'de [u8],
        seed: S,
    ) -> Result<(S::Value, usize), Self::Error>;
}

/// Decodes the message `T` that `bytes` (a private copy of a frame) holds through format
/// `C`, under the depth and element limits (a failure names the limit it hit, if one); a
/// frame with bytes left after the value is refused.
pub(crate) fn decode_message<C: SerdeFormat, T: de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, CodecError> {
    let budget = DepthBudget::new(MAX_DECODE_DEPTH, bytes.len());
    let mut out = None;
    let seed = MessageSeed {
        budget: &budget,
        out: &mut out,
    };
    decode_whole::<C, _>(bytes, &budget, seed)?;
    out.ok_or_else(|| CodecError::Decode("the format decoded no value".into()))
}

/// [`decode_message`] into `place`, through `Deserialize::deserialize_in_place` (a
/// `String` or `Vec` in `place` keeps its allocation); on error `place` holds a valid
/// value, not necessarily the one before.
pub(crate) fn decode_message_into<C: SerdeFormat, T: de::DeserializeOwned>(
    bytes: &[u8],
    place: &mut T,
) -> Result<(), CodecError> {
    let budget = DepthBudget::new(MAX_DECODE_DEPTH, bytes.len());
    let seed = InPlaceSeed {
        budget: &budget,
        place,
    };
    decode_whole::<C, _>(bytes, &budget, seed)
}

/// Decodes through `seed` (a whole message's, which keeps its value itself) from the start
/// of `bytes`: a failure names the limit of `budget` it hit, if one, and bytes left after
/// the value are refused.
fn decode_whole<'de, C: SerdeFormat, S: DeserializeSeed<'de, Value = ()>>(
    bytes: &'de [u8],
    budget: &DepthBudget,
    seed: S,
) -> Result<(), CodecError> {
    let ((), read) = C::decode_seed(bytes, seed).map_err(|e| budget.decode_error(e))?;
    match bytes.len() - read {
        0 => Ok(()),
        left => Err(CodecError::Decode(format!(
            "{left} bytes left after the value"
        ))),
    }
}

/// The seed of a whole message (depth 0) decoded in place into `place`.
struct InPlaceSeed<'b, 'p, T> {
    budget: &'b DepthBudget,
    place: &'p mut T,
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for InPlaceSeed<'_, '_, T> {
    type Value = ();

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        T::deserialize_in_place(DepthLimited::new(deserializer, self.budget), self.place)
    }
}

/// A seed for a value nested one level inside a container at `depth`.
struct DepthSeed<'b, S> {
    inner: S,
    depth: usize,
    budget: &'b DepthBudget,
}

impl<'b, S> DepthSeed<'b, S> {
    fn nested(inner: S, container_depth: usize, budget: &'b DepthBudget) -> Self {
        DepthSeed {
            inner,
            depth: container_depth + 1,
            budget,
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for DepthSeed<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(DepthLimited {
            inner: deserializer,
            depth: self.depth,
            budget: self.budget,
        })
    }
}

/// Wraps the accessor a visitor of a container at `depth` is handed, so that the values
/// inside are decoded one level deeper.
struct DepthAccess<'b, A> {
    inner: A,
    depth: usize,
    budget: &'b DepthBudget,
}

impl<'b, A> DepthAccess<'b, A> {
    fn seed<S>(&self, seed: S) -> DepthSeed<'b, S> {
        DepthSeed::nested(seed, self.depth, self.budget)
    }

    /// The next element of a sequence or key of a map: counted against the budget first,
    /// then decoded one level deeper by `next` (the inner accessor's call).
    #[inline]
    fn next_counted<S, R, E: de::Error>(
        &mut self,
        seed: S,
        next: impl FnOnce(&mut A, DepthSeed<'b, S>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.budget.element()?;
        let seed = self.seed(seed);
        next(&mut self.inner, seed)
    }

    fn visitor<V>(&self, visitor: V) -> DepthVisitor<'b, V> {
        DepthVisitor {
            inner: visitor,
            depth: self.depth,
            budget: self.budget,
        }
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for DepthAccess<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.next_counted(seed, A::next_element_seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for DepthAccess<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.next_counted(seed, A::next_key_seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'b, A: de::EnumAccess<'de>> de::EnumAccess<'de> for DepthAccess<'b, A> {
    type Error = A::Error;
    type Variant = DepthAccess<'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let DepthAccess {
            inner,
            depth,
            budget,
        } = self;
        // The variant's tag is part of the enum value, not nested in it: same depth.
        let seed = DepthSeed {
            inner: seed,
            depth,
            budget,
        };
        let (value, variant) = inner.variant_seed(seed)?;
        let variant = DepthAccess {
            inner: variant,
            depth,
            budget,
        };
        Ok((value, variant))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for DepthAccess<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    // The fields of a tuple or struct variant are one level below the enum, as the
    // content of a newtype variant is: the visitor is handed a sequence or map accessor at
    // the enum's depth.
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.visitor(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = self.visitor(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}

/// Wraps the visitor of a value at `depth`: scalars pass through; the accessors and
/// deserializers for nested values are wrapped one level deeper.
struct DepthVisitor<'b, V> {
    inner: V,
    depth: usize,
    budget: &'b DepthBudget,
}

impl<'b, V> DepthVisitor<'b, V> {
    fn access<A>(&self, inner: A) -> DepthAccess<'b, A> {
        DepthAccess {
            inner,
            depth: self.depth,
            budget: self.budget,
        }
    }

    fn nested<D>(&self, inner: D) -> DepthLimited<'b, D> {
        DepthLimited {
            inner,
            depth: self.depth + 1,
            budget: self.budget,
        }
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for DepthVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    forward! {
        visit:
        visit_bool(v: bool);
        visit_i8(v: i8);
        visit_i16(v: i16);
        visit_i32(v: i32);
        visit_i64(v: i64);
        visit_i128(v: i128);
        visit_u8(v: u8);
        visit_u16(v: u16);
        visit_u32(v: u32);
        visit_u64(v: u64);
        visit_u128(v: u128);
        visit_f32(v: f32);
        visit_f64(v: f64);
        visit_char(v: char);
        visit_str(v: &str);
        visit_borrowed_str(v: &'de str);
        visit_string(v: String);
        visit_bytes(v: &[u8]);
        visit_borrowed_bytes(v: &'de [u8]);
        visit_byte_buf(v: Vec<u8>);
        visit_none();
        visit_unit();
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let deserializer = self.nested(deserializer);
        self.inner.visit_some(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let deserializer = self.nested(deserializer);
        self.inner.visit_newtype_struct(deserializer)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let seq = self.access(seq);
        self.inner.visit_seq(seq)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let map = self.access(map);
        self.inner.visit_map(map)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let data = self.access(data);
        self.inner.visit_enum(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::budget::{ELEMENTS_FLOOR, MAX_DECODE_DEPTH};
    use serde::de::value::{Error, MapDeserializer, SeqDeserializer, U8Deserializer};
    use serde::de::{Deserialize, IntoDeserializer};
    use std::collections::BTreeMap;

    fn decode<T: de::DeserializeOwned>(
        max: usize,
        deserializer: impl Deserializer<'static, Error = Error>,
    ) -> (Result<T, Error>, bool) {
        let budget = DepthBudget::new(max, 1 << 20);
        let result = T::deserialize(DepthLimited::new(deserializer, &budget));
        (result, budget.exceeded())
    }

    #[test]
    fn scalars_are_at_depth_zero() {
        let (value, exceeded) = decode::<u8>(0, U8Deserializer::<Error>::new(7));
        assert_eq!(value.unwrap(), 7);
        assert!(!exceeded);
    }

    #[test]
    fn sequence_elements_are_one_level_down() {
        let nested = || SeqDeserializer::<_, Error>::new(vec![vec![1u8, 2], vec![3]].into_iter());
        let (value, exceeded) = decode::<Vec<Vec<u8>>>(1, nested());
        assert_eq!(value.unwrap(), [vec![1, 2], vec![3]]);
        assert!(!exceeded);

        // The inner sequences sit one level down: past a limit of 0.
        let (value, exceeded) = decode::<Vec<Vec<u8>>>(0, nested());
        assert!(value.unwrap_err().to_string().contains("deeper than 0"));
        assert!(exceeded);
    }

    #[test]
    fn scalars_nest_nothing_and_are_not_counted() {
        // A sequence of scalars at the top (depth 0) is within a limit of 0.
        let flat = SeqDeserializer::<_, Error>::new(vec![1u8, 2, 3].into_iter());
        let (value, exceeded) = decode::<Vec<u8>>(0, flat);
        assert_eq!(value.unwrap(), [1, 2, 3]);
        assert!(!exceeded);
    }

    #[test]
    fn an_empty_container_at_the_limit_is_fine() {
        let empty: Vec<u8> = Vec::new();
        let (value, _) = decode::<Vec<u8>>(0, empty.into_deserializer());
        assert!(value.unwrap().is_empty());
    }

    /// Elements a decode visits of a sequence (or keys of a map) of `n` under `budget`.
    type Count = fn(usize, &DepthBudget) -> Result<usize, Error>;

    fn sequence_of(n: usize, budget: &DepthBudget) -> Result<usize, Error> {
        let units = SeqDeserializer::<_, Error>::new(std::iter::repeat_n((), n));
        Vec::<()>::deserialize(DepthLimited::new(units, budget)).map(|units| units.len())
    }

    fn map_of(n: usize, budget: &DepthBudget) -> Result<usize, Error> {
        let entries = MapDeserializer::<_, Error>::new((0..n as u64).map(|key| (key, ())));
        BTreeMap::<u64, ()>::deserialize(DepthLimited::new(entries, budget)).map(|map| map.len())
    }

    #[test]
    fn sequence_elements_and_map_keys_are_counted_against_the_frame() {
        // A frame of 0 bytes may visit the floor's worth of elements or keys, and no more.
        let floor = ELEMENTS_FLOOR as usize;
        for (container, count) in [("sequence", sequence_of as Count), ("map", map_of)] {
            let budget = DepthBudget::new(MAX_DECODE_DEPTH, 0);
            assert_eq!(count(floor - 1, &budget).unwrap(), floor - 1, "{container}");
            let budget = DepthBudget::new(MAX_DECODE_DEPTH, 0);
            assert!(count(floor + 1, &budget).is_err(), "{container}");
            let message = budget.decode_error("ignored").to_string();
            assert!(
                message.contains("sequence elements"),
                "{container}: {message}"
            );
            assert!(!budget.exceeded(), "{container}: not a depth refusal");
        }
    }
}
