//! One TLS setup for every outgoing connection (webhooks, websockets): ring
//! as the crypto provider and the Mozilla root certificates compiled in, so
//! the binary works on a bare machine with no system certificate store.

use std::sync::Arc;

/// A rustls client configuration with the bundled roots.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_with_bundled_roots() {
        let config = super::client_config().expect("tls config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
