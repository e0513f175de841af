//! A reverse proxy in front of an OpenBao node (real or fake) that breaks
//! snapshot downloads the ways no real server can be asked to: a connection
//! cut or a stall after N bytes, a body that ends cleanly half-way (what
//! OpenBao does when writing the snapshot fails after the 200 went out),
//! or an error status. Every other request passes through untouched. It
//! also records what each snapshot response carried, so tests can hold a
//! backup to the exact bytes OpenBao sent.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::tls::Relay;

const SNAPSHOT_PATH: &str = "/v1/sys/storage/raft/snapshot";

/// Ways the snapshot download can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Close the connection after this many body bytes.
    CutAfter(u64),
    /// Stop sending after this many body bytes and keep the connection open.
    StallAfter(u64),
    /// End the body cleanly after this many bytes.
    TruncateAfter(u64),
    /// Answer with this status and an OpenBao error body (403, 500, 503...).
    Status(u16),
}

/// A snapshot body as it went out to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub size: u64,
    pub sha256: String,
    /// Upstream's whole body went out.
    pub complete: bool,
}

struct Inner {
    fault: Fault,
    snapshot_requests: usize,
    restore_requests: usize,
    /// Every request, of any kind.
    requests: usize,
    served: Vec<Served>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct OpenBaoProxy {
    url: String,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    relay: Relay,
    inner: Shared,
}

impl OpenBaoProxy {
    /// Proxies to `upstream`, the plain-HTTP URL of an OpenBao node.
    pub async fn start(upstream: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            fault: Fault::None,
            snapshot_requests: 0,
            restore_requests: 0,
            requests: 0,
            served: Vec::new(),
        }));
        let addr = upstream
            .strip_prefix("http://")
            .expect("a plain-HTTP upstream")
            .trim_end_matches('/')
            .to_string();
        let state = Upstream {
            relay: Relay::new(&addr),
            inner: inner.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listen = "127.0.0.1:0".parse().expect("address");
        let (url, server) = crate::tls::spawn_server(listen, app, None).await;
        Self { url, inner, server }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Snapshot downloads asked for (whatever the answer).
    pub fn snapshot_requests(&self) -> usize {
        self.lock().snapshot_requests
    }

    /// Restores (of either kind) that reached OpenBao.
    pub fn restore_requests(&self) -> usize {
        self.lock().restore_requests
    }

    /// Requests of any kind that reached the proxy.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Every snapshot body that went out, oldest first.
    pub fn served(&self) -> Vec<Served> {
        self.lock().served.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("proxy state lock")
    }
}

impl Drop for OpenBaoProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let path = request.uri().path();
    let snapshot = request.method() == "GET" && path == SNAPSHOT_PATH;
    let restore = request.method() != "GET" && path.starts_with(SNAPSHOT_PATH);
    let fault = {
        let mut inner = upstream.inner.lock().expect("lock");
        inner.snapshot_requests += usize::from(snapshot);
        inner.restore_requests += usize::from(restore);
        inner.requests += 1;
        if snapshot { inner.fault } else { Fault::None }
    };
    if let Fault::Status(code) = fault {
        let message = match code {
            403 => "1 error occurred:\n\t* permission denied\n\n",
            503 => "Vault is sealed",
            _ => "internal error",
        };
        return (
            StatusCode::from_u16(code).expect("status"),
            axum::Json(serde_json::json!({ "errors": [message] })),
        )
            .into_response();
    }
    let response = match upstream.relay.send(request).await {
        Ok(response) => response,
        Err(failed) => return failed,
    };
    if !snapshot || !response.status().is_success() {
        return response;
    }
    let limit = match fault {
        Fault::CutAfter(n) | Fault::StallAfter(n) | Fault::TruncateAfter(n) => n,
        Fault::None | Fault::Status(_) => u64::MAX,
    };
    let (parts, body) = response.into_parts();
    let tap = Tap {
        data: body.into_data_stream(),
        sent: 0,
        hasher: Sha256::new(),
        limit,
        fault,
        shared: upstream.inner.clone(),
        done: false,
    };
    Response::from_parts(
        parts,
        Body::from_stream(futures_util::stream::unfold(tap, Tap::next)),
    )
}

/// The snapshot body on its way out: counted, hashed, and cut where the
/// fault says.
struct Tap {
    data: axum::body::BodyDataStream,
    sent: u64,
    hasher: Sha256,
    limit: u64,
    fault: Fault,
    shared: Shared,
    done: bool,
}

type Chunk = Result<bytes::Bytes, std::io::Error>;

impl Tap {
    async fn next(mut self) -> Option<(Chunk, Self)> {
        if self.done {
            return None;
        }
        if self.sent >= self.limit {
            self.finish(false);
            return match self.fault {
                Fault::StallAfter(_) => {
                    std::future::pending::<()>().await;
                    None
                }
                Fault::TruncateAfter(_) => None,
                _ => {
                    let cut = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "cut by the test proxy",
                    );
                    Some((Err(cut), self))
                }
            };
        }
        match self.data.next().await {
            Some(Ok(mut chunk)) => {
                let room = self.limit - self.sent;
                if chunk.len() as u64 > room {
                    chunk.truncate(room as usize);
                }
                self.sent += chunk.len() as u64;
                self.hasher.update(&chunk);
                Some((Ok(chunk), self))
            }
            Some(Err(e)) => {
                self.finish(false);
                Some((Err(std::io::Error::other(e)), self))
            }
            None => {
                self.finish(true);
                None
            }
        }
    }

    fn finish(&mut self, complete: bool) {
        self.done = true;
        let served = Served {
            size: self.sent,
            sha256: hex::encode(self.hasher.clone().finalize()),
            complete,
        };
        self.shared.lock().expect("lock").served.push(served);
    }
}
