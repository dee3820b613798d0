//! TLS from PEM files (rustls, aws-lc-rs): the HTTP listener's acceptor (`serve.rs` runs the
//! accept loop). A plaintext client fails the handshake and is dropped.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Several crypto providers are linked (through dependencies); pick ours once per process.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn acceptor(cfg: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .with_context(|| {
            format!(
                "tls.cert_file {}: reading PEM certificates",
                cfg.cert_file.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "tls.cert_file {}: no certificate in it",
            cfg.cert_file.display()
        );
    }
    // The key file's path is named, never its content.
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).with_context(|| {
        format!(
            "tls.key_file {}: reading a PEM private key",
            cfg.key_file.display()
        )
    })?;
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls.cert_file / tls.key_file: the key does not fit the certificate")?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
