//! The compression dictionary of a connection: the cached one, a fetch
//! when there is none or the server refused it, and a refused one served
//! again read uncompressed. Apart from the protocol's URLs, cursors and
//! control frames, which only ask whether a dictionary is there.

use super::super::compression::{self, Dictionary, DictionaryCache};
use super::super::url::http_client;
use super::{JetstreamProtocol, Wire};
use crate::source::url::SourceUrl;

impl JetstreamProtocol {
    /// The dictionary for this connection, fetching or loading it if
    /// needed. A failure is logged and the connection goes uncompressed.
    pub(super) async fn ensure_dictionary(&mut self, host: &SourceUrl) {
        if self.options.wire == Wire::V1 {
            if self.dictionary.is_none() {
                self.dictionary = Some(Dictionary::v1());
            }
            return;
        }
        let cache = self.options.state_dir.as_deref().map(DictionaryCache::new);
        if self.dictionary.is_none()
            && !self.dictionary_stale
            && let Some(cached) = cache.as_ref().and_then(DictionaryCache::newest)
        {
            tracing::info!(
                dictionary = cached.id,
                "using the cached Jetstream dictionary"
            );
            self.dictionary = Some(cached);
        }
        if self.dictionary.is_some() && !self.dictionary_stale {
            return;
        }
        let client = match &self.client {
            Some(client) => client.clone(),
            None => match http_client() {
                Ok(client) => {
                    self.client = Some(client.clone());
                    client
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build an HTTP client; reading uncompressed");
                    self.dictionary = None;
                    return;
                }
            },
        };
        let named = self.refused_dictionary.and_then(|(_, named)| named);
        match compression::fetch(&client, host, named, self.options.fetch_timeout).await {
            Ok(dictionary)
                if self
                    .refused_dictionary
                    .is_some_and(|(refused, _)| refused == dictionary.id) =>
            {
                tracing::warn!(
                    dictionary = dictionary.id,
                    "the server refused this dictionary and serves it again: this connection reads uncompressed"
                );
                self.dictionary = None;
            }
            Ok(dictionary) => {
                tracing::info!(
                    dictionary = dictionary.id,
                    bytes = dictionary.bytes.len(),
                    "fetched the Jetstream dictionary"
                );
                if let Some(cache) = &cache
                    && let Err(e) = cache.store(&dictionary)
                {
                    tracing::warn!(error = %e, "cannot cache the Jetstream dictionary");
                }
                self.dictionary = Some(dictionary);
                self.dictionary_stale = false;
                self.refused_dictionary = None;
            }
            Err(e) if self.options.quiet_dictionary => {
                tracing::debug!(error = %e, "cannot fetch the Jetstream dictionary; this connection reads uncompressed");
                self.dictionary = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the Jetstream dictionary; this connection reads uncompressed");
                self.dictionary = None;
            }
        }
    }
}
