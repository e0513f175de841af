//! The bucket as backup and restore both see it: the catalog of complete
//! backups, and the stream that moves a snapshot through the archive check
//! and the plugin chain (written by a backup, read back and checked by a
//! restore).

pub mod catalog;
pub mod stream;
