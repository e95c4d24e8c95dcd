//! Who is exporting on a key: publisher ids, and the liveliness tokens that announce them.
//!
//! Each exporter declares a zenoh liveliness token `<key>/_shm_bridge/<v>-<layout>-<id>`
//! (format version, layout tag and publisher id in hex). zenoh withdraws the token when
//! the exporter's session ends for any reason — a clean drop, a killed process (its kernel
//! closes the TCP connection), or a link silent for a lease — and importers subscribed to
//! `<key>/_shm_bridge/*` see the withdrawal.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::header::FORMAT_VERSION;
use crate::Layout;

/// The chunk between the user's key and the token's own chunk.
const TOKEN_CHUNK: &str = "_shm_bridge";

/// A fresh random publisher id (never 0, which names "unknown" in errors).
pub(crate) fn new_publisher_id() -> u64 {
    // std's RandomState is seeded from the OS's randomness once per process and advanced
    // per instance; the pid and the clock make ids of separate processes differ as well.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish().max(1)
}

/// The liveliness token key of an exporter.
pub(crate) fn token_key(key: &str, layout: Layout, publisher: u64) -> String {
    format!(
        "{key}/{TOKEN_CHUNK}/{FORMAT_VERSION}-{:08x}-{publisher:016x}",
        layout.tag()
    )
}

/// The key of the queryable through which importers of `key` confirm, to an exporter that
/// asks after its final pack, that they received everything before the query.
pub(crate) fn flush_key(key: &str) -> String {
    format!("{key}/{TOKEN_CHUNK}/flush")
}

/// The key expression an importer subscribes to for the tokens of `key`'s exporters.
pub(crate) fn token_pattern(key: &str) -> String {
    format!("{key}/{TOKEN_CHUNK}/*")
}

/// An exporter as its token names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    pub version: u8,
    pub layout: u32,
    pub publisher: u64,
}

/// Parses the last chunk of a token key; `None` for a token this crate did not make.
pub(crate) fn parse_token(key: &str) -> Option<TokenInfo> {
    let last = key.rsplit('/').next()?;
    let mut parts = last.split('-');
    let version = parts.next()?.parse().ok()?;
    let layout = u32::from_str_radix(parts.next()?, 16).ok()?;
    let publisher = u64::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(TokenInfo {
        version,
        layout,
        publisher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_key_parses_back() {
        let key = token_key("a/b", Layout::new(0xabc), 0x1234_5678_9abc_def0);
        assert_eq!(key, "a/b/_shm_bridge/2-00000abc-123456789abcdef0");
        assert_eq!(
            parse_token(&key),
            Some(TokenInfo {
                version: FORMAT_VERSION,
                layout: 0xabc,
                publisher: 0x1234_5678_9abc_def0
            })
        );
        assert_eq!(parse_token("a/b/_shm_bridge/garbage"), None);
        assert_eq!(parse_token("a/b/_shm_bridge/1-2-3-4"), None);
    }

    #[test]
    fn publisher_ids_differ() {
        assert_ne!(new_publisher_id(), new_publisher_id());
    }
}
