//! Running an Observation search against the store, and `GET /Observation`.

use std::ops::Bound;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use healthanalyzer_model::{Measurement, Subject};
use healthanalyzer_store::{PageToken, Query, Versioned};
use serde_json::Value;

use super::Spec;
use super::mapping::{observation_json, subject_reference, versioned_text_as};
use crate::auth::{Access, limited_to, restrict_search};
use crate::error::{ApiError, ApiResult};
use crate::http::{check_format, fhir_response};
use crate::patient::format_of;
use crate::resource::{base_url, version_of};
use crate::search::{
    Paging, canonical, check_search_scope, max_lower, min_upper, params, post_search_params,
    query_string, refuse_national_in_url, result_params, searchset,
};
use crate::state::AppState;

impl Spec {
    /// Up to `n` matches from the start (for conditional creates).
    pub(crate) async fn first(
        &self,
        state: &AppState,
        n: usize,
    ) -> ApiResult<Vec<Versioned<Measurement>>> {
        let (items, _) = self.page(state, n, None).await?;
        Ok(items)
    }

    /// One page of matches, each with the store's version, and the token of the next.
    /// A page and its total: one store call ([`healthanalyzer_store::MeasurementStore::query_with_total`])
    /// when the total is the filter's count, else [`Self::total`] and [`Self::page`].
    async fn page_with_total(
        &self,
        state: &AppState,
        count: usize,
        token: Option<String>,
    ) -> ApiResult<(Vec<Versioned<Measurement>>, Option<PageToken>, Option<u64>)> {
        let simple = !self.empty
            && self.by_identifier.is_none()
            && self.last_updated.is_empty()
            && self.not_in.is_empty();
        if !simple {
            let total = self.total(state).await?;
            let (items, next) = self.page(state, count, token).await?;
            return Ok((items, next, total));
        }
        let mut q = Query::new(self.filter.clone(), count.max(1)).order(self.order);
        q.page = token.map(PageToken::from);
        let (page, total) = state.store.query_with_total(&q).await.map_err(page_error)?;
        let (items, next) = self.kept(state, page)?;
        Ok((items, next, Some(total)))
    }

    async fn page(
        &self,
        state: &AppState,
        count: usize,
        token: Option<String>,
    ) -> ApiResult<(Vec<Versioned<Measurement>>, Option<PageToken>)> {
        if self.empty {
            return Ok((Vec::new(), None));
        }
        if let Some(mid) = &self.by_identifier {
            let m = state
                .store
                .get_versioned(mid)
                .await
                .map_err(|e| ApiError::from_store(&e))?;
            let items = m
                .into_iter()
                .filter(|v| self.filter.matches(&v.value) && self.keep(&v.value))
                .take(count)
                .collect();
            return Ok((items, None));
        }
        let mut q = Query::new(self.filter.clone(), count.max(1)).order(self.order);
        q.page = token.map(PageToken::from);
        let page = state.store.query(&q).await.map_err(page_error)?;
        self.kept(state, page)
    }

    /// The page's matches this search keeps, each with its version, and the next token.
    fn kept(
        &self,
        state: &AppState,
        page: healthanalyzer_store::Page,
    ) -> ApiResult<(Vec<Versioned<Measurement>>, Option<PageToken>)> {
        let versions = page.versions;
        let mut items = Vec::with_capacity(page.items.len());
        for (i, m) in page.items.into_iter().enumerate() {
            if !self.keep(&m) {
                continue;
            }
            // A store that keeps no versions: the one in the kept resource, else 1.
            let version = match versions.get(i) {
                Some(v) => *v,
                None => version_of(&observation_json(state, &m)?),
            };
            items.push(Versioned { value: m, version });
        }
        Ok((items, page.next))
    }

    async fn total(&self, state: &AppState) -> ApiResult<Option<u64>> {
        if self.empty {
            return Ok(Some(0));
        }
        if self.by_identifier.is_some() {
            return Ok(None);
        }
        let all = state
            .store
            .count(&self.filter)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        if !self.last_updated.is_empty() {
            return Ok(None);
        }
        if self.not_in.is_empty() {
            return Ok(Some(all));
        }
        if let [p] = self.not_in.as_slice() {
            let mut inside = self.filter.clone();
            inside.from = max_lower(inside.from, Bound::Included(p.lo));
            inside.to = min_upper(inside.to, Bound::Excluded(p.hi));
            let n = state
                .store
                .count(&inside)
                .await
                .map_err(|e| ApiError::from_store(&e))?;
            return Ok(Some(all.saturating_sub(n)));
        }
        Ok(None)
    }
}

/// A store's refusal of a page: a page token it does not know is the client's `_page`.
fn page_error(e: healthanalyzer_store::Error) -> ApiError {
    match e {
        healthanalyzer_store::Error::InvalidInput { .. } => ApiError::bad_request(
            "_page is not a page token of this search; start the search again",
        )
        .at("_page"),
        other => ApiError::from_store(&other),
    }
}

/// `GET /Observation?…`. A national person number in the query is refused (400): such a
/// search is POSTed to `_search`.
pub(crate) async fn search(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs = params(query.as_deref());
    refuse_national_in_url(&pairs, "Observation")?;
    run(&state, &access, &headers, pairs).await
}

/// `POST /Observation/_search`: the parameters of the URL and of the form body, combined; the
/// same answer as the GET of them, whose URL the self link is.
pub(crate) async fn search_post(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    check_search_scope(&access, "Observation")?;
    let pairs = post_search_params(query.as_deref(), &headers, &body, "Observation")?;
    run(&state, &access, &headers, pairs).await
}

/// An Observation search of `pairs`, by GET or POST.
async fn run(
    state: &AppState,
    access: &Option<Extension<Access>>,
    headers: &HeaderMap,
    mut pairs: Vec<(String, String)>,
) -> ApiResult<Response> {
    check_format(headers, format_of(&pairs))?;
    restrict_search(&mut pairs, limited_to(access).as_deref())?;
    let base = base_url(state, headers);
    let spec = Spec::parse(state, &pairs, false).await?;
    crate::http::check_strict_handling(headers, &spec.ignored)?;
    let paging = Paging::parse(&pairs, state.config.default_count, state.config.max_count)?;
    let (count, token) = (paging.count, paging.page.clone());
    // Every parameter the search used (a national person number as the Patient it named),
    // in the canonical order, and none it ignored.
    let mut self_pairs = spec.applied.clone();
    self_pairs.extend(result_params(&pairs, &paging));
    let self_pairs = canonical(self_pairs);
    let link = |p: &[(String, String)]| format!("{base}/Observation?{}", query_string(p));
    if paging.only_total {
        let total = spec.total(state).await?;
        return Ok(fhir_response(
            StatusCode::OK,
            &searchset(&link(&self_pairs), None, total, Vec::new()),
        ));
    }
    let (items, next, total) = if paging.want_total && token.is_none() {
        spec.page_with_total(state, count, token.clone()).await?
    } else {
        let (items, next) = spec.page(state, count, token.clone()).await?;
        (items, next, None)
    };
    let next_link = next.map(|t| {
        let mut p = self_pairs.clone();
        p.push(("_page".into(), t.as_str().to_string()));
        link(&p)
    });
    let mut self_pairs = self_pairs;
    if let Some(t) = token {
        self_pairs.push(("_page".into(), t));
    }
    let self_link = link(&self_pairs);
    // The matches are written as text and spliced into the Bundle: building a `Value` per
    // Observation and serialising it was most of a search's time (`docs/benchmarks.md`).
    let mut entries = Vec::with_capacity(items.len());
    // A page is mostly one subject's: its reference is made once, not once per entry.
    let mut reference: Option<(&healthanalyzer_model::Identifier, Option<String>)> = None;
    for v in &items {
        let subject = &v.value.subject;
        if reference.as_ref().is_none_or(|(s, _)| *s != subject) {
            reference = Some((subject, subject_reference(subject)));
        }
        let r = reference.as_ref().and_then(|(_, r)| r.as_deref());
        entries.push((
            format!("{base}/Observation/{}", v.value.id.as_uuid()),
            versioned_text_as(&state.catalog, v, r)?,
        ));
    }
    let bundle = searchset(&self_link, next_link.as_deref(), total, Vec::new());
    let mut included = Vec::new();
    if spec.include_subject {
        let mut seen = std::collections::HashSet::new();
        for m in items.iter().map(|v| &v.value) {
            if !seen.insert(&m.subject) {
                continue;
            }
            let subject = state
                .store
                .subject(&m.subject)
                .await
                .map_err(|e| ApiError::from_store(&e))?
                .unwrap_or_else(|| Subject::new(m.subject.clone()));
            included.push((
                format!("{base}/Patient/{}", crate::patient::logical_id(&subject)),
                Value::Object(crate::patient::patient_json(&subject)?).to_string(),
            ));
        }
    }
    Ok(crate::http::fhir_bytes(
        StatusCode::OK,
        crate::search::splice_entries(&bundle, &entries, &included),
    ))
}
