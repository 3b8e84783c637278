//! A mock HTTP server for testing HTTP connectors: it listens on `127.0.0.1` on a free port,
//! answers with responses you script (by method, path, query and headers, each as often as you
//! say) or compute (a closure of the request), and records every request it received.
//!
//! ```
//! use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, Route, Script};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = MockServer::start(
//!     Script::new()
//!         // The first request is throttled, the ones after it are answered.
//!         .on(Route::any().times(1), MockResponse::new(429).header("Retry-After", "1"))
//!         .on(
//!             Route::get("/v1/readings").query("page", "2"),
//!             MockResponse::new(200).json(r#"{"readings": []}"#),
//!         )
//!         .on(
//!             Route::get("/v1/readings"),
//!             MockResponse::new(200).json(r#"{"readings": [], "next": 2}"#),
//!         ),
//! )
//! .await?;
//! let base = server.uri(); // "http://127.0.0.1:PORT": point your connector here
//! # let _ = base;
//! // … run the connector, then look at what it sent:
//! assert!(server.requests().is_empty());
//! # Ok(()) }
//! ```
//!
//! A closure is a responder too, for a server that computes its answers (paging by a query
//! parameter, say): `MockServer::start(|r: &RecordedRequest| …)`. So is a single
//! [`MockResponse`], answered to every request.
//!
//! The server runs on the tokio runtime [`MockServer::start`] is awaited on, speaks HTTP/1.1,
//! and stops when the `MockServer` is dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A request the mock server received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method (`GET`, `POST`).
    pub method: String,
    /// The path (`/fhir/Observation`), without the query.
    pub path: String,
    /// The query as sent (`_count=10&page=2`), without the `?`, if there was one.
    pub query: Option<String>,
    /// The headers in the order received, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query's parameters, decoded (`+` a space, `%XX` a byte), in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    }

    /// The first value of query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The body as text (bytes that are not UTF-8 become U+FFFD).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A response the mock server sends.
///
/// # Panics
///
/// The builder methods panic on a status or header that HTTP cannot carry: that is a mistake
/// in the test, not in the connector under test.
#[derive(Debug, Clone)]
pub struct MockResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    chunk: Option<usize>,
    delay: Option<Duration>,
}

impl MockResponse {
    /// A response with status `status` and an empty body.
    pub fn new(status: u16) -> Self {
        MockResponse {
            status: StatusCode::from_u16(status)
                .unwrap_or_else(|_| panic!("{status} is not an HTTP status")),
            headers: Vec::new(),
            body: Bytes::new(),
            chunk: None,
            delay: None,
        }
    }

    /// The same response with header `name: value` added.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let n = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("{name:?} is not an HTTP header name"));
        let v = HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("{value:?} is not an HTTP header value"));
        self.headers.push((n, v));
        self
    }

    /// The same response with `body`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Bytes::from(body.into());
        self
    }

    /// The same response with a JSON body (`Content-Type: application/json`, unless a
    /// content type was set already).
    pub fn json(self, text: impl Into<String>) -> Self {
        let typed = self.headers.iter().any(|(n, _)| n == CONTENT_TYPE);
        let with = if typed {
            self
        } else {
            self.header("content-type", "application/json")
        };
        with.body(text.into())
    }

    /// The same response sent without `Content-Length`, in chunks of `size` bytes (chunked
    /// transfer encoding), so a client learns its length only by reading it.
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk = Some(size.max(1));
        self
    }

    /// The same response sent after `wait` (to test a client's timeout).
    pub fn delay(mut self, wait: Duration) -> Self {
        self.delay = Some(wait);
        self
    }

    fn into_hyper(self) -> hyper::Response<MockBody> {
        let body = match self.chunk {
            Some(size) => MockBody {
                len: None,
                chunks: self.body.chunks(size).map(Bytes::copy_from_slice).collect(),
            },
            None => MockBody {
                len: Some(self.body.len() as u64),
                chunks: VecDeque::from([self.body]),
            },
        };
        let mut response = hyper::Response::new(body);
        *response.status_mut() = self.status;
        for (n, v) in self.headers {
            response.headers_mut().append(n, v);
        }
        response
    }
}

/// What answers the mock server's requests: a [`Script`], a single [`MockResponse`] (answered
/// to every request), or a closure `Fn(&RecordedRequest) -> MockResponse`.
pub trait Responder: Send + Sync + 'static {
    /// The response to `request`.
    fn respond(&self, request: &RecordedRequest) -> MockResponse;
}

impl<F> Responder for F
where
    F: Fn(&RecordedRequest) -> MockResponse + Send + Sync + 'static,
{
    fn respond(&self, request: &RecordedRequest) -> MockResponse {
        self(request)
    }
}

impl Responder for MockResponse {
    fn respond(&self, _: &RecordedRequest) -> MockResponse {
        self.clone()
    }
}

/// Which requests a [`Script`] entry answers: a method, a path, query parameters and headers
/// it must have, and how many times it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    method: Option<String>,
    path: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    times: Option<usize>,
}

impl Route {
    /// Every request.
    pub fn any() -> Self {
        Route::default()
    }

    /// Requests with method `method` (any case) to `path` (exactly, without the query).
    pub fn new(method: &str, path: &str) -> Self {
        Route {
            method: Some(method.to_ascii_uppercase()),
            path: Some(path.to_string()),
            ..Route::default()
        }
    }

    /// `GET` requests to `path`.
    pub fn get(path: &str) -> Self {
        Route::new("GET", path)
    }

    /// `POST` requests to `path`.
    pub fn post(path: &str) -> Self {
        Route::new("POST", path)
    }

    /// Requests to `path`, with any method.
    pub fn path(path: &str) -> Self {
        Route {
            path: Some(path.to_string()),
            ..Route::default()
        }
    }

    /// Only requests whose query has parameter `name` with (decoded) value `value`.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    /// Only requests with header `name` (any case) of value `value` (exactly).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answers `n` requests only; the ones after them go to the next entry that matches.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Whether `request` is one of this route's.
    pub fn matches(&self, request: &RecordedRequest) -> bool {
        let pairs = request.query_pairs();
        self.method.as_ref().is_none_or(|m| *m == request.method)
            && self.path.as_ref().is_none_or(|p| *p == request.path)
            && self
                .query
                .iter()
                .all(|(n, v)| pairs.iter().any(|(pn, pv)| pn == n && pv == v))
            && self.headers.iter().all(|(n, v)| {
                request
                    .headers
                    .iter()
                    .any(|(hn, hv)| hn.eq_ignore_ascii_case(n) && hv == v)
            })
    }
}

struct Entry {
    route: Route,
    left: Option<usize>,
    responder: Box<dyn Responder>,
}

/// Scripted responses: each request is answered by the first entry whose [`Route`] matches it
/// and that has answers left ([`Route::times`]); a request no entry answers gets a 404 saying
/// so.
#[derive(Default)]
pub struct Script {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list()
            .entries(entries.iter().map(|e| &e.route))
            .finish()
    }
}

impl Script {
    /// A script without entries (every request gets a 404).
    pub fn new() -> Self {
        Script::default()
    }

    /// The script with an entry added after the others: requests of `route` are answered by
    /// `responder` (a [`MockResponse`], or a closure of the request).
    pub fn on(self, route: Route, responder: impl Responder) -> Self {
        let left = route.times;
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Entry {
                route,
                left,
                responder: Box::new(responder),
            });
        self
    }
}

impl Responder for Script {
    fn respond(&self, request: &RecordedRequest) -> MockResponse {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries
            .iter_mut()
            .find(|e| e.left != Some(0) && e.route.matches(request));
        match found {
            Some(entry) => {
                if let Some(n) = entry.left.as_mut() {
                    *n -= 1;
                }
                entry.responder.respond(request)
            }
            None => MockResponse::new(404).body(format!(
                "the mock server has no scripted response (left) for {} {}",
                request.method, request.path
            )),
        }
    }
}

/// A mock HTTP server on `127.0.0.1`, on a port of its own; it stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // Dropping the accept task drops its connections' tasks with it.
        self.task.abort();
    }
}

impl MockServer {
    /// Starts a server answering with `responder`, on the tokio runtime this is awaited on.
    ///
    /// # Errors
    ///
    /// When no port can be bound on `127.0.0.1`.
    pub async fn start(responder: impl Responder) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let responder: Arc<dyn Responder> = Arc::new(responder);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let responder = responder.clone();
                let log = log.clone();
                connections.spawn(async move {
                    let service =
                        service_fn(move |request| handle(request, responder.clone(), log.clone()));
                    // A client that hangs up half-way is no concern of the server's.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(MockServer {
            addr,
            requests,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `path` (`/fhir/Observation?_count=1`) on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.uri())
    }

    /// The requests received so far, in the order they came.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn handle(
    request: Request<Incoming>,
    responder: Arc<dyn Responder>,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
) -> Result<hyper::Response<MockBody>, Infallible> {
    let (parts, mut incoming) = request.into_parts();
    let mut body = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx)).await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            // The client went away; what came is what is recorded.
            Err(_) => break,
        }
    }
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(recorded.clone());
    let response = responder.respond(&recorded);
    if let Some(wait) = response.delay {
        tokio::time::sleep(wait).await;
    }
    Ok(response.into_hyper())
}

/// A response body: its chunks, and its length if it is sent with one.
struct MockBody {
    chunks: VecDeque<Bytes>,
    len: Option<u64>,
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
