//! A fault-injecting HTTP proxy between the SDK and the emulator: on command it answers a chosen
//! fraction of calls (optionally only some operations) with TooManyRequestsException,
//! ConcurrentModificationException, a 500, or a dropped connection; or drops everything (AWS down).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ConcurrentModification,
    ServerError,
    Drop,
}

#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// (fault, fraction of matching calls) — deterministic: every 1/fraction-th call.
    pub inject: Option<(Fault, f64)>,
    /// Only these operations (empty: every AWS Organizations call).
    pub only: Vec<String>,
    /// AWS unreachable: every connection dropped.
    pub down: bool,
}

#[derive(Default)]
struct State {
    faults: Faults,
    seen: u64,
    /// Requests per operation, faults included.
    counts: BTreeMap<String, u64>,
    injected: u64,
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn operation(req: &hyper::http::request::Parts, body: &[u8]) -> String {
    if let Some(t) = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{} {}", req.method, req.uri.path()))
}

fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", code)
        .body(Full::new(Bytes::from(format!(
            "{{\"__type\":\"{code}\",\"Message\":\"{message}\"}}"
        ))))
        .expect("valid response")
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Arc<Mutex<State>> = Arc::default();
        let upstream = upstream.to_string();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, client, upstream) = (st.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (st, client, upstream) = (st.clone(), client.clone(), upstream.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map_err(std::io::Error::other)?
                                .to_bytes();
                            let op = operation(&parts, &body);
                            let organizations = parts
                                .headers
                                .get("x-amz-target")
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|t| t.starts_with("AWSOrganizations"));
                            let fault = {
                                let mut s = st.lock().unwrap();
                                *s.counts.entry(op.clone()).or_default() += 1;
                                if s.faults.down {
                                    Some(Fault::Drop)
                                } else {
                                    let matches = if s.faults.only.is_empty() {
                                        organizations
                                    } else {
                                        s.faults.only.contains(&op)
                                    };
                                    match s.faults.inject {
                                        Some((fault, fraction)) if matches => {
                                            s.seen += 1;
                                            let n = s.seen as f64;
                                            let hit = (n * fraction).floor()
                                                > ((n - 1.0) * fraction).floor();
                                            if hit {
                                                s.injected += 1;
                                            }
                                            hit.then_some(fault)
                                        }
                                        _ => None,
                                    }
                                }
                            };
                            match fault {
                                Some(Fault::Throttle) => {
                                    Ok(error(400, "TooManyRequestsException", "Rate exceeded"))
                                }
                                Some(Fault::ConcurrentModification) => Ok(error(
                                    400,
                                    "ConcurrentModificationException",
                                    "another change is in progress",
                                )),
                                Some(Fault::ServerError) => {
                                    Ok(error(500, "ServiceException", "internal error"))
                                }
                                Some(Fault::Drop) => Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "dropped by the fault proxy",
                                )),
                                None => {
                                    let uri = format!(
                                        "{upstream}{}",
                                        parts
                                            .uri
                                            .path_and_query()
                                            .map(|p| p.as_str())
                                            .unwrap_or("/")
                                    );
                                    let mut fwd =
                                        Request::builder().method(parts.method.clone()).uri(uri);
                                    for (k, v) in &parts.headers {
                                        fwd = fwd.header(k, v);
                                    }
                                    let resp = client
                                        .request(
                                            fwd.body(Full::new(body))
                                                .map_err(std::io::Error::other)?,
                                        )
                                        .await
                                        .map_err(std::io::Error::other)?;
                                    let (rparts, rbody) = resp.into_parts();
                                    let bytes = rbody
                                        .collect()
                                        .await
                                        .map_err(std::io::Error::other)?
                                        .to_bytes();
                                    Ok::<_, std::io::Error>(Response::from_parts(
                                        rparts,
                                        Full::new(bytes),
                                    ))
                                }
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            endpoint,
            state,
            task,
        }
    }

    pub fn set(&self, faults: Faults) {
        let mut s = self.state.lock().unwrap();
        s.faults = faults;
        s.seen = 0;
    }

    pub fn count(&self, op: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.state.lock().unwrap().counts.values().sum()
    }

    pub fn injected(&self) -> u64 {
        self.state.lock().unwrap().injected
    }

    pub fn reset_counts(&self) {
        let mut s = self.state.lock().unwrap();
        s.counts.clear();
        s.injected = 0;
    }
}
