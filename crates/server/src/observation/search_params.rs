//! Observation search parameters: what a search (or an `If-None-Exist` condition) asks for,
//! parsed into a store filter and the checks applied to its results.

use std::ops::Bound;

use healthanalyzer_model::{KindId, Measurement, MeasurementId};
use healthanalyzer_store::{Filter, Order};

use super::mapping::last_updated;
use super::{API_SOURCE, token_record};
use crate::error::{ApiError, ApiResult};
use crate::patient::resolve_reference;
use crate::search::{DateParam, max_lower, min_upper};
use crate::state::AppState;

/// An Observation search, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(super) filter: Filter,
    /// Nothing can match (an unknown patient or code): no store query needed.
    pub(super) empty: bool,
    /// `ne` dates, applied to the results.
    pub(super) not_in: Vec<DateParam>,
    /// `_lastUpdated`, applied to the results (`meta.lastUpdated` of the stored resource).
    pub(super) last_updated: Vec<DateParam>,
    /// A single measurement by business identifier (conditional creates only).
    pub(super) by_identifier: Option<MeasurementId>,
    /// The record id a conditional create on an identifier stores under.
    pub(super) identifier_record: Option<String>,
    pub(super) order: Order,
    /// The parameters applied, for the self and next links.
    pub(super) applied: Vec<(String, String)>,
    /// The parameters this server does not know (ignored, or 400 with `Prefer: handling=strict`).
    pub(super) ignored: Vec<String>,
    /// `_include=Observation:subject` (or `:patient`): the page's Patients join the Bundle.
    pub(super) include_subject: bool,
    /// What `code` asked for: kinds whose own code it names (all their readings), and panel
    /// components whose code it names (their lone readings only: ADR 0009).
    pub(super) code_scope: Option<CodeScope>,
}

/// Kinds a `code` search names whole, and (kind, component) pairs whose lone readings it names.
type CodeScope = (Vec<KindId>, Vec<(KindId, String)>);

/// The Observation search parameters this server supports (also in the CapabilityStatement).
pub(crate) const SEARCH_PARAMS: &[(&str, &str, &str)] = &[
    (
        "patient",
        "reference",
        "The Patient the Observation is about",
    ),
    (
        "subject",
        "reference",
        "The subject (a Patient) of the Observation",
    ),
    (
        "patient.identifier",
        "token",
        "The Patient by one of its identifiers, system|value (also subject.identifier, \
         subject:Patient.identifier, patient:identifier). A national person number (CPR, BSN, \
         FNR, D- or H-number) only in the body of POST Observation/_search, never in a URL; the \
         links then name the Patient as patient=<id>",
    ),
    ("subject.identifier", "token", "As patient.identifier"),
    (
        "code",
        "token",
        "Observation.code: system|code, code, comma-separated for OR",
    ),
    (
        "category",
        "token",
        "Observation.category, e.g. vital-signs",
    ),
    (
        "date",
        "date",
        "Observation.effective, with eq/ne/lt/le/gt/ge/sa/eb and partial dates",
    ),
    (
        "_lastUpdated",
        "date",
        "meta.lastUpdated, as date; filtered over the other parameters' results \
         (Observations from sources without meta.lastUpdated never match)",
    ),
];

impl Spec {
    /// Parses search parameters; `conditional`: for `If-None-Exist`, where `identifier` is
    /// allowed too.
    pub(crate) async fn parse(
        state: &AppState,
        pairs: &[(String, String)],
        conditional: bool,
    ) -> ApiResult<Self> {
        crate::search::refuse_unsupported_modifiers(pairs)?;
        let mut spec = Spec {
            filter: Filter::default(),
            empty: false,
            not_in: Vec::new(),
            last_updated: Vec::new(),
            by_identifier: None,
            identifier_record: None,
            order: Order::Ascending,
            applied: Vec::new(),
            ignored: Vec::new(),
            include_subject: false,
            code_scope: None,
        };
        let mut kinds: Option<Vec<KindId>> = None;
        let restrict = |kinds: &mut Option<Vec<KindId>>, allowed: Vec<KindId>| {
            *kinds = Some(match kinds.take() {
                None => allowed,
                Some(k) => k.into_iter().filter(|x| allowed.contains(x)).collect(),
            });
        };
        for (k, v) in pairs {
            match k.as_str() {
                name if crate::auth::is_patient_param(name) => {
                    if v.contains(',') {
                        return Err(ApiError::bad_request(format!(
                            "{name}: one Patient per search (no comma-separated list)"
                        ))
                        .at(name.to_string()));
                    }
                    match resolve_reference(state, v).await? {
                        Some(r) => {
                            if spec
                                .filter
                                .subject
                                .as_ref()
                                .is_some_and(|s| *s != r.primary)
                            {
                                spec.empty = true;
                            }
                            spec.filter.subject = Some(r.primary);
                        }
                        None => spec.empty = true,
                    }
                }
                name if crate::search::PATIENT_IDENTIFIER_PARAMS.contains(&name) => {
                    if v.contains(',') {
                        return Err(ApiError::bad_request(format!(
                            "{name}: one Patient per search (no comma-separated list)"
                        ))
                        .at(format!("http.{name}")));
                    }
                    let wanted = crate::search::patient_identifier(name, v)?;
                    // The subject that identifier names (a Patient's primary identifier, or one
                    // of its others), else measurements stored under it directly.
                    let (primary, patient_id) = match state
                        .store
                        .subject(&wanted)
                        .await
                        .map_err(|e| ApiError::from_store(&e))?
                    {
                        Some(s) => {
                            let id = crate::patient::logical_id(&s);
                            (s.id, id)
                        }
                        None => {
                            let id = crate::patient::logical_id_of(&wanted);
                            (wanted, id)
                        }
                    };
                    if spec.filter.subject.as_ref().is_some_and(|s| *s != primary) {
                        spec.empty = true;
                    }
                    if crate::search::is_national_token(v) {
                        // Never in a link: the links name the Patient it resolved to, which
                        // is the same search (and resolves in one step on the next page).
                        if patient_id == crate::patient::derived_id(&primary)
                            && let Ok(mut ids) = state.derived_ids.write()
                        {
                            ids.insert(patient_id.clone(), primary.clone());
                        }
                        spec.applied.push(("patient".into(), patient_id));
                        spec.filter.subject = Some(primary);
                        continue;
                    }
                    spec.filter.subject = Some(primary);
                }
                "code" => {
                    let names = |codings: &[healthanalyzer_model::Coding]| {
                        v.split(',').any(|tok| {
                            let (sys, code) = match tok.split_once('|') {
                                Some((s, c)) => (Some(s), c),
                                None => (None, tok),
                            };
                            codings.iter().any(|c| {
                                c.code == code && sys.is_none_or(|s| s.is_empty() || s == c.system)
                            })
                        })
                    };
                    let mut whole = Vec::new();
                    let mut lone = Vec::new();
                    for kind in state.catalog.kinds() {
                        if names(&kind.codings) {
                            whole.push(kind.id.clone());
                        }
                        for comp in &kind.components {
                            if names(&comp.codings) {
                                lone.push((kind.id.clone(), comp.id.to_string()));
                            }
                        }
                    }
                    let mut allowed = whole.clone();
                    allowed.extend(lone.iter().map(|(k, _)| k.clone()));
                    allowed.dedup();
                    restrict(&mut kinds, allowed);
                    spec.code_scope = Some(match spec.code_scope.take() {
                        None => (whole, lone),
                        // Two `code` parameters: both must hold.
                        Some((w, l)) => (
                            w.into_iter().filter(|k| whole.contains(k)).collect(),
                            l.into_iter().filter(|x| lone.contains(x)).collect(),
                        ),
                    });
                }
                "category" => {
                    let allowed: Vec<KindId> = state
                        .catalog
                        .kinds()
                        .iter()
                        .filter(|kind| {
                            v.split(',').any(|tok| {
                                let code = tok.rsplit('|').next().unwrap_or(tok);
                                kind.category == code
                            })
                        })
                        .map(|kind| kind.id.clone())
                        .collect();
                    restrict(&mut kinds, allowed);
                }
                "date" => {
                    let p = DateParam::parse(v, "date")?;
                    match p.bounds() {
                        Some((from, to)) => {
                            spec.filter.from = max_lower(spec.filter.from, from);
                            spec.filter.to = min_upper(spec.filter.to, to);
                        }
                        None => spec.not_in.push(p),
                    }
                }
                "_lastUpdated" => spec.last_updated.push(DateParam::parse(v, "_lastUpdated")?),
                "identifier" if !conditional => {
                    return Err(ApiError::bad_request(
                        "Observation search by identifier is not supported (no identifier index); \
                         for idempotent creates send If-None-Exist: identifier=system|value",
                    )
                    .at("identifier"));
                }
                "identifier" => {
                    let Some((system, value)) = v.split_once('|') else {
                        return Err(ApiError::bad_request(
                            "identifier: send system|value (this server finds Observations by identifiers with a system)",
                        )
                        .at("identifier"));
                    };
                    let record = token_record(system, value);
                    let mid = MeasurementId::from_source(API_SOURCE, &record);
                    if spec.by_identifier.is_some_and(|x| x != mid) {
                        spec.empty = true;
                    }
                    spec.by_identifier = Some(mid);
                    spec.identifier_record = Some(record);
                }
                "_sort" => {
                    spec.order = match v.as_str() {
                        "date" => Order::Ascending,
                        "-date" => Order::Descending,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "_sort={other} is not supported; use date or -date"
                            ))
                            .at("_sort"));
                        }
                    };
                }
                "_include" => match v.as_str() {
                    "Observation:subject"
                    | "Observation:patient"
                    | "Observation:subject:Patient"
                    | "Observation:patient:Patient" => spec.include_subject = true,
                    other => {
                        spec.ignored.push(format!("_include={other}"));
                        continue;
                    }
                },
                "_count" | "_page" | "_summary" | "_total" | "_format" => continue,
                other => {
                    spec.ignored.push(other.to_string());
                    continue;
                }
            }
            spec.applied.push((k.clone(), v.clone()));
        }
        if let Some(k) = kinds {
            if k.is_empty() {
                spec.empty = true;
            }
            spec.filter.kinds = k;
        }
        if matches!((&spec.filter.from, &spec.filter.to), (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) if a > b)
        {
            spec.empty = true;
        }
        Ok(spec)
    }

    /// The parameters the search used, for its links (a national person number as
    /// `patient=<the Patient id it named>`).
    pub(crate) fn applied(&self) -> &[(String, String)] {
        &self.applied
    }

    /// True when nothing can match.
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// The store filter.
    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The store filter, to narrow further.
    pub(crate) fn filter_mut(&mut self) -> &mut Filter {
        &mut self.filter
    }

    pub(super) fn keep(&self, m: &Measurement) -> bool {
        if let Some((whole, lone)) = &self.code_scope {
            // A lone component reading's code is its component's; a panel's is the panel's.
            let matches = match &m.value {
                healthanalyzer_model::Value::Components(cs) if m.value.is_lone_component() => lone
                    .iter()
                    .any(|(k, c)| *k == m.kind && cs[0].id.as_str() == c),
                _ => whole.contains(&m.kind),
            };
            if !matches {
                return false;
            }
        }
        let t = m.effective.instant();
        let hi = t
            .checked_add(healthanalyzer_model::jiff::SignedDuration::from_nanos(1))
            .unwrap_or(t);
        self.not_in.iter().all(|p| p.matches(t, hi))
            && (self.last_updated.is_empty() || {
                let updated = last_updated(m);
                updated.is_some_and(|u| {
                    let u_hi = u
                        .checked_add(healthanalyzer_model::jiff::SignedDuration::from_nanos(1))
                        .unwrap_or(u);
                    self.last_updated.iter().all(|p| p.matches(u, u_hi))
                })
            })
    }
}
