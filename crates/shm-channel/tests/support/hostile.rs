//! (filled in later)
