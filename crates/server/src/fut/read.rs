//! Reads of the documents a submission keeps: `GET Provenance/{id}`, `Media/{id}` and
//! `QuestionnaireResponse/{id}`, limited to the token's Patient and EpisodeOfCare.

use axum::Extension;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;

use super::search::document_json;
use super::{Context, DOCUMENT_TYPES, outside_context, patient_key};
use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::http::read_response;
use crate::state::AppState;

/// `GET /fhir/{Provenance|Media|QuestionnaireResponse}/{id}` (the type from the path).
pub(crate) async fn read_document(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ty = uri
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .nth(1)
        .filter(|t| DOCUMENT_TYPES.contains(t))
        .ok_or_else(|| ApiError::not_found("no such resource type on this server"))?;
    let not_found = || ApiError::not_found(format!("{ty}/{id} is not known to this server"));
    let v = state
        .store
        .document(ty, &id)
        .await
        .map_err(|e| ApiError::from_store(&e))?
        .ok_or_else(not_found)?;
    let context = Context::of(&access.map_or(Access::Open, |a| a.0));
    if let Some(p) = &context.patient
        && !v.value.keys.contains(&patient_key(p))
    {
        return Err(outside_context("Patient", ty));
    }
    if context.episode_of_care().is_some() {
        let inside = v
            .value
            .keys
            .iter()
            .filter_map(|k| k.strip_prefix("episode-of-care|"))
            .any(|k| context.allows_episode_of_care(k));
        if !inside {
            return Err(outside_context("EpisodeOfCare", ty));
        }
    }
    let value = document_json(&v).ok_or_else(not_found)?;
    Ok(read_response(&value))
}
