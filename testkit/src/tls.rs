//! A throwaway certificate authority, and the HTTP(S) server loop and
//! upstream relay the fake OpenBao and the proxies share, so tests can
//! check custom CA bundles.

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
        Self::for_names(&["127.0.0.1", "localhost"])
    }

    /// A CA and a server certificate for `names` (DNS names or IPs).
    pub fn for_names(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let server_params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
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

/// Sends requests on to a plain-HTTP upstream, as they came (the Host header
/// included, so S3 signatures still verify there).
#[derive(Clone)]
pub struct Relay {
    addr: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        axum::body::Body,
    >,
}

impl Relay {
    /// `addr`: the upstream's host:port.
    pub fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_string(),
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The upstream's answer, or a 502 saying why there is none.
    pub async fn send(
        &self,
        mut request: axum::extract::Request,
    ) -> Result<axum::response::Response, axum::response::Response> {
        use axum::response::IntoResponse;
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        *request.uri_mut() = format!("http://{}{path}", self.addr)
            .parse()
            .expect("upstream uri");
        match self.client.request(request).await {
            Ok(response) => Ok(response.map(axum::body::Body::new)),
            Err(e) => {
                Err((axum::http::StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response())
            }
        }
    }
}
