//! Loom models of the MPSC ring (filled in below).
