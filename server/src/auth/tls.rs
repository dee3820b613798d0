//! TLS from PEM files (rustls, aws-lc-rs): the HTTP listener's acceptor and the accept loop
//! that serves the router over it. A plaintext client fails the handshake and is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::debug;

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

/// Serve `app` over TLS until `stop` resolves. Each connection gets its peer address (the
/// login limiter reads it) and websocket upgrades.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        // As the plaintext listener: no Nagle delay, a small send buffer (slow clients back up
        // into their outbox).
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(64 * 1024);
        let acceptor = acceptor.clone();
        let app = app
            .clone()
            .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)));
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        });
    }
}
