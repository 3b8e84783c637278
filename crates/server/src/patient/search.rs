//! Patient search (`GET /Patient`, and the `If-None-Exist` of a Patient create), read from the
//! store a page at a time.
//!
//! The Patients are the store's subject records and the subjects known only from their
//! measurements, merged in the order of their keys (`identifier_key`): the store hands both
//! out a page ([`STORE_PAGE`]) at a time, and a search keeps only the matches of the page it
//! answers (one more, to know whether a next page follows). Its memory is bounded by a page,
//! whatever the size of the store. `total` counts the matches while reading on to the end;
//! `_total=none` stops reading at the page.
//!
//! The `_page` token is the Patient id of the page's last entry, never an identifier (a token
//! ends up in access logs): a page starts after the key of the Patient it names, found with
//! one lookup for a server-assigned id or a derived id this server handed out, else by reading
//! the listing up to that Patient.

use std::collections::VecDeque;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use healthanalyzer_fhir::REFERENCE_SYSTEM;
use healthanalyzer_model::{Identifier, Subject};
use healthanalyzer_store::backend::identifier_key;
use healthanalyzer_store::{Filter, Query};
use serde_json::Value;

use super::{derived_id, format_of, logical_id, patient_json};
use crate::auth::{Access, limited_to};
use crate::error::{ApiError, ApiResult};
use crate::http::{check_format, fhir_response};
use crate::resource::{base_url, valid_id};
use crate::search::{DateParam, Paging, params, query_string, searchset};
use crate::state::AppState;

/// How many subjects a search asks the store for at once, from each of its two listings.
pub(crate) const STORE_PAGE: usize = 1_000;

/// The Patient search parameters this server supports.
fn is_criterion(name: &str) -> bool {
    matches!(
        name,
        "identifier" | "name" | "family" | "given" | "birthdate" | "_id"
    )
}

/// What a Patient search asks for: every parameter must hold, and one of its comma-separated
/// values.
#[derive(Debug, Default)]
struct Criteria {
    /// `identifier`: `system|value` (that system) or `value` (any system).
    identifiers: Vec<Vec<Identifier>>,
    /// `name`, `family`, `given`: the start of a word of the name, lower case.
    names: Vec<Vec<String>>,
    /// `birthdate`.
    births: Vec<DateParam>,
    /// `_id`: Patient ids.
    ids: Vec<Vec<String>>,
}

impl Criteria {
    /// Reads `identifier`, `name`/`family`/`given`, `birthdate` and `_id` from `pairs`; other
    /// parameters are not criteria. A modifier is refused (400).
    fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        crate::search::refuse_modifiers_but(pairs, &[])?;
        let mut c = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "identifier" => c.identifiers.push(
                    v.split(',')
                        .map(|t| {
                            t.parse::<Identifier>().map_err(|e| {
                                ApiError::bad_request(format!("identifier: {e}")).at("identifier")
                            })
                        })
                        .collect::<ApiResult<_>>()?,
                ),
                "name" | "family" | "given" => c
                    .names
                    .push(v.split(',').map(|s| s.trim().to_lowercase()).collect()),
                "birthdate" => c.births.push(DateParam::parse(v, "birthdate")?),
                "_id" => c.ids.push(v.split(',').map(str::to_string).collect()),
                _ => {}
            }
        }
        Ok(c)
    }

    /// Whether the subject with Patient id `id` matches.
    fn matches(&self, s: &Subject, id: &str) -> bool {
        self.identifiers.iter().all(|any| {
            any.iter().any(|want| {
                std::iter::once(&s.id).chain(&s.other_ids).any(|have| {
                    have.value == want.value
                        && (want.system.is_none() || have.system == want.system)
                })
            })
        }) && self.names.iter().all(|any| {
            any.iter().any(|want| {
                s.name.as_ref().is_some_and(|n| {
                    n.family
                        .iter()
                        .chain(&n.given)
                        .chain(&n.text)
                        .flat_map(|p| p.split_whitespace())
                        .any(|w| w.to_lowercase().starts_with(want.as_str()))
                })
            })
        }) && self.births.iter().all(|p| {
            s.birth_date.is_some_and(|b| {
                let lo = b.instant();
                let hi = lo
                    .checked_add(healthanalyzer_model::jiff::SignedDuration::from_hours(24))
                    .unwrap_or(lo);
                p.matches(lo, hi)
            })
        }) && self.ids.iter().all(|any| any.iter().any(|x| x == id))
    }

    /// The identifiers of an `identifier` parameter whose every value has a system: a match
    /// holds one of them, so they are the only candidates, found by lookups instead of a
    /// listing.
    fn named(&self) -> Option<&[Identifier]> {
        self.identifiers
            .iter()
            .find(|any| any.iter().all(|i| i.system.is_some()))
            .map(Vec::as_slice)
    }
}

/// A Patient as a search reads it.
#[derive(Debug)]
struct Entry {
    /// Its place in the listing: the key of its primary identifier.
    key: String,
    /// Its Patient id.
    id: String,
    subject: Subject,
}

impl Entry {
    fn of(subject: Subject) -> Self {
        Self {
            key: identifier_key(&subject.id),
            id: logical_id(&subject),
            subject,
        }
    }
}

fn store_error(e: healthanalyzer_store::Error) -> ApiError {
    ApiError::from_store(&e)
}

/// Whether the store holds a measurement of `id`.
async fn measured(state: &AppState, id: &Identifier) -> ApiResult<bool> {
    let page = state
        .store
        .query(&Query::new(Filter::subject(id.clone()), 1))
        .await
        .map_err(store_error)?;
    Ok(!page.items.is_empty())
}

/// One of the store's two listings: what it handed out that is not yet taken, and where it
/// goes on.
#[derive(Debug, Default)]
struct Lane {
    buffer: VecDeque<Entry>,
    after: Option<Identifier>,
    done: bool,
}

impl Lane {
    fn starting_after(after: Option<Identifier>) -> Self {
        Self {
            after,
            ..Self::default()
        }
    }

    fn wants_more(&self) -> bool {
        self.buffer.is_empty() && !self.done
    }

    /// Takes a store page in; a short one is the last.
    fn fill(&mut self, page: Vec<Subject>) {
        self.done = page.len() < STORE_PAGE;
        if let Some(last) = page.last() {
            self.after = Some(last.id.clone());
        }
        self.buffer.extend(page.into_iter().map(Entry::of));
    }
}

/// Every Patient of the store after a key, in key order: the subject records and the subjects
/// known only from their measurements, merged, a store page of each at a time.
#[derive(Debug)]
struct Listing<'a> {
    state: &'a AppState,
    records: Lane,
    unrecorded: Lane,
}

impl<'a> Listing<'a> {
    fn new(state: &'a AppState, after: Option<Identifier>) -> Self {
        Self {
            state,
            records: Lane::starting_after(after.clone()),
            unrecorded: Lane::starting_after(after),
        }
    }

    async fn next(&mut self) -> ApiResult<Option<Entry>> {
        let store = &self.state.store;
        if self.records.wants_more() {
            let page = store
                .subjects_page(self.records.after.as_ref(), STORE_PAGE)
                .await
                .map_err(store_error)?;
            self.records.fill(page);
        }
        if self.unrecorded.wants_more() {
            let page = store
                .unrecorded_subjects_page(self.unrecorded.after.as_ref(), STORE_PAGE)
                .await
                .map_err(store_error)?;
            self.unrecorded
                .fill(page.into_iter().map(Subject::new).collect());
        }
        let from_records = match (self.records.buffer.front(), self.unrecorded.buffer.front()) {
            (None, None) => return Ok(None),
            (Some(r), Some(u)) => r.key <= u.key,
            (r, _) => r.is_some(),
        };
        let lane = if from_records {
            &mut self.records
        } else {
            &mut self.unrecorded
        };
        Ok(lane.buffer.pop_front())
    }
}

/// What a search reads, in key order.
#[derive(Debug)]
enum Candidates<'a> {
    /// Every Patient of the store.
    Store(Listing<'a>),
    /// The few Patients an `identifier` search names.
    Named(std::vec::IntoIter<Entry>),
}

impl<'a> Candidates<'a> {
    /// The candidates of `criteria` whose key sorts after that of `after`.
    async fn open(
        state: &'a AppState,
        criteria: &Criteria,
        after: Option<&Identifier>,
    ) -> ApiResult<Self> {
        let Some(named) = criteria.named() else {
            return Ok(Self::Store(Listing::new(state, after.cloned())));
        };
        let mut found = Vec::new();
        for id in named {
            match state.store.subject(id).await.map_err(store_error)? {
                Some(s) => found.push(Entry::of(s)),
                None if measured(state, id).await? => {
                    found.push(Entry::of(Subject::new(id.clone())))
                }
                None => {}
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found.dedup_by(|a, b| a.key == b.key);
        if let Some(after) = after {
            let key = identifier_key(after);
            found.retain(|e| e.key > key);
        }
        Ok(Self::Named(found.into_iter()))
    }

    async fn next(&mut self) -> ApiResult<Option<Entry>> {
        match self {
            Self::Store(listing) => listing.next().await,
            Self::Named(entries) => Ok(entries.next()),
        }
    }
}

/// Where a page starts.
#[derive(Debug)]
enum Resume {
    /// At the first Patient.
    Start,
    /// After the place of this identifier's key.
    After(Identifier),
    /// After the Patient with this id, wherever the listing has it.
    AfterId(String),
}

impl Resume {
    /// Where the page after the Patient `token` (a `_page` token) starts.
    async fn of(state: &AppState, token: Option<&str>) -> ApiResult<Self> {
        let Some(token) = token else {
            return Ok(Self::Start);
        };
        // A derived id this server has listed or handed out: its identifier.
        let cached = state
            .derived_ids
            .read()
            .ok()
            .and_then(|m| m.get(token).cloned());
        if let Some(id) = cached {
            return Ok(Self::After(id));
        }
        if valid_id(token) {
            // An id the server (or a synced Patient's source) gave: the identifier
            // `Patient/<id>`, on a subject record or on measurements alone.
            let alias = Identifier::new(REFERENCE_SYSTEM, format!("Patient/{token}"));
            match state.store.subject(&alias).await.map_err(store_error)? {
                Some(s) if logical_id(&s) == token => return Ok(Self::After(s.id)),
                Some(_) => {}
                None if measured(state, &alias).await? => return Ok(Self::After(alias)),
                None => {}
            }
        }
        Ok(Self::AfterId(token.to_string()))
    }
}

/// What one pass over the candidates found.
#[derive(Debug)]
struct Scan {
    /// Every match, when the pass counted them all (else the matches up to the page's end).
    total: u64,
    /// The first `count` matches after where the page starts.
    page: Vec<Entry>,
    /// More matches follow the page.
    more: bool,
}

/// Reads the candidates in key order, keeping the first `count` matches after `resume`;
/// `count_all`: reads on to the end, counting every match (for `total`), else stops once it
/// knows whether a match follows the page. Holds a store page per listing and the page.
async fn scan(
    state: &AppState,
    criteria: &Criteria,
    resume: &Resume,
    count: usize,
    count_all: bool,
) -> ApiResult<Scan> {
    // Counting needs every Patient; a page alone starts where the token says.
    let start = match resume {
        Resume::After(id) if !count_all => Some(id),
        _ => None,
    };
    let resume_key = match resume {
        Resume::After(id) => Some(identifier_key(id)),
        Resume::Start | Resume::AfterId(_) => None,
    };
    let mut candidates = Candidates::open(state, criteria, start).await?;
    let mut past = matches!(resume, Resume::Start);
    let mut scan = Scan {
        total: 0,
        page: Vec::new(),
        more: false,
    };
    while let Some(e) = candidates.next().await? {
        let hit = criteria.matches(&e.subject, &e.id);
        scan.total += u64::from(hit);
        if !past {
            match resume {
                Resume::Start => {}
                Resume::After(_) => past = resume_key.as_ref().is_some_and(|k| e.key > *k),
                // The Patient the token names ended the previous page.
                Resume::AfterId(id) => {
                    past = e.id == *id;
                    continue;
                }
            }
        }
        if !hit || !past {
            continue;
        }
        if scan.page.len() < count {
            scan.page.push(e);
        } else {
            scan.more = true;
            if !count_all {
                break;
            }
        }
    }
    if !past && matches!(resume, Resume::AfterId(_)) {
        return Err(ApiError::bad_request(
            "_page names a Patient this search does not list (deleted since, or not a page token); start the search again",
        )
        .at("_page"));
    }
    Ok(scan)
}

/// The Patients an `If-None-Exist` condition matches: how many, and the first two.
pub(super) async fn conditional_matches(
    state: &AppState,
    pairs: &[(String, String)],
) -> ApiResult<(u64, Vec<Subject>)> {
    let criteria = Criteria::parse(pairs)?;
    let found = scan(state, &criteria, &Resume::Start, 2, true).await?;
    Ok((
        found.total,
        found.page.into_iter().map(|e| e.subject).collect(),
    ))
}

/// Keeps the identifier behind a derived Patient id that ends a page, so that the next page
/// starts after it in one step.
fn remember(state: &AppState, e: &Entry) {
    if e.id == derived_id(&e.subject.id)
        && let Ok(mut ids) = state.derived_ids.write()
    {
        ids.insert(e.id.clone(), e.subject.id.clone());
    }
}

/// The criteria as the links carry them: an `identifier` parameter with a national person
/// number becomes `_id=` the Patient ids its identifiers name (the same search; the number
/// never appears in a URL). In such a parameter every identifier needs its system (400).
async fn link_criteria(
    state: &AppState,
    applied: &[(String, String)],
) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(applied.len());
    for (k, v) in applied {
        if k != "identifier" || !v.split(',').any(crate::search::is_national_token) {
            out.push((k.clone(), v.clone()));
            continue;
        }
        let mut ids = Vec::new();
        for token in v.split(',') {
            let id = match token.parse::<Identifier>() {
                Ok(id) if id.system.is_some() => id,
                _ => {
                    return Err(ApiError::bad_request(
                        "identifier: with a national person number in the parameter, send every \
                         identifier of it as system|value",
                    )
                    .at("http.identifier"));
                }
            };
            let patient = match state.store.subject(&id).await.map_err(store_error)? {
                Some(s) => Entry::of(s),
                None => Entry::of(Subject::new(id)),
            };
            remember(state, &patient);
            ids.push(patient.id);
        }
        out.push(("_id".into(), ids.join(",")));
    }
    Ok(out)
}

/// `GET /Patient?…`. A national person number in the query is refused (400): such a search is
/// POSTed to `_search`.
pub(crate) async fn search(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs = params(query.as_deref());
    crate::search::refuse_national_in_url(&pairs, "Patient")?;
    run(&state, &access, &headers, pairs).await
}

/// `POST /Patient/_search`: the parameters of the URL and of the form body, combined.
pub(crate) async fn search_post(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    crate::search::check_search_scope(&access, "Patient")?;
    let pairs = crate::search::post_search_params(query.as_deref(), &headers, &body, "Patient")?;
    run(&state, &access, &headers, pairs).await
}

/// A Patient search of `pairs`, by GET or POST.
async fn run(
    state: &AppState,
    access: &Option<Extension<Access>>,
    headers: &HeaderMap,
    mut pairs: Vec<(String, String)>,
) -> ApiResult<Response> {
    let (state, headers) = (state.clone(), headers.clone());
    if let Some(p) = limited_to(access) {
        pairs.push(("_id".into(), p));
    }
    check_format(&headers, format_of(&pairs))?;
    let base = base_url(&state, &headers);
    let paging = Paging::parse(&pairs, state.config.default_count, state.config.max_count)?;
    crate::search::refuse_modifiers_but(&pairs, &[])?;
    let ignored: Vec<String> = pairs
        .iter()
        .map(|(k, _)| k)
        .filter(|k| {
            !is_criterion(k)
                && !matches!(
                    k.as_str(),
                    "_count" | "_page" | "_summary" | "_total" | "_format"
                )
        })
        .cloned()
        .collect();
    crate::http::check_strict_handling(&headers, &ignored)?;
    let applied: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| is_criterion(k))
        .cloned()
        .collect();
    let criteria = Criteria::parse(&applied)?;
    // Every parameter the search used, in the canonical order, and none it ignored; `_total=none`
    // is kept in the links: the next page need not read to the end either.
    let mut self_pairs = link_criteria(&state, &applied).await?;
    self_pairs.extend(crate::search::result_params(&pairs, &paging));
    let mut self_pairs = crate::search::canonical(self_pairs);
    if paging.only_total {
        let found = scan(&state, &criteria, &Resume::Start, 0, true).await?;
        let self_link = format!("{base}/Patient?{}", query_string(&self_pairs));
        return Ok(fhir_response(
            StatusCode::OK,
            &searchset(&self_link, None, Some(found.total), Vec::new()),
        ));
    }
    let resume = Resume::of(&state, paging.page.as_deref()).await?;
    let found = scan(&state, &criteria, &resume, paging.count, paging.want_total).await?;
    let next = match (found.more, found.page.last()) {
        (true, Some(last)) => {
            remember(&state, last);
            let mut p = self_pairs.clone();
            p.push(("_page".into(), last.id.clone()));
            Some(format!("{base}/Patient?{}", query_string(&p)))
        }
        _ => None,
    };
    if let Some(token) = &paging.page {
        self_pairs.push(("_page".into(), token.clone()));
    }
    let self_link = format!("{base}/Patient?{}", query_string(&self_pairs));
    let mut entries = Vec::with_capacity(found.page.len());
    for e in &found.page {
        entries.push((
            format!("{base}/Patient/{}", e.id),
            Value::Object(patient_json(&e.subject)?),
        ));
    }
    let total = paging.want_total.then_some(found.total);
    Ok(fhir_response(
        StatusCode::OK,
        &searchset(&self_link, next.as_deref(), total, entries),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria(q: &str) -> Criteria {
        Criteria::parse(&params(Some(q))).unwrap_or_else(|e| panic!("{q}: {e:?}"))
    }

    #[test]
    fn only_identifiers_with_systems_are_looked_up() {
        let named = |q: &str| criteria(q).named().map(<[Identifier]>::to_vec);
        assert_eq!(
            named("identifier=urn:a|1,urn:b|2"),
            Some(vec![
                Identifier::new("urn:a", "1"),
                Identifier::new("urn:b", "2")
            ])
        );
        // A value without a system matches it in any system: a listing is needed.
        assert_eq!(named("identifier=urn:a|1,2"), None);
        assert_eq!(named("name=x"), None);
        // Of two parameters (both must hold), the one that can be looked up.
        assert_eq!(
            named("identifier=2&identifier=urn:a|1"),
            Some(vec![Identifier::new("urn:a", "1")])
        );
    }

    #[test]
    fn every_parameter_must_hold_and_one_of_its_values() {
        let mut s = Subject::new(Identifier::new("urn:a", "1"));
        s.other_ids.push(Identifier::new("urn:b", "2"));
        s.name = Some(healthanalyzer_model::HumanName {
            family: Some("Ødegård".into()),
            given: vec!["Åse Marie".into()],
            text: None,
        });
        let id = logical_id(&s);
        for (q, want) in [
            ("identifier=urn:b|2", true),
            ("identifier=2", true),
            ("identifier=urn:a|2", false),
            ("identifier=urn:x|9,urn:a|1", true),
            ("name=mar", true),
            ("name=arie", false),
            ("family=ØDE&given=åse", true),
            ("family=ØDE&given=bo", false),
            ("birthdate=1950", false),
        ] {
            assert_eq!(criteria(q).matches(&s, &id), want, "{q}");
        }
        assert!(criteria(&format!("_id=x,{id}")).matches(&s, &id));
        assert!(!criteria("_id=x").matches(&s, &id));
    }
}
