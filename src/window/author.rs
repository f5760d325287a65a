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

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An author id's digest (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AuthorId(pub [u8; 16]);

impl AuthorId {
    /// The digest of `author`, the same in every run.
    pub fn of(author: &str) -> AuthorId {
        let digest = Sha256::digest(author.as_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&digest[..16]);
        AuthorId(bytes)
    }
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
}
