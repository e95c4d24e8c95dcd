//! Byte offsets of every channel flavor's control block, as plain numbers: where a hostile
//! peer (a test) writes. The authoritative layouts are `offset_of!`-checked in
//! `shm-channel/src/{spsc,mpsc,broadcast}/layout.rs` and `shm-core/src/header.rs`; this
//! crate cannot depend on shm-channel (which dev-depends on it), so the numbers are
//! repeated here once, and `shm-channel/tests/kit_layout.rs` checks them against live
//! channels.

/// How wide a shared word is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// A `u32` (flags, versions, futex words).
    U32,
    /// A `u64` (indices, owners, frame words).
    U64,
}

/// One named word of a control block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// What the word is, for messages (`"tail"`, `"slot 0 intent_end"`).
    pub name: &'static str,
    /// Byte offset from the start of the region.
    pub offset: usize,
    /// Its width.
    pub width: Width,
}

impl Word {
    /// A `u64` word.
    pub const fn u64(name: &'static str, offset: usize) -> Word {
        Word {
            name,
            offset,
            width: Width::U64,
        }
    }

    /// A `u32` word.
    pub const fn u32(name: &'static str, offset: usize) -> Word {
        Word {
            name,
            offset,
            width: Width::U32,
        }
    }
}

/// Where a flavor's ring is: what a hostile test resolves frame targets against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    /// Start of the frames (the region is this plus the capacity).
    pub data: usize,
    /// Frame header bytes (the largest message is the capacity less one header).
    pub frame_header: usize,
    /// The word that holds the position the (first) receiver reads next.
    pub read_position: usize,
    /// The word that holds the position the next frame is written at.
    pub write_position: usize,
    /// Rings of `capacity` bytes the data area holds (MPSC: one lane per sender slot; the
    /// ring described is the first).
    pub lanes: usize,
}

impl Ring {
    /// A ring with these offsets.
    pub const fn new(
        data: usize,
        frame_header: usize,
        read_position: usize,
        write_position: usize,
    ) -> Ring {
        Ring {
            data,
            frame_header,
            read_position,
            write_position,
            lanes: 1,
        }
    }

    /// Region bytes a channel of `capacity` needs.
    pub const fn region_len(&self, capacity: usize) -> usize {
        self.data + self.lanes * capacity
    }
}

/// The shm-core `LayoutHeader` at offset 0 of every channel (64 bytes, on a 128-byte line).
pub mod header {
    use super::Word;

    /// Magic number of the structure (u64).
    pub const MAGIC: usize = 0;
    /// Layout version (u32).
    pub const VERSION: usize = 8;
    /// Platform word: word size and endianness (u32).
    pub const PLATFORM: usize = 12;
    /// Capacity in bytes (u64).
    pub const CAPACITY: usize = 16;
    /// Hash of the shared structs' sizes and alignments (u64).
    pub const HASH: usize = 24;
    /// Region length the creator saw (u64).
    pub const REGION_LEN: usize = 32;
    /// Bytes of the header's line: every flavor's control block starts after it.
    pub const LINE: usize = 128;

    /// Every header word.
    pub const WORDS: [Word; 6] = [
        Word::u64("magic", MAGIC),
        Word::u32("version", VERSION),
        Word::u32("platform", PLATFORM),
        Word::u64("capacity", CAPACITY),
        Word::u64("layout hash", HASH),
        Word::u64("region length", REGION_LEN),
    ];
}

/// An `Event` (shm-core `notify`): two u32s.
pub mod event {
    /// Futex sequence word, bumped by notifications that find a sleeper.
    pub const SEQ: usize = 0;
    /// Number of waiters about to sleep or sleeping.
    pub const WAITERS: usize = 4;
    /// What a sleeper waits for before a wake-up is worth it (u64; 0: any notification).
    pub const MARK: usize = 8;
    /// Bytes of an event.
    pub const LEN: usize = 16;
}

/// The type line (`shm-channel/src/shared/lines.rs`, `TypeLine`), the same in every flavor
/// at its `TYPES` offset, last before the data area: what the channel's typed ends carry.
pub mod types {
    use super::Word;

    /// The fingerprint hash of the typed ends, 0 while untyped (u64).
    pub const FINGERPRINT: usize = 0;
    /// Equal to the fingerprint once the description is written (u64).
    pub const DESCRIBED: usize = 8;
    /// The type's size, where recorded (u64).
    pub const SIZE: usize = 16;
    /// The type's alignment, where recorded (u32).
    pub const ALIGN: usize = 24;
    /// Bit 0: size and alignment recorded; bit 1: schema id recorded (u32).
    pub const FLAGS: usize = 28;
    /// The schema id (u64).
    pub const SCHEMA: usize = 32;
    /// Bytes of the type's name (u32; the first 192 are kept).
    pub const NAME_LEN: usize = 40;
    /// Bytes of the codec's name (u32; the first 16 are kept).
    pub const CODEC_LEN: usize = 44;
    /// The codec's name (16 bytes).
    pub const CODEC: usize = 48;
    /// The type's name (192 bytes).
    pub const NAME: usize = 64;
    /// Bytes of the line.
    pub const LEN: usize = 256;

    /// The words of the type line at `base` that a hostile peer is most likely to bend.
    pub const fn words(base: usize) -> [Word; 5] {
        [
            Word::u64("type fingerprint", base + FINGERPRINT),
            Word::u64("type described", base + DESCRIBED),
            Word::u32("type flags", base + FLAGS),
            Word::u32("type name length", base + NAME_LEN),
            Word::u32("type codec length", base + CODEC_LEN),
        ]
    }
}

/// The SPSC control block (`shm-channel/src/spsc/layout.rs`).
pub mod spsc {
    /// Layout version of the header.
    pub const LAYOUT_VERSION: u64 = 6;
    use super::Word;

    /// Bytes ever published by the sender (u64); the receiver never reads it.
    pub const TAIL: usize = 128;
    /// Bytes ever released by the receiver (u64).
    pub const HEAD: usize = 256;
    /// Identity of the sender's owner (u64).
    pub const SENDER_OWNER: usize = 384;
    /// Identity of the receiver's owner (u64).
    pub const RECEIVER_OWNER: usize = 392;
    /// 1 once the sender was dropped (u32).
    pub const SENDER_CLOSED: usize = 400;
    /// 1 once the receiver was dropped (u32).
    pub const RECEIVER_CLOSED: usize = 404;
    /// Nonzero while the receiver asks for lined frames (u32, a hint).
    pub const LINE_HINT: usize = 420;
    /// Data event: the receiver sleeps on it (seq u32, waiters u32).
    pub const DATA_EVENT: usize = 512;
    /// Space event: the sender sleeps on it (seq u32, waiters u32).
    pub const SPACE_EVENT: usize = 528;
    /// The type line (see [`types`](super::types)).
    pub const TYPES: usize = 640;
    /// Start of the frames.
    pub const DATA: usize = TYPES + super::types::LEN;
    /// Frame header bytes (one frame word).
    pub const FRAME_HEADER: usize = 8;
    /// Where a frame header keeps the lap of its position (`position / capacity`, 16
    /// bits): a header of another lap is not a frame yet.
    pub const FRAME_LAP_SHIFT: u32 = 48;

    /// The ring: frames from [`DATA`], read from [`HEAD`], written at [`TAIL`].
    pub const RING: super::Ring = super::Ring::new(DATA, FRAME_HEADER, HEAD, TAIL);

    /// Region bytes a channel of `capacity` needs.
    pub const fn region_len(capacity: usize) -> usize {
        DATA + capacity
    }

    /// Every word of the control block after the header (the type line's main ones last).
    pub const WORDS: [Word; 18] = [
        Word::u64("tail", TAIL),
        Word::u64("head", HEAD),
        Word::u64("sender owner", SENDER_OWNER),
        Word::u64("receiver owner", RECEIVER_OWNER),
        Word::u32("sender closed", SENDER_CLOSED),
        Word::u32("receiver closed", RECEIVER_CLOSED),
        Word::u32("data event seq", DATA_EVENT),
        Word::u32("data event waiters", DATA_EVENT + 4),
        Word::u32("space event seq", SPACE_EVENT),
        Word::u32("space event waiters", SPACE_EVENT + 4),
        Word::u64("data event mark", DATA_EVENT + 8),
        Word::u64("space event mark", SPACE_EVENT + 8),
        Word::u32("line hint", LINE_HINT),
        super::types::words(TYPES)[0],
        super::types::words(TYPES)[1],
        super::types::words(TYPES)[2],
        super::types::words(TYPES)[3],
        super::types::words(TYPES)[4],
    ];
}

/// The MPSC control block (`shm-channel/src/mpsc/layout.rs`): a lane per sender slot.
pub mod mpsc {
    /// Layout version of the header.
    pub const LAYOUT_VERSION: u64 = 6;
    use super::Word;

    /// Identity of the receiver's owner (u64).
    pub const RECEIVER_OWNER: usize = 136;
    /// 1 once the receiver was dropped (u32).
    pub const RECEIVER_CLOSED: usize = 148;
    /// Sender slots in use (u32).
    pub const SENDERS: usize = 152;
    /// Data event: the receiver sleeps on it (seq u32, waiters u32).
    pub const DATA_EVENT: usize = 256;
    /// Space event (seq u32, waiters u32): closing wake-ups.
    pub const SPACE_EVENT: usize = 272;
    /// Lanes (= sender slots) of the channel (u64, fixed at creation).
    pub const LANES: usize = 384;
    /// Bit `i`: lane `i` was ever used (u64).
    pub const USED: usize = 392;
    /// First sender slot.
    pub const SLOTS: usize = 512;
    /// Bytes of one sender slot's lines.
    pub const SLOT_LEN: usize = 384;
    /// Sender slots the control block has room for.
    pub const MAX_SENDERS: usize = 64;
    /// Sender slots (and lanes) of a channel built without `max_senders`.
    pub const DEFAULT_LANES: usize = 8;
    /// In a slot: identity of its owner, 0 = free (u64).
    pub const SLOT_OWNER: usize = 0;
    /// In a slot: its space event (seq u32, waiters u32).
    pub const SLOT_SPACE_EVENT: usize = 8;
    /// In a slot: nonzero while the receiver asks for lined frames in its lane (u32, a
    /// hint).
    pub const SLOT_LINE_HINT: usize = 24;
    /// In a slot: its lane's recorded tail (u64).
    pub const SLOT_TAIL: usize = 128;
    /// In a slot: its lane's head (u64).
    pub const SLOT_HEAD: usize = 256;
    /// The type line (see [`types`](super::types)), after the sender slots.
    pub const TYPES: usize = SLOTS + MAX_SENDERS * SLOT_LEN;
    /// Start of the lanes: lane `i` of a channel of `capacity` per lane at
    /// `DATA + i × capacity`.
    pub const DATA: usize = TYPES + super::types::LEN;
    /// Frame header bytes (one frame word).
    pub const FRAME_HEADER: usize = 8;
    /// Where a frame header keeps the lap of its position in its lane.
    pub const FRAME_LAP_SHIFT: u32 = 48;

    /// Offset of sender slot `index`.
    pub const fn slot(index: usize) -> usize {
        SLOTS + index * SLOT_LEN
    }

    /// Lane 0 (the creating sender's): frames from [`DATA`], read from its head, written
    /// at its tail.
    pub const RING: super::Ring = super::Ring {
        lanes: DEFAULT_LANES,
        ..super::Ring::new(DATA, FRAME_HEADER, slot(0) + SLOT_HEAD, slot(0) + SLOT_TAIL)
    };

    /// Region bytes a channel of `capacity` per lane needs, with the default lanes.
    pub const fn region_len(capacity: usize) -> usize {
        DATA + DEFAULT_LANES * capacity
    }

    /// Every word of the control block after the header, but the sender slots (the type
    /// line's main ones last).
    pub const WORDS: [Word; 16] = [
        Word::u64("receiver owner", RECEIVER_OWNER),
        Word::u32("sender count", SENDERS),
        Word::u32("receiver closed", RECEIVER_CLOSED),
        Word::u32("data event seq", DATA_EVENT),
        Word::u32("data event waiters", DATA_EVENT + 4),
        Word::u32("space event seq", SPACE_EVENT),
        Word::u32("space event waiters", SPACE_EVENT + 4),
        Word::u64("lane count", LANES),
        Word::u64("lanes used", USED),
        Word::u64("data event mark", DATA_EVENT + 8),
        Word::u64("space event mark", SPACE_EVENT + 8),
        super::types::words(TYPES)[0],
        super::types::words(TYPES)[1],
        super::types::words(TYPES)[2],
        super::types::words(TYPES)[3],
        super::types::words(TYPES)[4],
    ];

    /// The words of sender slot `index`: owner, space event (sequence, waiters), line
    /// hint, its lane's tail and head, the space event's mark.
    pub const fn slot_words(index: usize) -> [Word; 7] {
        let base = slot(index);
        [
            Word::u64("slot owner", base + SLOT_OWNER),
            Word::u32("slot space event seq", base + SLOT_SPACE_EVENT),
            Word::u32("slot space event waiters", base + SLOT_SPACE_EVENT + 4),
            Word::u64("lane tail", base + SLOT_TAIL),
            Word::u64("lane head", base + SLOT_HEAD),
            Word::u64("slot space event mark", base + SLOT_SPACE_EVENT + 8),
            Word::u32("slot line hint", base + SLOT_LINE_HINT),
        ]
    }
}

/// The broadcast control block (`shm-channel/src/broadcast/layout.rs`).
pub mod broadcast {
    /// Layout version of the header.
    pub const LAYOUT_VERSION: u64 = 6;
    use super::Word;

    /// Bytes ever published (u64, 16-aligned).
    pub const TAIL: usize = 128;
    /// Bytes below this may be overwritten (u64).
    pub const OLDEST: usize = 136;
    /// Sequence number of the next message (u64), stored with every publication.
    pub const NEXT_SEQ: usize = 144;
    /// Identity of the sender's owner (u64).
    pub const SENDER_OWNER: usize = 256;
    /// 1 once the sender was dropped (u32).
    pub const SENDER_CLOSED: usize = 272;
    /// 0 back-pressure, 1 overwrite (u32).
    pub const POLICY: usize = 284;
    /// Data event (seq u32, waiters u32).
    pub const DATA_EVENT: usize = 384;
    /// Space event (seq u32, waiters u32).
    pub const SPACE_EVENT: usize = 400;
    /// First reader slot.
    pub const READERS: usize = 512;
    /// Bytes of one reader slot.
    pub const READER_LEN: usize = 128;
    /// Reader slots.
    pub const MAX_READERS: usize = 16;
    /// In a reader slot: identity of its owner, 0 = free (u64).
    pub const READER_OWNER: usize = 0;
    /// In a reader slot: next byte position it reads (u64).
    pub const READER_CURSOR: usize = 8;
    /// The type line (see [`types`](super::types)), after the reader slots.
    pub const TYPES: usize = READERS + MAX_READERS * READER_LEN;
    /// Start of the frames.
    pub const DATA: usize = TYPES + super::types::LEN;
    /// Frame header bytes: stamp word (sequence number + 1), then the frame word.
    pub const FRAME_HEADER: usize = 16;

    /// Offset of reader slot `index`.
    pub const fn reader(index: usize) -> usize {
        READERS + index * READER_LEN
    }

    /// The ring: frames from [`DATA`], read from reader slot 0's cursor, written at [`TAIL`].
    pub const RING: super::Ring =
        super::Ring::new(DATA, FRAME_HEADER, reader(0) + READER_CURSOR, TAIL);

    /// Region bytes a channel of `capacity` needs.
    pub const fn region_len(capacity: usize) -> usize {
        DATA + capacity
    }

    /// Every word of the control block after the header, but the reader slots (the type
    /// line's main ones last).
    pub const WORDS: [Word; 16] = [
        Word::u64("tail", TAIL),
        Word::u64("oldest", OLDEST),
        Word::u64("sender owner", SENDER_OWNER),
        Word::u32("sender closed", SENDER_CLOSED),
        Word::u32("policy", POLICY),
        Word::u32("data event seq", DATA_EVENT),
        Word::u32("data event waiters", DATA_EVENT + 4),
        Word::u32("space event seq", SPACE_EVENT),
        Word::u32("space event waiters", SPACE_EVENT + 4),
        Word::u64("data event mark", DATA_EVENT + 8),
        Word::u64("space event mark", SPACE_EVENT + 8),
        super::types::words(TYPES)[0],
        super::types::words(TYPES)[1],
        super::types::words(TYPES)[2],
        super::types::words(TYPES)[3],
        super::types::words(TYPES)[4],
    ];

    /// The two words of reader slot `index`.
    pub const fn reader_words(index: usize) -> [Word; 2] {
        let base = reader(index);
        [
            Word::u64("reader owner", base + READER_OWNER),
            Word::u64("reader cursor", base + READER_CURSOR),
        ]
    }
}

/// Frame header words (`shm-channel/src/frame.rs`): length in bits 0..32, tag in 32..40,
/// producer slot in 40..48 (MPSC), zero above; 0 means nothing written yet.
pub mod frame {
    /// Tag of a committed message.
    pub const TAG_DATA: u64 = 0xD1;
    /// Tag of a committed message padded to the next 64-byte line of its lane.
    pub const TAG_LINED: u64 = 0xD3;
    /// Tag of a pad up to the ring end.
    pub const TAG_PAD: u64 = 0xAD;
    /// Tag of a claimed, uncommitted frame (MPSC).
    pub const TAG_CLAIMED: u64 = 0xC1;
    /// Tag of committed filler (MPSC).
    pub const TAG_SKIP: u64 = 0x5C;

    /// The frame word of `tag` with `len` and producer `slot`.
    pub const fn word(tag: u64, len: u64, slot: u64) -> u64 {
        (len & 0xffff_ffff) | (tag << 32) | ((slot & 0xff) << 40)
    }

    /// A data frame word.
    pub const fn data(len: u64, slot: u64) -> u64 {
        word(TAG_DATA, len, slot)
    }

    /// A lined data frame word (a lane's).
    pub const fn lined(len: u64) -> u64 {
        word(TAG_LINED, len, 0)
    }

    /// A pad frame word of `len` bytes.
    pub const fn pad(len: u64) -> u64 {
        word(TAG_PAD, len, 0)
    }

    /// A claimed frame word (MPSC).
    pub const fn claimed(len: u64, slot: u64) -> u64 {
        word(TAG_CLAIMED, len, slot)
    }

    /// A skip frame word (MPSC).
    pub const fn skip(len: u64) -> u64 {
        word(TAG_SKIP, len, 0)
    }

    /// Ring bytes of a frame with `payload` bytes and an 8-byte header (SPSC, MPSC).
    pub const fn frame_len(payload: u64) -> u64 {
        8 + payload.next_multiple_of(8)
    }
}
