//! HTTP: sending a step's request, following `next` links, reading bounded answers.

use std::time::Instant;

use serde_json::Value;
use tracing::debug;

use super::results::excerpt;
use super::{Runner, State, StepCtx, Stop, missing, sub};
use crate::scenario::{Body, Request, Scenario, Severity};
use crate::vars::substitute_json;

/// The longest response body kept (larger bodies are cut and reported as such).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

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
        let text = match read_body(resp).await {
            Ok(t) => t,
            Err(e) => {
                ctx.finding(
                    format!("The response body could not be read: {e}."),
                    ctx.owner,
                    "The server broke off its answer.",
                    true,
                );
                return Err(Stop::Done);
            }
        };
        ctx.exchange.elapsed = clock.elapsed();
        ctx.exchange.status = Some(i32::from(status));
        ctx.exchange.echoed_request_id = header(&headers, "x-request-id");
        ctx.exchange.headers = ["content-type", "location", "etag"]
            .iter()
            .filter_map(|h| header(&headers, h).map(|v| ((*h).to_owned(), v)))
            .collect();
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

fn transport_reason(e: &reqwest::Error) -> String {
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

pub(super) async fn read_body(mut resp: reqwest::Response) -> std::result::Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("larger than {} MiB", MAX_BODY_BYTES >> 20));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
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
}
