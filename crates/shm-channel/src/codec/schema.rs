//! [`Schema`]: a codec with a schema id the user chose, for types that evolve or that two
//! programs name differently; and [`Fingerprint::of`], what a typed end of `T` through a
//! codec records in its channel.

use std::marker::PhantomData;

use super::batch::BatchCodec;
use super::frame::{Codec, CodecId, FrameReader, FrameWriter};
use crate::shared::fingerprint::Fingerprint;
use crate::CodecError;

/// Codec `C` with schema id `ID` in the channel's type fingerprint: the bytes are `C`'s,
/// and the id stands for the type's name. Give a message type that evolves a new id with
/// each incompatible change (ends of different versions then refuse each other), and give
/// two programs that name the same type differently the same id (their ends then agree).
///
/// ```
/// use shm_ipc::channel::codec::{Bincode, Schema};
/// use shm_ipc::channel::{spsc, typed, Receiver};
///
/// let (tx, rx) = typed::pair::<(u32, String), _, Schema<Bincode, 2>>(spsc::channel(4096)?)?;
/// // Version 3 of the message is refused by the channel of version 2.
/// let bytes = Receiver::<spsc::Spsc>::from(rx);
/// let old = typed::Receiver::<(u32, String), _, Schema<Bincode, 3>>::try_from(bytes);
/// assert!(old.is_err());
/// # drop(tx);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Schema<C, const ID: u64>(PhantomData<C>);

impl<C: CodecId, const ID: u64> CodecId for Schema<C, ID> {
    const NAME: &'static str = C::NAME;
    const LAYOUT: bool = C::LAYOUT;
    const SCHEMA: Option<u64> = Some(ID);
}

impl<T, C: Codec<T>, const ID: u64> Codec<T> for Schema<C, ID> {
    fn encoded_len(value: &T) -> Result<usize, CodecError> {
        C::encoded_len(value)
    }

    fn exact_len(value: &T) -> Option<usize> {
        C::exact_len(value)
    }

    fn encode(value: &T, out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        C::encode(value, out)
    }

    fn decode(input: &mut FrameReader<'_>) -> Result<T, CodecError> {
        C::decode(input)
    }
}

impl<T, C: BatchCodec<T>, const ID: u64> BatchCodec<T> for Schema<C, ID> {
    fn encode_batch(items: &[T], out: &mut FrameWriter<'_>) -> Result<usize, CodecError> {
        C::encode_batch(items, out)
    }

    fn decode_batch(input: &mut FrameReader<'_>, out: &mut Vec<T>) -> Result<(), CodecError> {
        C::decode_batch(input, out)
    }
}

impl Fingerprint {
    /// What a typed end of `T` through codec `C` records in its channel (and checks there):
    /// `T`'s name (or `C`'s schema id), `C`'s name, and `T`'s size and alignment if `C`'s
    /// wire format is `T`'s memory.
    pub fn of<T, C: CodecId>() -> Fingerprint {
        Fingerprint::with_codec::<T, C>(std::any::type_name::<T>())
    }

    /// What a bulk end of `T` items through `C` records: named as the slice `[T]`, so it
    /// refuses a typed end of `T`, with the batch format beside the codec's name, so that
    /// ends of builds that frame batches differently refuse each other.
    pub(crate) fn of_batch<T, C: CodecId>() -> Fingerprint {
        Fingerprint::with_codec::<T, C>(std::any::type_name::<[T]>()).for_batches()
    }

    fn with_codec<T, C: CodecId>(name: &'static str) -> Fingerprint {
        let mut fingerprint = Fingerprint::new(name, C::NAME);
        if C::LAYOUT {
            fingerprint =
                fingerprint.with_layout(std::mem::size_of::<T>(), std::mem::align_of::<T>());
        }
        match C::SCHEMA {
            Some(schema) => fingerprint.with_schema(schema),
            None => fingerprint,
        }
    }
}
