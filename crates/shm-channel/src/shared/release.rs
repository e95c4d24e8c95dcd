//! Batched releases, for every ring whose reader stores a position (a lane's head, a
//! broadcast cursor): the reader may store it once per batch of released frames rather
//! than once per frame, so that it pays the store and its wake check (a full fence under
//! the `SeqCst` handshake) once per batch, and a writer kept waiting by a full ring reloads
//! the position once per batch. Whatever waits in a batch is stored whenever the reader
//! finds its ring empty, before it waits, and when it closes or is handed over.

/// Frames released before the position is stored, at most (fewer when the batch's bytes
/// are reached first).
pub(crate) const RELEASE_FRAMES: u32 = 32;

/// What a reader released and has not stored yet.
#[derive(Debug)]
pub(crate) struct ReleaseBatch {
    /// Released bytes that may wait before the position is stored; 0 stores it on every
    /// release.
    bytes: u64,
    /// The position last stored in shared memory.
    stored: u64,
    /// Frames released since.
    frames: u32,
}

impl ReleaseBatch {
    /// No batching, and `stored` the position in shared memory.
    pub(crate) fn new(stored: u64) -> ReleaseBatch {
        ReleaseBatch {
            bytes: 0,
            stored,
            frames: 0,
        }
    }

    /// Lets up to `bytes` of released frames wait (at most `limit`; 0: none).
    pub(crate) fn set_bytes(&mut self, bytes: u64, limit: u64) {
        self.bytes = bytes.min(limit);
    }

    /// One more frame released, the reader now at `position`: whether to store the
    /// position now.
    #[inline]
    pub(crate) fn released(&mut self, position: u64) -> bool {
        if self.bytes == 0 {
            return true;
        }
        self.frames += 1;
        self.frames >= RELEASE_FRAMES || position.wrapping_sub(self.stored) > self.bytes
    }

    /// One more frame skipped (a pad): stored with the next release.
    #[inline]
    pub(crate) fn skipped(&mut self) {
        self.frames += 1;
    }

    /// Whether released frames wait to be stored, the reader at `position`.
    #[inline]
    pub(crate) fn pending(&self, position: u64) -> bool {
        position != self.stored
    }

    /// The reader stored `position`.
    #[inline]
    pub(crate) fn stored(&mut self, position: u64) {
        self.stored = position;
        self.frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_batch_every_release_is_stored() {
        let mut batch = ReleaseBatch::new(0);
        assert!(batch.released(16));
        assert!(batch.released(32));
    }

    #[test]
    fn a_batch_is_stored_when_its_bytes_or_its_frames_are_reached() {
        let mut batch = ReleaseBatch::new(0);
        batch.set_bytes(64, 1024);
        assert!(!batch.released(32));
        assert!(!batch.released(64));
        assert!(batch.released(80), "past 64 bytes");
        batch.stored(80);
        assert!(!batch.pending(80));
        for frame in 1..RELEASE_FRAMES {
            assert!(!batch.released(80 + u64::from(frame)), "frame {frame}");
        }
        assert!(batch.released(80 + 32), "the 32nd frame");
        assert!(batch.pending(112));
    }

    #[test]
    fn a_batch_never_exceeds_its_limit() {
        let mut batch = ReleaseBatch::new(0);
        batch.set_bytes(1 << 20, 64);
        assert!(!batch.released(64));
        assert!(batch.released(65));
    }
}
