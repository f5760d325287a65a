//! Jetstream's dictionary-zstd compression (`protocols.md` §1b).
//!
//! Each compressed frame is a binary websocket message holding one complete
//! zstd frame made with a dictionary; its decompressed bytes are exactly
//! the text frame. v1's dictionary is served by no endpoint, so it ships in
//! the binary (`zstd_dictionary_v1`, see `README.md` beside it for its
//! origin and licence). v2's is fetched from the server
//! (`getZstdDictionary`), cached in the state directory by id, and fetched
//! again when the server answers `UnknownZstdDictionary`.
//!
//! Decompression is bounded: the output buffer is capped at the frame
//! limit, so a frame that would expand past it is rejected by zstd itself,
//! never allocated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::source::url::SourceUrl;

/// Jetstream v1's dictionary (zstd dictionary id 1612007021, 112,640 bytes).
pub const V1_DICTIONARY: &[u8] = include_bytes!("zstd_dictionary_v1");

/// The v2 dictionary endpoint, on the subscription's host.
pub const DICTIONARY_PATH: &str = "/xrpc/network.bsky.jetstream.getZstdDictionary";

/// The largest dictionary accepted from a server.
pub const MAX_DICTIONARY_BYTES: usize = 4 << 20;

/// A zstd dictionary's magic number (RFC 8878 §5), little-endian on disk.
const DICTIONARY_MAGIC: u32 = 0xEC30_A437;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressionError {
    #[error("not a zstd dictionary ({0})")]
    NotADictionary(String),
    #[error("compressed frame of {len} bytes exceeds the limit of {limit} bytes")]
    CompressedTooLarge { len: usize, limit: usize },
    #[error("frame expands past the limit of {limit} bytes")]
    ExpandsTooFar { limit: usize },
    #[error("frame made with dictionary {frame}, but this connection uses {ours}")]
    WrongDictionary { frame: u32, ours: u32 },
    #[error("cannot decompress: {0}")]
    Corrupt(String),
    #[error("decompressed frame is not UTF-8 (valid up to byte {0})")]
    NotUtf8(usize),
    /// The subscription URL names no place to fetch a dictionary from.
    /// (The URLs here are [`SourceUrl`]s, masked in the message: it is
    /// logged at every connection, and a subscription URL's user and
    /// password go on to the dictionary's.)
    #[error("no dictionary URL for {0}")]
    NoDictionaryUrl(SourceUrl),
    /// The request failed (the transport's message: `reqwest::Error` is
    /// not comparable).
    #[error("GET {url}: {reason}")]
    Fetch { url: SourceUrl, reason: String },
    /// The server refused, with the start of its answer.
    #[error("GET {url}: HTTP {status}: {body}")]
    Refused {
        url: SourceUrl,
        status: String,
        body: String,
    },
    #[error("GET {url}: dictionary larger than {limit} bytes")]
    DictionaryTooLarge { url: SourceUrl, limit: usize },
    #[error("GET {url}: {source}")]
    Fetched {
        url: SourceUrl,
        source: Box<CompressionError>,
    },
    #[error("GET {url}: no answer within {timeout:?}")]
    NoAnswer { url: SourceUrl, timeout: Duration },
}

/// A zstd dictionary with its id.
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    pub id: u32,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dictionary(id {}, {} bytes)", self.id, self.bytes.len())
    }
}

impl Dictionary {
    /// Checks the magic and reads the id (bytes 4..8, little-endian).
    pub fn parse(bytes: Vec<u8>) -> Result<Dictionary, CompressionError> {
        if bytes.len() > MAX_DICTIONARY_BYTES {
            return Err(CompressionError::NotADictionary(format!(
                "{} bytes, more than {MAX_DICTIONARY_BYTES}",
                bytes.len()
            )));
        }
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        if word(0) != Some(DICTIONARY_MAGIC) {
            return Err(CompressionError::NotADictionary(
                "wrong magic number".into(),
            ));
        }
        match word(4) {
            Some(id) if id != 0 => Ok(Dictionary { id, bytes }),
            _ => Err(CompressionError::NotADictionary("no id".into())),
        }
    }

    /// The dictionary v1 servers compress with.
    pub fn v1() -> Dictionary {
        Dictionary {
            id: u32::from_le_bytes([
                V1_DICTIONARY[4],
                V1_DICTIONARY[5],
                V1_DICTIONARY[6],
                V1_DICTIONARY[7],
            ]),
            bytes: V1_DICTIONARY.to_vec(),
        }
    }
}

/// Decompresses frames made with one dictionary, within limits.
pub struct Inflater {
    id: u32,
    decompressor: zstd::bulk::Decompressor<'static>,
    /// Decompressed into, then copied out at its length: decompressing
    /// into a fresh buffer of the limit's capacity gave every frame's text
    /// a megabyte of capacity (4 GiB reserved for a full channel).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inflater(dictionary {})", self.id)
    }
}

impl Inflater {
    pub fn new(dictionary: &Dictionary) -> Result<Inflater, CompressionError> {
        let decompressor = zstd::bulk::Decompressor::with_dictionary(&dictionary.bytes)
            .map_err(|e| CompressionError::NotADictionary(e.to_string()))?;
        Ok(Inflater {
            id: dictionary.id,
            decompressor,
            scratch: Vec::new(),
        })
    }

    pub fn dictionary_id(&self) -> u32 {
        self.id
    }

    /// One compressed frame to its text: at most `max_compressed` bytes in,
    /// at most `max_text` bytes out (the buffer is never larger).
    pub fn inflate(
        &mut self,
        frame: &[u8],
        max_compressed: usize,
        max_text: usize,
    ) -> Result<String, CompressionError> {
        if frame.len() > max_compressed {
            return Err(CompressionError::CompressedTooLarge {
                len: frame.len(),
                limit: max_compressed,
            });
        }
        if let Some(id) = zstd::zstd_safe::get_dict_id_from_frame(frame)
            && id.get() != self.id
        {
            return Err(CompressionError::WrongDictionary {
                frame: id.get(),
                ours: self.id,
            });
        }
        // The declared size, when there is one, decides early and without
        // allocating; the capped buffer decides for frames that lie or
        // declare nothing.
        if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(frame)
            && size > max_text as u64
        {
            return Err(CompressionError::ExpandsTooFar { limit: max_text });
        }
        self.scratch.clear();
        self.scratch.reserve(max_text);
        // The destination is the buffer's spare capacity, which may exceed
        // `max_text`: the limit is checked on the length written.
        let written = self
            .decompressor
            .decompress_to_buffer(frame, &mut self.scratch)
            .map_err(|e| {
                if e.to_string().contains("Destination buffer is too small") {
                    CompressionError::ExpandsTooFar { limit: max_text }
                } else {
                    CompressionError::Corrupt(e.to_string())
                }
            })?;
        if written > max_text {
            return Err(CompressionError::ExpandsTooFar { limit: max_text });
        }
        std::str::from_utf8(&self.scratch[..written])
            .map(str::to_owned)
            .map_err(|e| CompressionError::NotUtf8(e.valid_up_to()))
    }
}

/// The v2 dictionary URL on a subscription URL's host (`ws`→`http`,
/// `wss`→`https`), for the current dictionary or a given id.
pub fn dictionary_url(subscription: &str, id: Option<u32>) -> Option<String> {
    let mut url = reqwest::Url::parse(subscription).ok()?;
    let scheme = match url.scheme() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    url.set_path(DICTIONARY_PATH);
    url.set_query(None);
    url.set_fragment(None);
    if let Some(id) = id {
        url.query_pairs_mut().append_pair("id", &id.to_string());
    }
    Some(url.to_string())
}

/// v2 dictionaries on disk: `<state dir>/jetstream-dictionaries/<id>.zdict`.
#[derive(Debug, Clone)]
pub struct DictionaryCache {
    dir: PathBuf,
}

impl DictionaryCache {
    pub fn new(state_dir: &Path) -> Self {
        DictionaryCache {
            dir: state_dir.join("jetstream-dictionaries"),
        }
    }

    fn path(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{id}.zdict"))
    }

    /// The most recently stored dictionary, if a valid one is there.
    pub fn newest(&self) -> Option<Dictionary> {
        let entries = std::fs::read_dir(&self.dir).ok()?;
        let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "zdict") {
                continue;
            }
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if best.as_ref().is_none_or(|(t, _)| modified > *t) {
                best = Some((modified, path));
            }
        }
        let (_, path) = best?;
        self.read(&path)
    }

    fn read(&self, path: &Path) -> Option<Dictionary> {
        let bytes = std::fs::read(path).ok()?;
        match Dictionary::parse(bytes) {
            Ok(d) if self.path(d.id) == path => Some(d),
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "cached Jetstream dictionary is unusable; ignoring it");
                None
            }
        }
    }

    /// Stores a dictionary under its id (write to a temporary file, then
    /// rename, so a crash never leaves half a dictionary), if zstd loads
    /// it, and deletes every other but the newest: a server that named a
    /// new dictionary at every request, each failing to load, filled the
    /// cache with 161 files (162 MB) in 20 s. At most [`KEPT_DICTIONARIES`]
    /// stay.
    pub fn store(&self, dictionary: &Dictionary) -> std::io::Result<()> {
        Inflater::new(dictionary)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{}.tmp", dictionary.id));
        std::fs::write(&tmp, &dictionary.bytes)?;
        let path = self.path(dictionary.id);
        std::fs::rename(&tmp, &path)?;
        self.prune(&path)
    }

    /// Deletes the cached dictionaries but `kept` and the newest others
    /// (up to [`KEPT_DICTIONARIES`] in all), and temporary files a crash
    /// left.
    fn prune(&self, kept: &Path) -> std::io::Result<()> {
        let mut others = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                std::fs::remove_file(&path)?;
            } else if name.ends_with(".zdict") && path != kept {
                let modified = entry.metadata()?.modified()?;
                others.push((modified, path));
            }
        }
        others.sort();
        let keep = KEPT_DICTIONARIES.saturating_sub(1);
        let gone = others.len().saturating_sub(keep);
        for (_, path) in others.into_iter().take(gone) {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// Dictionaries kept in the cache: the one in use and the one before, for
/// a server that goes back to it.
pub const KEPT_DICTIONARIES: usize = 2;

/// Bytes of a refused dictionary request's answer read for its error.
const ERROR_BODY_BYTES: usize = 1024;

/// Fetches the server's current dictionary (or a given id), bounded in
/// size and time.
pub async fn fetch(
    client: &reqwest::Client,
    subscription: &SourceUrl,
    id: Option<u32>,
    timeout: Duration,
) -> Result<Dictionary, CompressionError> {
    let url = dictionary_url(subscription.secret(), id)
        .map(SourceUrl::from)
        .ok_or_else(|| CompressionError::NoDictionaryUrl(subscription.clone()))?;
    // The transport's message without its copy of the URL: `url` is
    // shown, masked, already.
    let failed = |e: reqwest::Error| CompressionError::Fetch {
        url: url.clone(),
        reason: e.without_url().to_string(),
    };
    let too_large = || CompressionError::DictionaryTooLarge {
        url: url.clone(),
        limit: MAX_DICTIONARY_BYTES,
    };
    let request = async {
        let mut response = client.get(url.secret()).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            // The start of the answer is all the error shows: the rest is
            // never read (it was, whole, however large, until the timeout).
            let body = crate::http_client::read_bounded(&mut response, ERROR_BODY_BYTES).await;
            let body = crate::text::server_text(&String::from_utf8_lossy(&body));
            return Err(CompressionError::Refused {
                url: url.clone(),
                status: status.to_string(),
                body,
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DICTIONARY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if bytes.len() + chunk.len() > MAX_DICTIONARY_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Dictionary::parse(bytes).map_err(|e| CompressionError::Fetched {
            url: url.clone(),
            source: Box::new(e),
        })
    };
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| CompressionError::NoAnswer {
            url: url.clone(),
            timeout,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_v1_dictionary_is_the_documented_one() {
        let d = Dictionary::v1();
        assert_eq!(d.id, 1_612_007_021);
        assert_eq!(d.bytes.len(), 112_640);
        assert_eq!(Dictionary::parse(d.bytes.clone()), Ok(d));
    }

    fn frame_with(dict: &[u8], text: &str) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::with_dictionary(3, dict).expect("compressor");
        c.compress(text.as_bytes()).expect("compress")
    }

    #[test]
    fn inflates_within_limits_and_rejects_the_rest() {
        let d = Dictionary::v1();
        let mut inflater = Inflater::new(&d).expect("inflater");
        let text = r#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"hi"}}}"#;
        let frame = frame_with(&d.bytes, text);
        assert!(frame.len() < text.len(), "the dictionary compresses");
        let inflated = inflater.inflate(&frame, 1 << 20, 1 << 20);
        assert_eq!(inflated.as_deref(), Ok(text));
        // Its own length, not the limit's: a full channel of frames held
        // a megabyte each.
        assert!(inflated.map(|t| t.capacity()).unwrap_or(0) < 4 * text.len());
        assert_eq!(
            inflater.inflate(&frame, text.len() - 1, text.len() - 1),
            Err(CompressionError::ExpandsTooFar {
                limit: text.len() - 1
            })
        );
        assert_eq!(
            inflater.inflate(&frame, 4, 1 << 20),
            Err(CompressionError::CompressedTooLarge {
                len: frame.len(),
                limit: 4
            })
        );
        // A bomb: 64 MiB of zeros in a few kilobytes, against a 1 MiB limit.
        let bomb = zstd::bulk::compress(&vec![b'0'; 64 << 20], 19).expect("compress");
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            inflater.inflate(&bomb, 1 << 20, 1 << 20),
            Err(CompressionError::ExpandsTooFar { limit: 1 << 20 })
        );
        // The same bomb with no declared size: the capped buffer stops it.
        let mut streamed = Vec::new();
        {
            let mut enc = zstd::stream::write::Encoder::new(&mut streamed, 19).expect("enc");
            enc.include_contentsize(false).expect("flag");
            std::io::Write::write_all(&mut enc, &vec![b'0'; 8 << 20]).expect("write");
            enc.finish().expect("finish");
        }
        assert_eq!(
            inflater.inflate(&streamed, 1 << 20, 1 << 20),
            Err(CompressionError::ExpandsTooFar { limit: 1 << 20 })
        );
        // Garbage after the magic: its header names no dictionary of ours,
        // or does not decode.
        assert!(matches!(
            inflater.inflate(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3], 1 << 20, 1 << 20),
            Err(CompressionError::Corrupt(_) | CompressionError::WrongDictionary { .. })
        ));
        assert!(matches!(
            inflater.inflate(b"plain text, not zstd", 1 << 20, 1 << 20),
            Err(CompressionError::Corrupt(_))
        ));
        let other = zstd::dict::from_continuous(
            &text.repeat(200).into_bytes(),
            &vec![text.len(); 200],
            4096,
        )
        .expect("train");
        let foreign = frame_with(&other, text);
        assert!(matches!(
            inflater.inflate(&foreign, 1 << 20, 1 << 20),
            Err(CompressionError::WrongDictionary { .. }) | Err(CompressionError::Corrupt(_))
        ));
    }

    #[test]
    fn dictionary_urls_and_cache() {
        assert_eq!(
            dictionary_url(
                "wss://h.example/xrpc/network.bsky.jetstream.subscribeEvents?cursor=5",
                None
            )
            .as_deref(),
            Some("https://h.example/xrpc/network.bsky.jetstream.getZstdDictionary")
        );
        assert_eq!(
            dictionary_url("ws://127.0.0.1:9/subscribe", Some(7)).as_deref(),
            Some("http://127.0.0.1:9/xrpc/network.bsky.jetstream.getZstdDictionary?id=7")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = DictionaryCache::new(dir.path());
        assert_eq!(cache.newest(), None);
        let d = Dictionary::v1();
        cache.store(&d).expect("store");
        assert_eq!(cache.newest(), Some(d));
        assert!(Dictionary::parse(b"not a dictionary".to_vec()).is_err());
    }

    /// A v1 dictionary under another id: loads as the original does.
    fn dictionary_with_id(id: u32) -> Dictionary {
        let mut bytes = V1_DICTIONARY.to_vec();
        bytes[4..8].copy_from_slice(&id.to_le_bytes());
        Dictionary { id, bytes }
    }

    fn cached_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("jetstream-dictionaries"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A server naming a new dictionary at every request: the cache keeps
    /// the newest two, and the newest is the one read back.
    #[test]
    fn the_cache_keeps_only_the_newest_dictionaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = DictionaryCache::new(dir.path());
        for id in 100..130 {
            cache.store(&dictionary_with_id(id)).expect("store");
            assert!(
                cached_files(dir.path()).len() <= KEPT_DICTIONARIES,
                "{:?}",
                cached_files(dir.path())
            );
        }
        assert!(cached_files(dir.path()).contains(&"129.zdict".to_owned()));
        assert_eq!(cache.newest(), Some(dictionary_with_id(129)));
    }

    /// A dictionary zstd cannot load is never stored.
    #[test]
    fn a_dictionary_that_does_not_load_is_not_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = DictionaryCache::new(dir.path());
        let mut bytes = DICTIONARY_MAGIC.to_le_bytes().to_vec();
        bytes.extend_from_slice(&77u32.to_le_bytes());
        bytes.extend_from_slice(&[0xff; 4096]);
        let broken = Dictionary::parse(bytes).expect("magic and id are right");
        assert!(cache.store(&broken).is_err());
        assert!(
            cached_files(dir.path()).is_empty(),
            "{:?}",
            cached_files(dir.path())
        );
    }

    /// A refused dictionary request's answer is read only as far as its
    /// error shows, and shown as one line: a server answering 500 with an
    /// endless body was read whole until the fetch's timeout (830 MB held
    /// for an 800 MB body), and its line breaks reached the log.
    #[tokio::test]
    async fn a_refused_fetch_reads_a_bounded_start_of_the_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n";
            let forged = "broken\n2026-12-02T06:00:00Z ERROR forged line\n";
            let first = format!("{:x}\r\n{forged}\r\n", forged.len());
            if socket.write_all(head.as_bytes()).await.is_err()
                || socket.write_all(first.as_bytes()).await.is_err()
            {
                return;
            }
            // Then no end: 64 KiB chunks until the client goes away.
            let chunk = format!("{:x}\r\n{}\r\n", 65_536, "x".repeat(65_536));
            while socket.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let client = super::super::url::http_client().expect("client");
        let error = fetch(
            &client,
            &format!("ws://{addr}/subscribe").into(),
            None,
            Duration::from_secs(60),
        )
        .await
        .expect_err("refused")
        .to_string();
        assert!(error.contains("HTTP 500"), "{error}");
        assert!(
            error.contains("broken 2026-12-02T06:00:00Z ERROR forged line"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
        assert!(error.chars().count() < 400, "{error}");
    }
}
