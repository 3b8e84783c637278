//! HTTP: sending a step's request, following `next` links, reading bounded answers.

use std::time::Instant;

use serde_json::Value;
use tracing::debug;

use super::results::{EXCERPT_CHARS, excerpt};
use super::{Runner, State, StepCtx, Stop, missing, sub};
use crate::scenario::{Body, Request, Scenario, Severity};
use crate::vars::substitute_json;

/// The largest response body the checker reads: 16 MiB. A larger answer is refused with an
/// error finding that says so: unread when its `Content-Length` is larger, otherwise after its
/// first 16 MiB (the connection is then dropped), so an endless or huge answer costs at most
/// this much memory and never a hang beyond the step's time limit. A FHIR server pages large
/// results instead (`_count`, `next` links).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A response as the checks see it.
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: Option<Value>,
    pub(super) entries: Vec<Value>,
    /// Paging stopped at a broken `next` link (already a finding): counts would only repeat it.
    pub(super) paging_broken: bool,
}

impl Runner {
    pub(super) async fn request(
        &self,
        s: &Scenario,
        state: &State,
        r: &Request,
        seq: usize,
        ctx: &mut StepCtx<'_>,
    ) -> std::result::Result<Response, Stop> {
        let url = sub(&r.url, &state.vars)?;
        let url = self.absolute(&url);
        let body: Option<String> = match (&r.body, &r.body_file) {
            (Some(Body::Text(t)), _) => Some(sub(t, &state.vars)?),
            (Some(Body::Json(j)), _) => {
                let j = substitute_json(j, &state.vars).map_err(missing)?;
                Some(serde_json::to_string_pretty(&j).unwrap_or_default())
            }
            (None, Some(file)) => {
                let path = s
                    .dir
                    .as_ref()
                    .map_or_else(|| file.clone(), |d| d.join(file));
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Stop::Skip(format!("cannot read body_file {}: {e}", path.display()))
                })?;
                Some(sub(&text, &state.vars)?)
            }
            (None, None) => None,
        };
        let method = reqwest::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Stop::Skip(format!("`{}` is not an HTTP method", r.method)))?;
        let request_id = format!("hc-{}-{seq}", self.run_id);
        ctx.exchange.request = format!("{method} {url}");
        ctx.exchange.request_id = Some(request_id.clone());
        ctx.exchange.request_body = body.as_deref().map(excerpt);
        ctx.sent.clone_from(&body);

        let mut headers = Vec::new();
        for (k, v) in &r.headers {
            headers.push((k.clone(), sub(v, &state.vars)?));
        }
        let first = self
            .send(&method, &url, &headers, body.clone(), &request_id, ctx)
            .await?;
        let mut resp = first;
        resp.entries = entries_of(resp.body.as_ref());
        if let Some(max_pages) = r.follow_next {
            let mut seen_urls = vec![url.clone()];
            let mut pages = 1u32;
            let mut next = next_link(resp.body.as_ref());
            while let Some(link) = next {
                let link = self.absolute(&link);
                if let Some(at) = seen_urls.iter().position(|u| *u == link) {
                    ctx.finding(
                        format!(
                            "Paging loops: page {pages}'s `next` link leads back to page {}.",
                            at + 1
                        ),
                        ctx.owner,
                        "The server builds the next links; a client following them never ends.",
                        false,
                    );
                    resp.paging_broken = true;
                    break;
                }
                if pages >= max_pages {
                    ctx.finding_with(
                        Severity::Warning,
                        format!("More than {max_pages} pages; the rest were not read."),
                        ctx.owner,
                        "Raise `follow_next`, or the server pages more finely than expected.",
                    );
                    break;
                }
                seen_urls.push(link.clone());
                pages += 1;
                let rid = format!("hc-{}-{seq}-p{pages}", self.run_id);
                ctx.exchange.request = format!("GET {link}");
                ctx.exchange.request_id = Some(rid.clone());
                ctx.exchange.request_body = None;
                let page = self
                    .send(&reqwest::Method::GET, &link, &headers, None, &rid, ctx)
                    .await?;
                if page.status != 200 {
                    ctx.finding(
                        format!("Page {pages} (a `next` link) answered {}.", page.status),
                        ctx.owner,
                        "A next link the server gave out must work.",
                        false,
                    );
                    resp.paging_broken = true;
                    break;
                }
                resp.entries.extend(entries_of(page.body.as_ref()));
                next = next_link(page.body.as_ref());
            }
        }
        Ok(resp)
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<String>,
        request_id: &str,
        ctx: &mut StepCtx<'_>,
    ) -> std::result::Result<Response, Stop> {
        let mut req = self
            .client
            .request(method.clone(), url)
            .header("Accept", "application/fhir+json")
            .header("X-Request-Id", request_id);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("Content-Type", "application/fhir+json");
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let clock = Instant::now();
        debug!(request_id, %method, "request");
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                ctx.finding(
                    format!("The request failed: {}.", transport_reason(&e)),
                    ctx.owner,
                    "The server could not be reached or broke the connection; check that it \
                     runs at this address and accepts connections.",
                    true,
                );
                return Err(Stop::Done);
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        ctx.exchange.status = Some(i32::from(status));
        ctx.exchange.echoed_request_id = header(&headers, "x-request-id");
        ctx.exchange.headers = ["content-type", "location", "etag"]
            .iter()
            .filter_map(|h| header(&headers, h).map(|v| ((*h).to_owned(), v)))
            .collect();
        let text = match read_body(resp).await {
            Ok(t) => t,
            Err(BodyError::Broken(e)) => {
                ctx.finding(
                    format!("The response body could not be read: {e}."),
                    ctx.owner,
                    "The server broke off its answer.",
                    true,
                );
                return Err(Stop::Done);
            }
            Err(BodyError::TooLarge { kept, declared }) => {
                ctx.exchange.elapsed = clock.elapsed();
                ctx.exchange.response_excerpt = (!kept.is_empty()).then(|| excerpt_of_start(&kept));
                ctx.finding(
                    too_large(declared),
                    ctx.owner,
                    "A FHIR server pages a large result (`_count`, `next` links) rather than \
                     sending it in one answer; an answer this large is the server's to split, or \
                     the search's to narrow.",
                    false,
                );
                return Err(Stop::Done);
            }
        };
        ctx.exchange.elapsed = clock.elapsed();
        ctx.exchange.response_excerpt = (!text.is_empty()).then(|| excerpt(&text));
        let body = serde_json::from_str::<Value>(&text).ok();
        Ok(Response {
            status,
            headers,
            body,
            entries: Vec::new(),
            paging_broken: false,
        })
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}/{}", self.base, url.trim_start_matches('/'))
        }
    }
}

pub(crate) fn transport_reason(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "broken".to_owned()
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// Why an answer's body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is larger than [`MAX_RESPONSE_BYTES`]: `kept` is its start (never more than the
    /// bound; empty when the `Content-Length` the server `declared` was already too large).
    TooLarge {
        kept: Vec<u8>,
        declared: Option<u64>,
    },
    /// The connection broke.
    Broken(String),
}

/// The whole body, if it is at most [`MAX_RESPONSE_BYTES`] (after decompression).
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
) -> std::result::Result<String, BodyError> {
    let bound = MAX_RESPONSE_BYTES as u64;
    if let Some(n) = resp.content_length().filter(|n| *n > bound) {
        return Err(BodyError::TooLarge {
            kept: Vec::new(),
            declared: Some(n),
        });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Broken(e.to_string()))?
    {
        let room = MAX_RESPONSE_BYTES - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Err(BodyError::TooLarge {
                kept: bytes,
                declared: None,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The finding's message for an answer over the bound.
fn too_large(declared: Option<u64>) -> String {
    let mib = MAX_RESPONSE_BYTES >> 20;
    match declared {
        Some(n) => format!(
            "The answer is {n} bytes (its Content-Length), more than the {mib} MiB the checker \
             reads: it was refused unread."
        ),
        None => format!(
            "The answer is larger than {mib} MiB, the most the checker reads: it was refused \
             after its first {mib} MiB."
        ),
    }
}

/// The start of a body that was cut, for the report.
fn excerpt_of_start(kept: &[u8]) -> String {
    // A character takes at most 4 bytes; a character cut at the end shows as U+FFFD.
    let start = &kept[..kept.len().min(EXCERPT_CHARS * 4)];
    let text = String::from_utf8_lossy(start);
    let shown: String = text.chars().take(EXCERPT_CHARS).collect();
    format!(
        "{shown}\n… (cut: more than {} MiB in all)",
        MAX_RESPONSE_BYTES >> 20
    )
}

pub(crate) fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A Bundle's matches: entries that `_include` added (`search.mode` include) or that carry an
/// OperationOutcome (`outcome`) are not counted.
fn entries_of(body: Option<&Value>) -> Vec<Value> {
    body.filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|e| {
                    !matches!(
                        e.pointer("/search/mode").and_then(Value::as_str),
                        Some("include" | "outcome")
                    )
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn next_link(body: Option<&Value>) -> Option<String> {
    body?
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::run::compare::ident;
    use serde_json::json;

    #[test]
    fn only_matches_count_as_entries() {
        let b = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Observation", "id": "o1"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Observation", "id": "o2"}},
            {"resource": {"resourceType": "Patient", "id": "p1"}, "search": {"mode": "include"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}]});
        let ids: Vec<String> = entries_of(Some(&b)).iter().map(ident).collect();
        assert_eq!(ids, ["Observation/o1", "Observation/o2"]);
        assert!(entries_of(Some(&json!({"resourceType": "Patient", "entry": [{}]}))).is_empty());
    }

    /// A server on a free port that answers every request with `head` and then, when `endless`,
    /// 64 KiB chunks of `x` until the client hangs up (otherwise it holds the connection open
    /// without a body until then).
    async fn raw_server(head: &'static str, endless: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    if endless {
                        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                        while sock.write_all(chunk.as_bytes()).await.is_ok() {}
                    } else {
                        // Until the client hangs up.
                        while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn an_answer_over_the_bound_is_refused_and_never_held_whole() {
        // The runner's client (it installs the TLS crypto provider reqwest needs).
        let client = Runner::new("http://127.0.0.1:9/fhir").unwrap().client;
        // An endless body: read up to the bound, then refused with what was kept.
        let url = raw_server(
            "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            true,
        )
        .await;
        let resp = client.get(&url).send().await.unwrap();
        match read_body(resp).await {
            Err(BodyError::TooLarge {
                kept,
                declared: None,
            }) => {
                assert!(kept.len() <= MAX_RESPONSE_BYTES, "{}", kept.len());
                assert_eq!(kept.len(), MAX_RESPONSE_BYTES);
                let shown = excerpt_of_start(&kept);
                assert!(shown.starts_with(&"x".repeat(EXCERPT_CHARS)), "{shown}");
                assert!(shown.ends_with("(cut: more than 16 MiB in all)"), "{shown}");
            }
            other => panic!("{other:?}"),
        }
        // A declared length over the bound: refused before a byte of the body is read.
        let url = raw_server(
            "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n\
             Content-Length: 1099511627776\r\n\r\n",
            false,
        )
        .await;
        let resp = client.get(&url).send().await.unwrap();
        match read_body(resp).await {
            Err(BodyError::TooLarge {
                kept,
                declared: Some(1_099_511_627_776),
            }) => assert!(kept.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(too_large(Some(1_099_511_627_776)).contains("refused unread"));
        assert!(too_large(None).contains("refused after its first 16 MiB"));
    }
}
