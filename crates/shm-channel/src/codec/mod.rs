//! Codecs turn `T` into frame bytes and back, writing straight into a write grant and
//! reading straight out of a read grant.
//!
//! | codec | `T` | encode | decode |
//! |---|---|---|---|
//! | [`Bincode`] (default) | `Serialize + DeserializeOwned` | in place | from one private copy of the frame |
//! | [`Postcard`] | `Serialize + DeserializeOwned` | in place | from one private copy of the frame |
//! | [`Plain`] | `bytemuck::Pod` | one copy | one copy, length checked |
//! | [`Schema<C, ID>`](Schema) | as `C` | as `C` | as `C`; schema id `ID` in the type fingerprint |
//!
//! Every codec names its wire format ([`CodecId`]): a channel's typed ends record the type
//! and the codec in the channel, and an end of another type or codec is refused
//! ([`typed::Fingerprint`](crate::typed::Fingerprint)).
//!
//! A typed sender encodes in one pass into room reserved by a guess, and sizes the value
//! first only when the guess was too small (see [`Codec`]).
//!
//! Decoding never trusts the frame: bytes are copied out of shared memory before the codec
//! looks at them, and a frame that is not a valid `T` is a
//! [`CodecError`](crate::CodecError), not a panic.
//! The serde codecs also refuse values nested deeper than [`MAX_DECODE_DEPTH`], so a
//! frame of deeply nested variants of a recursive type cannot overflow the receiver's stack;
//! and a frame whose sequences and maps hold more than 8 elements (or entries) per byte of
//! the frame, beyond the first 1024, so that a few bytes announcing 2^62 zero-sized values
//! (`Vec<()>`: the formats visit the announced length, and `()` takes no byte) cannot keep
//! the receiver decoding for ever.
//!
//! One file per codec: `plain.rs`, `bincode.rs`, `postcard.rs`, `schema.rs` (the schema
//! adapter, and what a typed end's fingerprint is made of); what they all write into
//! and read from is in `frame.rs`, slices of items per frame in `batch.rs`, the limits of
//! the serde decoders in `budget.rs` (nesting depth, elements per byte) and the wrappers
//! that apply them to the formats' deserializers in `depth.rs`.

pub(crate) mod batch;
#[cfg(feature = "bincode")]
mod bincode;
#[cfg(any(feature = "bincode", feature = "postcard"))]
mod budget;
#[cfg(any(feature = "bincode", feature = "postcard"))]
mod depth;
pub(crate) mod frame;
mod plain;
#[cfg(feature = "postcard")]
mod postcard;
mod schema;

pub use self::batch::BatchCodec;
#[cfg(feature = "bincode")]
pub use self::bincode::Bincode;
#[cfg(any(feature = "bincode", feature = "postcard"))]
pub use self::budget::MAX_DECODE_DEPTH;
pub use self::frame::{Codec, CodecId, FrameReader, FrameWriter};
pub use self::plain::Plain;
#[cfg(feature = "postcard")]
pub use self::postcard::Postcard;
pub use self::schema::Schema;
