//! What travels in a request or reply frame: the request's id (8 bytes, little-endian),
//! then the body as its codec writes it.

use crate::codec::{Codec, CodecId, FrameReader, FrameWriter};
use crate::CodecError;

/// A request or reply: the id that matches them, and the body.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) id: u64,
    pub(crate) body: T,
}

/// Bytes of the id in front of the body.
const ID_LEN: usize = 8;

/// Codec `C` behind the id of an [`Envelope`]. Its fingerprint is `C`'s, with the
/// envelope's type (which names the body's).
pub(crate) struct Tagged<C>(std::marker::PhantomData<C>);

impl<C: CodecId> CodecId for Tagged<C> {
    const NAME: &'static str = C::NAME;
    const LAYOUT: bool = C::LAYOUT;
    const SCHEMA: Option<u64> = C::SCHEMA;
}

impl<T, C: Codec<T>> Codec<Envelope<T>> for Tagged<C> {
    fn encoded_len(value: &Envelope<T>) -> Result<usize, CodecError> {
        Ok(ID_LEN + C::encoded_len(&value.body)?)
    }

    fn exact_len(value: &Envelope<T>) -> Option<usize> {
        C::exact_len(&value.body).map(|len| ID_LEN + len)
    }

    fn encode(value: &Envelope<T>, out: &mut FrameWriter<'_>) -> Result<(), CodecError> {
        out.write(&value.id.to_le_bytes())?;
        C::encode(&value.body, out)
    }

    fn decode(input: &mut FrameReader<'_>) -> Result<Envelope<T>, CodecError> {
        let mut id = [0u8; ID_LEN];
        input.read(&mut id)?;
        let body = C::decode(&mut input.rest())?;
        Ok(Envelope {
            id: u64::from_le_bytes(id),
            body,
        })
    }
}
