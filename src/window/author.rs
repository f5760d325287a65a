//! Authors as the windows remember them: a fixed-width digest of the id,
//! not the id. An id may be up to 2 KiB (a hostile Nostr or Mastodon
//! source chooses it), and what is remembered of it (a bucket's distinct
//! authors, kept 8 days; an author's admissions, saved with every
//! checkpoint) only needs to tell authors apart.
//!
//! The digest is saved, so it must come out the same in every run and on
//! every machine: SHA-256, cut to 128 bits (not a per-process hasher). A
//! cryptographic hash, because the ids are chosen by whoever posts:
//! colliding two chosen ids of 128 bits takes about 2^64 tries, and ids
//! met by chance collide with odds of about n²/2^129 (10^-27 for a
//! million authors in one bucket). A collision could only merge two
//! authors into one, never make one count twice.
//!
//! The servers that vouch for authors ([`ServerId`]) are remembered the
//! same way, for the same reasons: their names come off the wire too.

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// An author id's digest (see the module documentation). Stored as its 16
/// bytes; read from the id itself in a record of store format 6 or
/// earlier ([`super::reading_format`]), which held the ids where it now
/// holds digests: in buckets, in the checkpoint's open buckets and in the
/// detector's recent window alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AuthorId(pub [u8; 16]);

impl<'de> Deserialize<'de> for AuthorId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if crate::store_format::reading_before(7) {
            String::deserialize(deserializer).map(|id| AuthorId::of(&id))
        } else {
            <[u8; 16]>::deserialize(deserializer).map(AuthorId)
        }
    }
}

impl AuthorId {
    /// The digest of `author`, the same in every run.
    pub fn of(author: &str) -> AuthorId {
        AuthorId(digest(author))
    }
}

/// The digest of a server that vouches for authors (see
/// [`crate::source::Source::server_of`]), as [`AuthorId`] is an author's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerId(pub [u8; 16]);

impl ServerId {
    /// The digest of `server`, the same in every run.
    pub fn of(server: &str) -> ServerId {
        ServerId(digest(server))
    }
}

/// SHA-256 of `id`, cut to 128 bits.
fn digest(id: &str) -> [u8; 16] {
    let digest = Sha256::digest(id.as_bytes());
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes
}

impl From<&str> for AuthorId {
    fn from(author: &str) -> Self {
        AuthorId::of(author)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is saved: a change of algorithm would count every
    /// author of the stored buckets again as new. Fixed against SHA-256's
    /// published value for "abc".
    #[test]
    fn the_digest_is_sha_256_cut_to_128_bits() {
        assert_eq!(
            AuthorId::of("abc").0,
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23
            ]
        );
        assert_ne!(AuthorId::of("did:plc:a"), AuthorId::of("did:plc:b"));
    }

    /// Digests read back as themselves, in postcard and JSON; inside
    /// a record of format 6 an id written as a string reads as its digest,
    /// and the mode ends with the read.
    #[test]
    fn digests_read_back_and_old_ids_read_as_their_digests() {
        let ids = vec![AuthorId::of("did:plc:a"), AuthorId::of("did:plc:b")];
        let bytes = postcard::to_allocvec(&ids).expect("encode");
        let back: Vec<AuthorId> = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, ids);
        let json = serde_json::to_vec(&ids).expect("json");
        let back: Vec<AuthorId> = serde_json::from_slice(&json).expect("json back");
        assert_eq!(back, ids);
        let old = postcard::to_allocvec(&vec!["did:plc:a", "did:plc:b"]).expect("encode");
        let read = super::super::reading_format(6, || postcard::from_bytes::<Vec<AuthorId>>(&old))
            .expect("decode");
        assert_eq!(read, ids);
        assert_ne!(
            postcard::from_bytes::<Vec<AuthorId>>(&old).ok(),
            Some(ids),
            "outside the mode the bytes are digests"
        );
    }
}
