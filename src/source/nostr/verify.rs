//! A note's id and signature: the id must be the sha256 of its NIP-01
//! serialisation and the signature a BIP-340 Schnorr signature by its key
//! over that id. Apart from the decoding so that the proof a post needs
//! (`Verified`) can be made here only.

use k256::schnorr::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::Event;
use crate::source::FrameError;

/// Why a note failed verification (the counter names).
pub mod reject {
    pub const ID_MALFORMED: &str = "nostr_id_malformed";
    pub const ID_MISMATCH: &str = "nostr_id_mismatch";
    pub const PUBKEY_MALFORMED: &str = "nostr_pubkey_malformed";
    pub const SIG_MALFORMED: &str = "nostr_sig_malformed";
    pub const SIG_INVALID: &str = "nostr_sig_invalid";
}

/// The NIP-01 id of a note: sha256 of `[0,pubkey,created_at,kind,tags,content]`
/// serialised without whitespace (serde_json escapes exactly as NIP-01 asks:
/// `"`, `\\` and control characters; other characters as UTF-8).
pub fn event_id(
    pubkey: &str,
    created_at: i64,
    kind: u64,
    tags: &[Vec<String>],
    content: &str,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Written into the hash as it is serialised: no copy of the note. A
    // tuple is a JSON array; writing to a hasher cannot fail.
    let canonical = (0, pubkey, created_at, kind, tags, content);
    if serde_json::to_writer(&mut hasher, &canonical).is_err() {
        return [0; 32];
    }
    hasher.finalize().into()
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Lowercase only, as NIP-01 requires: one spelling per id.
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// An event's id, key and signature as bytes, once its shape is checked.
pub(super) struct Shape {
    id: [u8; 32],
    pubkey: [u8; 32],
    sig: [u8; 64],
}

/// Checks what every event must be, whatever its kind or age: `id`,
/// `pubkey` and `sig` lowercase hex of their lengths, `id` the hash of the
/// event. Done before an event is classified: a relay sending only
/// `{"id":"","kind":7,...}` every 5 s had each one skipped as a non-post,
/// counted as data, and looked healthy for ever. (The signature, the
/// costly part, is checked for posts only: [`verify`].)
pub(super) fn shape(event: &Event) -> Result<Shape, FrameError> {
    let id: [u8; 32] = hex_array(&event.id).ok_or(FrameError::Unverified(reject::ID_MALFORMED))?;
    let pubkey: [u8; 32] =
        hex_array(&event.pubkey).ok_or(FrameError::Unverified(reject::PUBKEY_MALFORMED))?;
    let sig: [u8; 64] =
        hex_array(&event.sig).ok_or(FrameError::Unverified(reject::SIG_MALFORMED))?;
    if event_id(
        &event.pubkey,
        event.created_at,
        event.kind,
        &event.tags,
        &event.content,
    ) != id
    {
        return Err(FrameError::Unverified(reject::ID_MISMATCH));
    }
    Ok(Shape { id, pubkey, sig })
}

/// Proof that a note's signature verified: only [`verify`] makes one, and
/// a note becomes a post only with one ([`post`](super::post)).
pub(super) struct Verified(());

/// Checks a well-shaped event's BIP-340 signature by its key over its id:
/// the costly part of decoding a note (tens of microseconds), done where
/// the note is decoded: on its relay's connection task live
/// ([`NostrProtocol`](super::protocol::NostrProtocol)'s `check`), on a replay's thread pool.
pub(super) fn verify(shape: &Shape) -> Result<Verified, FrameError> {
    #[cfg(test)]
    VERIFIED_HERE.with(|n| n.set(n.get() + 1));
    let Shape { id, pubkey, sig } = shape;
    let key = VerifyingKey::from_bytes(&(*pubkey).into())
        .map_err(|_| FrameError::Unverified(reject::PUBKEY_MALFORMED))?;
    let sig =
        Signature::try_from(&sig[..]).map_err(|_| FrameError::Unverified(reject::SIG_MALFORMED))?;
    key.verify_raw(id, &sig)
        .map_err(|_| FrameError::Unverified(reject::SIG_INVALID))?;
    Ok(Verified(()))
}

#[cfg(test)]
thread_local! {
    /// Signatures checked on this thread: the tests that say on which
    /// thread the costly check runs read it.
    static VERIFIED_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many signatures were checked on the calling thread so far.
#[cfg(test)]
pub fn verified_on_this_thread() -> u64 {
    VERIFIED_HERE.with(std::cell::Cell::get)
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The id is the sha256 of NIP-01's serialisation, written here by
    /// hand (escapes of `"`, `\\` and control characters, other characters
    /// as UTF-8, no white space) rather than by the serialiser under test.
    #[test]
    fn the_id_is_the_hash_of_nip_01s_serialisation() {
        let pubkey = "a".repeat(64);
        let tags = vec![
            vec!["t".to_owned(), "down".to_owned()],
            vec!["e".to_owned()],
        ];
        let content = "is \"x\" down?\n\\ 😀\u{1}";
        let canonical = format!(
            r#"[0,"{pubkey}",1783175000,1,[["t","down"],["e"]],"is \"x\" down?\n\\ 😀\u0001"]"#
        );
        let want: [u8; 32] = Sha256::digest(canonical.as_bytes()).into();
        assert_eq!(event_id(&pubkey, 1_783_175_000, 1, &tags, content), want);
        assert_eq!(
            event_id(&pubkey, 1_783_175_000, 1, &[], ""),
            <[u8; 32]>::from(Sha256::digest(format!(
                r#"[0,"{pubkey}",1783175000,1,[],""]"#
            )))
        );
    }
}
