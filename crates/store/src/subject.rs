//! Subjects (patients): demographics, looked up by any of their identifiers.

use std::fmt::Debug;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, Subject};

use crate::error::{Error, Result};
use crate::store::WriteSummary;
use crate::writeset::WriteSetStore;

/// Stores subjects (the demographics behind a FHIR Patient), keyed by their primary identifier and
/// found by any of their identifiers.
///
/// # Contract
/// - **Upsert by primary id** ([`Subject::id`]): writing a subject whose primary id is stored
///   replaces it; identical content changes nothing. A batch is atomic.
/// - **One person per identifier.** An identifier (primary or in `other_ids`) belongs to at most
///   one stored subject; a write that would give an identifier to a second stored subject fails
///   with [`Error::PreconditionFailed`] ([`ConflictReason::IdentifierTaken`]), two subjects of
///   one batch sharing one with [`Error::Conflict`], and either writes nothing.
///
/// [`ConflictReason::IdentifierTaken`]: crate::ConflictReason::IdentifierTaken
/// - **Exactness**, **no unbounded blocking** and **retries are the caller's**, as on
///   [`MeasurementStore`](crate::MeasurementStore).
///
/// Measurements refer to a subject by identifier only; a store keeps measurements whose subject
/// it has no record of (a sync often brings measurements before demographics).
#[async_trait]
pub trait SubjectStore: Debug + Send + Sync + 'static {
    /// Upserts subjects, atomically.
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary>;

    /// The subject that has `id` as its primary identifier or among its other identifiers.
    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>>;

    /// Every subject the store holds, in the order of their primary identifiers' keys
    /// ([`identifier_key`]), all at once; [`subjects_page`](Self::subjects_page) lists them a
    /// page at a time.
    async fn list_subjects(&self) -> Result<Vec<Subject>>;

    /// One page of [`list_subjects`](Self::list_subjects), for listing a store of any size with
    /// bounded memory (keyset paging): up to `limit` subjects, in the order of their primary
    /// identifiers' keys ([`identifier_key`]), whose key sorts strictly after the key of `after`
    /// (from the first subject when `None`). `after` need not be stored (a subject deleted
    /// while a client pages): the page continues after where it would be.
    ///
    /// Pass the last subject's [`id`](Subject::id) of a page as `after` to get the next one.
    /// A page shorter than `limit` is the last; subjects written while a client pages appear
    /// at most once, and none that stays is skipped.
    ///
    /// The default filters [`list_subjects`](Self::list_subjects), so it holds every subject in
    /// memory at once; a backend with an index on the key (every one of ours) reads only the
    /// page.
    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        let after = after.map(identifier_key);
        let mut page: Vec<(String, Subject)> = self
            .list_subjects()
            .await?
            .into_iter()
            .map(|s| (identifier_key(&s.id), s))
            .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
            .collect();
        page.sort_by(|a, b| a.0.cmp(&b.0));
        page.truncate(limit);
        Ok(page.into_iter().map(|(_, s)| s).collect())
    }

    /// Deletes the subject with this primary identifier (not its measurements); returns whether
    /// it existed.
    async fn delete_subject(&self, id: &Identifier) -> Result<bool>;
}

/// Every storage trait: what a server or a pipeline opens from a URL. Implemented for every type
/// that implements [`WriteSetStore`] (and so both others), so `Arc<dyn Store>` is the usual
/// handle; it upcasts to each trait.
pub trait Store: WriteSetStore {}

impl<T: WriteSetStore + ?Sized> Store for T {}

/// Checks a subject batch for identifiers shared between two different subjects of the batch.
pub fn check_subjects(subjects: &[Subject]) -> Result<()> {
    let refs: Vec<&Subject> = subjects.iter().collect();
    check_subject_refs(&refs)
}

pub(crate) fn check_subject_refs(subjects: &[&Subject]) -> Result<()> {
    let mut owner: std::collections::HashMap<&Identifier, &Identifier> =
        std::collections::HashMap::new();
    for (i, s) in subjects.iter().enumerate() {
        for alias in std::iter::once(&s.id).chain(&s.other_ids) {
            if let Some(prev) = owner.insert(alias, &s.id)
                && *prev != s.id
            {
                return Err(Error::Conflict {
                    reason: format!(
                        "subjects[{i}] shares an identifier ({}) with another subject of the batch; nothing was written",
                        alias.redacted()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A text key for an identifier, for databases: unambiguous, and decodable with
/// [`parse_identifier_key`]. `None` systems encode as `-value`; others as `+system|value` with
/// `\` and `|` in the system escaped by `\`.
pub fn identifier_key(id: &Identifier) -> String {
    match &id.system {
        None => format!("-{}", id.value),
        Some(system) => {
            let mut key = String::with_capacity(system.len() + id.value.len() + 2);
            key.push('+');
            for c in system.chars() {
                if c == '\\' || c == '|' {
                    key.push('\\');
                }
                key.push(c);
            }
            key.push('|');
            key.push_str(&id.value);
            key
        }
    }
}

/// Decodes a key made by [`identifier_key`]; `None` for text that is not such a key.
pub fn parse_identifier_key(key: &str) -> Option<Identifier> {
    if let Some(value) = key.strip_prefix('-') {
        return Some(Identifier {
            system: None,
            value: value.to_string(),
        });
    }
    let rest = key.strip_prefix('+')?;
    let mut system = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => system.push(chars.next()?.1),
            '|' => {
                return Some(Identifier {
                    system: Some(system),
                    value: rest[i + 1..].to_string(),
                });
            }
            c => system.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_keys_round_trip_and_never_collide() {
        let ids = [
            Identifier::local("a|b"),
            Identifier::new("a", "b"),
            Identifier::new("a|b", ""),
            Identifier::new("", "a|b"),
            Identifier::new("x\\", "|y"),
            Identifier::new("x", "\\|y"),
            Identifier::local(""),
            Identifier::new("", ""),
        ];
        let keys: Vec<String> = ids.iter().map(identifier_key).collect();
        for (id, key) in ids.iter().zip(&keys) {
            assert_eq!(parse_identifier_key(key).as_ref(), Some(id), "{key}");
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
        for bad in ["", "x", "+abc", "+a\\"] {
            assert_eq!(parse_identifier_key(bad), None, "{bad}");
        }
    }
}
