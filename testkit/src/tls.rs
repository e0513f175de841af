//! A throwaway certificate authority and the HTTP(S) server loop the fake
//! OpenBao and the S3 proxy share, so tests can check custom CA bundles.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A CA and one server certificate for `127.0.0.1` and `localhost`.
#[derive(Clone)]
pub struct TestCa {
    /// The CA certificate, to hand to clients as their trust bundle.
    pub ca_pem: String,
    /// The server certificate and key, for servers that read files.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

impl TestCa {
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone()], key)
        .expect("server TLS config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// Serves `app` on `addr` (port 0: any free port), over TLS when `tls` is
/// given, until the returned task is aborted. Returns the base URL.
pub async fn spawn_server(
    addr: SocketAddr,
    app: Router,
    tls: Option<TestCa>,
) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let addr = listener.local_addr().expect("local address");
    let scheme = if tls.is_some() { "https" } else { "http" };
    (
        format!("{scheme}://{addr}"),
        tokio::spawn(serve(listener, app, tls)),
    )
}

async fn serve(listener: TcpListener, app: Router, tls: Option<TestCa>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(ca) => {
                    if let Ok(stream) = ca.acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}
