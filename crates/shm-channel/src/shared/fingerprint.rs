//! What the typed ends of a channel carry: a [`Fingerprint`] (the type's name, the codec,
//! the type's size and alignment where the codec's wire format is its memory, a schema id
//! the user may set), recorded in the channel's [`TypeLine`] by the first typed end made of
//! the channel and checked by every later one, whatever way it came (created, attached,
//! inherited across `exec`, taken from the rendezvous, received through `transfer`). A
//! mismatch is a [`TypeMismatch`] naming both sides. Raw byte ends never look.
//!
//! The line is written once: a compare-and-swap of the fingerprint hash into a zeroed word
//! claims it, then the winner describes the type (name, codec, layout, schema) and marks the
//! description complete with a Release store (`SYNC: type described`). The hash alone
//! decides a check; the description only makes the error readable. A peer can write any
//! value into the line: it is compared, and copied (bounded) into an error message, never
//! used to index or size anything.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::Ordering;

use super::lines::{TypeLine, CODEC_NAME_BYTES, TYPE_NAME_BYTES};
use super::primitive::AtomicU64;

/// The format of bulk frames (`codec::batch`): 2, an item count in front of the items, each
/// encoded as the codec encodes a value (format 1, unnamed: one serde sequence).
const BATCH_FORMAT: &str = "batch2";

/// Bit of [`TypeLine::flags`]: size and alignment are recorded.
const HAS_LAYOUT: u32 = 1;
/// Bit of [`TypeLine::flags`]: a schema id is recorded.
const HAS_SCHEMA: u32 = 2;

/// What a typed channel carries: the type's name, the codec's name, the type's size and
/// alignment where the codec's wire format is the type's memory ([`Plain`]), and the schema
/// id the user gave ([`Schema`]). Two fingerprints are equal when their [`id`]s are: the
/// schema id, if there is one, stands for the type's name (so two programs that name the
/// type differently can agree on it, and a type that evolves changes it); otherwise the
/// name counts, with the codec and the layout.
///
/// ```
/// use shm_ipc::channel::codec::{Bincode, Plain, Schema};
/// use shm_ipc::channel::typed::Fingerprint;
/// let text = Fingerprint::of::<String, Bincode>();
/// assert_eq!(text.to_string(), "`alloc::string::String` by bincode2");
/// assert_ne!(text, Fingerprint::of::<u64, Bincode>());
/// let words = Fingerprint::of::<[u64; 2], Plain>();
/// assert_eq!(words.to_string(), "`[u64; 2]` by plain (16 bytes, align 8)");
/// // A schema id stands for the name.
/// assert_eq!(Fingerprint::of::<u32, Schema<Bincode, 7>>(), Fingerprint::of::<i32, Schema<Bincode, 7>>());
/// assert_ne!(Fingerprint::of::<u32, Schema<Bincode, 7>>(), Fingerprint::of::<u32, Schema<Bincode, 8>>());
/// ```
///
/// [`Plain`]: crate::codec::Plain
/// [`Schema`]: crate::codec::Schema
/// [`id`]: Fingerprint::id
#[derive(Debug, Clone)]
pub struct Fingerprint {
    type_name: Cow<'static, str>,
    codec: Cow<'static, str>,
    layout: Option<(u64, u32)>,
    schema: Option<u64>,
    id: u64,
    /// `false` for a fingerprint read from a channel whose description is missing (its
    /// writer has not finished it, or a peer overwrote it).
    described: bool,
}

impl Fingerprint {
    /// The fingerprint of values named `type_name` encoded by the codec named `codec`.
    pub(crate) fn new(type_name: &'static str, codec: &'static str) -> Fingerprint {
        Fingerprint {
            type_name: Cow::Borrowed(type_name),
            codec: Cow::Borrowed(codec),
            layout: None,
            schema: None,
            id: 0,
            described: true,
        }
        .hashed()
    }

    /// The same with the type's size and alignment, which the codec's wire format depends
    /// on (plain data).
    pub(crate) fn with_layout(mut self, size: usize, align: usize) -> Fingerprint {
        self.layout = Some((size as u64, align as u32));
        self.hashed()
    }

    /// The same with a schema id: it stands for the type's name from now on.
    pub(crate) fn with_schema(mut self, schema: u64) -> Fingerprint {
        self.schema = Some(schema);
        self.hashed()
    }

    /// The same for a bulk end's frames: the codec's name with the batch format's
    /// (`bincode2+batch2`), so that ends that frame batches differently refuse each other.
    pub(crate) fn for_batches(mut self) -> Fingerprint {
        self.codec = Cow::Owned(format!("{}+{BATCH_FORMAT}", self.codec));
        self.hashed()
    }

    /// The type's name (empty for a fingerprint read from a channel without its
    /// description).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The schema id, if one was given ([`Schema`](crate::codec::Schema)): what a program
    /// reads from a [`TypeMismatch`] to tell which version its peer speaks.
    pub fn schema(&self) -> Option<u64> {
        self.schema
    }

    /// The 64-bit hash that stands for the fingerprint (never 0): FNV-1a over the schema
    /// id or else the type's name, the codec's name and the layout. Stable across builds,
    /// hosts and compiler versions as long as the names are.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn hashed(mut self) -> Fingerprint {
        // FNV-1a, 64 bit: offset basis and prime from the FNV specification
        // (http://www.isthe.com/chongo/tech/comp/fnv/).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        feed(b"shm-ipc fingerprint 1\0");
        match self.schema {
            Some(schema) => {
                feed(b"schema\0");
                feed(&schema.to_le_bytes());
            }
            None => {
                feed(b"type\0");
                feed(self.type_name.as_bytes());
            }
        }
        feed(b"\0codec\0");
        feed(self.codec.as_bytes());
        if let Some((size, align)) = self.layout {
            feed(b"\0layout\0");
            feed(&size.to_le_bytes());
            feed(&align.to_le_bytes());
        }
        self.id = hash.max(1);
        self
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Fingerprint) -> bool {
        self.id == other.id
    }
}

impl Eq for Fingerprint {}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.described {
            return write!(f, "a type of fingerprint {:#018x} (not described)", self.id);
        }
        write!(f, "`{}` by {}", self.type_name, self.codec)?;
        if let Some((size, align)) = self.layout {
            write!(f, " ({size} bytes, align {align})")?;
        }
        if let Some(schema) = self.schema {
            write!(f, ", schema {schema}")?;
        }
        Ok(())
    }
}

/// A typed end was asked for a channel whose typed ends carry another type (or the same
/// type through another codec, layout or schema): nothing was sent or received.
///
/// ```
/// use shm_ipc::channel::{spsc, typed, Receiver};
/// let (tx, rx) = typed::channel::<String>(4096)?;
/// let err = typed::Receiver::<u64>::try_from(Receiver::<spsc::Spsc>::from(rx)).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "the channel carries `alloc::string::String` by bincode2, not `u64` by bincode2",
/// );
/// # drop(tx);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the channel carries {}, not {}", .sides.1, .sides.0)]
pub struct TypeMismatch {
    /// (expected, found), boxed: errors stay a word wide.
    sides: Box<(Fingerprint, Fingerprint)>,
}

impl TypeMismatch {
    /// What the end asked for carries.
    pub fn expected(&self) -> &Fingerprint {
        &self.sides.0
    }

    /// What the channel's typed ends carry, as recorded in the channel.
    pub fn found(&self) -> &Fingerprint {
        &self.sides.1
    }
}

/// Checks `ours` against what `line` records, recording it first if the channel is still
/// untyped.
pub(crate) fn record_or_check(line: &TypeLine, ours: &Fingerprint) -> Result<(), TypeMismatch> {
    // SeqCst: once per typed end made, never on a hot path. The hash is the whole value
    // compared; the description has its own publication (`describe`).
    match line
        .fingerprint
        .compare_exchange(0, ours.id, Ordering::SeqCst, Ordering::SeqCst)
    {
        Ok(_) => {
            describe(line, ours);
            Ok(())
        }
        Err(found) if found == ours.id => Ok(()),
        Err(found_untrusted) => Err(TypeMismatch {
            sides: Box::new((ours.clone(), read(line, found_untrusted))),
        }),
    }
}

/// What the channel's typed ends carry, if any typed end was made of it.
pub(crate) fn recorded(line: &TypeLine) -> Option<Fingerprint> {
    // SeqCst: a rare call (see `record_or_check`).
    match line.fingerprint.load(Ordering::SeqCst) {
        0 => None,
        id_untrusted => Some(read(line, id_untrusted)),
    }
}

/// Writes the description of `fingerprint`, whose hash this process just recorded.
fn describe(line: &TypeLine, fingerprint: &Fingerprint) {
    // Relaxed, every word: SYNC: type described (the Release store below publishes them).
    let (size, align) = fingerprint.layout.unwrap_or((0, 0));
    line.size.store(size, Ordering::Relaxed);
    line.align.store(align, Ordering::Relaxed);
    let flags = u32::from(fingerprint.layout.is_some()) * HAS_LAYOUT
        + u32::from(fingerprint.schema.is_some()) * HAS_SCHEMA;
    line.flags.store(flags, Ordering::Relaxed);
    line.schema
        .store(fingerprint.schema.unwrap_or(0), Ordering::Relaxed);
    let name = fingerprint.type_name.as_bytes();
    let codec = fingerprint.codec.as_bytes();
    line.name_len.store(
        u32::try_from(name.len()).unwrap_or(u32::MAX),
        Ordering::Relaxed,
    );
    line.codec_len.store(
        u32::try_from(codec.len()).unwrap_or(u32::MAX),
        Ordering::Relaxed,
    );
    store_text(&line.codec, codec);
    store_text(&line.name, name);
    // Release: SYNC: type described. A reader that loads this hash here with Acquire sees
    // every word above.
    line.described.store(fingerprint.id, Ordering::Release);
}

/// The fingerprint `line` records under hash `id_untrusted` (loaded once by the caller),
/// with its description if that is complete; every word loaded once and bounded.
fn read(line: &TypeLine, id_untrusted: u64) -> Fingerprint {
    // Acquire: SYNC: type described (see `describe`).
    if line.described.load(Ordering::Acquire) != id_untrusted {
        return Fingerprint {
            type_name: Cow::Borrowed(""),
            codec: Cow::Borrowed(""),
            layout: None,
            schema: None,
            id: id_untrusted,
            described: false,
        };
    }
    // Relaxed, every word: ordered by the Acquire load above (SYNC: type described).
    let flags_untrusted = line.flags.load(Ordering::Relaxed);
    let size = line.size.load(Ordering::Relaxed);
    let align = line.align.load(Ordering::Relaxed);
    let schema = line.schema.load(Ordering::Relaxed);
    let name_len_untrusted = line.name_len.load(Ordering::Relaxed);
    let codec_len_untrusted = line.codec_len.load(Ordering::Relaxed);
    Fingerprint {
        type_name: Cow::Owned(load_text(&line.name, name_len_untrusted)),
        codec: Cow::Owned(load_text(&line.codec, codec_len_untrusted)),
        layout: (flags_untrusted & HAS_LAYOUT != 0).then_some((size, align)),
        schema: (flags_untrusted & HAS_SCHEMA != 0).then_some(schema),
        id: id_untrusted,
        described: true,
    }
}

/// Stores the first `words.len() * 8` bytes of `text` into `words` (zero-padded).
fn store_text(words: &[AtomicU64], text: &[u8]) {
    for (i, word) in words.iter().enumerate() {
        let mut bytes = [0u8; 8];
        let start = (i * 8).min(text.len());
        let end = (start + 8).min(text.len());
        bytes[..end - start].copy_from_slice(&text[start..end]);
        // Relaxed: SYNC: type described (published by the caller's Release store).
        word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

/// The text of `len_untrusted` bytes stored in `words`: at most what the words hold, bytes
/// that are not UTF-8 replaced, `…` where the recorded text was longer.
fn load_text(words: &[AtomicU64], len_untrusted: u32) -> String {
    let kept = words.len() * 8;
    let len = (len_untrusted as usize).min(kept);
    let mut bytes = Vec::with_capacity(kept);
    for word in words {
        // Relaxed: ordered by the caller's Acquire load (SYNC: type described).
        bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    bytes.truncate(len);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if len_untrusted as usize > kept {
        text.push('…');
    }
    text
}

// The line's text fields hold whole words.
const _: () = assert!(TYPE_NAME_BYTES % 8 == 0 && CODEC_NAME_BYTES % 8 == 0);
