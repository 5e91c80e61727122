//! The loopback HTTP/1.1 server the emulators share (Runtime API, local EventBridge, a test's
//! event sink): binding, the connection loop, and JSON answers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::HarnessError;

/// A listener on 127.0.0.1 and a free port, and its address; `what` names the server in errors.
pub async fn bind_loopback(what: &str) -> Result<(TcpListener, SocketAddr), HarnessError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(HarnessError::io(format!("binding {what} to 127.0.0.1:0")))?;
    let address = listener.local_addr().map_err(HarnessError::io(format!("reading {what}'s address")))?;
    Ok((listener, address))
}

/// Serves every connection accepted on `listener` with `handle`, keep-alive on, until the task
/// is aborted (which drops the connections with it).
pub async fn serve<S, H, F>(listener: TcpListener, state: Arc<S>, handle: H)
where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (state, handle) = (state.clone(), handle.clone());
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let response = handle(state.clone(), request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// `body` as `application/json` with `status`.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error as Lambda's and EventBridge's APIs shape it: `{"errorType", "errorMessage"}`.
pub fn error_response(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({"errorType": error_type, "errorMessage": message}))
}
