//! Filters, queries, sort orders and opaque page tokens.

use std::fmt;
use std::ops::Bound;

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{Identifier, KindId, Measurement};

use crate::error::{Error, Result};

/// Which measurements a query or count covers. The default covers everything.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Only this subject.
    pub subject: Option<Identifier>,
    /// Only these kinds (catalog ids); empty means every kind. Map codes to kinds with the
    /// model's `Catalog::lookup`.
    pub kinds: Vec<KindId>,
    /// Lower bound on the effective time (the instant, or a period's start).
    pub from: Bound<Timestamp>,
    /// Upper bound on the effective time.
    pub to: Bound<Timestamp>,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            subject: None,
            kinds: Vec::new(),
            from: Bound::Unbounded,
            to: Bound::Unbounded,
        }
    }
}

impl Filter {
    /// Everything of one subject.
    pub fn subject(subject: Identifier) -> Self {
        Self {
            subject: Some(subject),
            ..Self::default()
        }
    }

    /// The same, restricted to these kinds.
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = impl Into<KindId>>) -> Self {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }

    /// The same, restricted to a time range.
    pub fn between(mut self, from: Bound<Timestamp>, to: Bound<Timestamp>) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    /// True when `m` passes the filter. Stores may use it; it defines the semantics.
    pub fn matches(&self, m: &Measurement) -> bool {
        if self.subject.as_ref().is_some_and(|s| *s != m.subject) {
            return false;
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&m.kind) {
            return false;
        }
        let t = m.effective.instant();
        let after_from = match self.from {
            Bound::Included(f) => t >= f,
            Bound::Excluded(f) => t > f,
            Bound::Unbounded => true,
        };
        let before_to = match self.to {
            Bound::Included(e) => t <= e,
            Bound::Excluded(e) => t < e,
            Bound::Unbounded => true,
        };
        after_from && before_to
    }
}

/// Sort order by effective time (ties broken by id, in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}

/// The position of a measurement in the sort: effective instant (nanoseconds since the Unix epoch)
/// then id. Keyset pagination continues strictly after a key, so rows inserted while a client
/// pages are neither skipped (if they sort later) nor repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// Effective instant in nanoseconds since the Unix epoch.
    pub nanos: i128,
    /// The measurement id as a 128-bit number.
    pub id: u128,
}

impl SortKey {
    /// The key of a measurement.
    pub fn of(m: &Measurement) -> Self {
        Self {
            nanos: m.effective.instant().as_nanosecond(),
            id: m.id.as_uuid().as_u128(),
        }
    }
}

/// An instant in nanoseconds since the Unix epoch as `(seconds, nanoseconds)`, with floor
/// division so the pair sorts like the instant and the nanoseconds lie in `0..1_000_000_000`.
/// SQL stores keep instants as these two integer columns: every instant the model holds
/// (years −9999..9999) fits, where one 64-bit nanosecond count would not.
pub fn split_instant(nanos: i128) -> (i64, u32) {
    const NANOS: i128 = 1_000_000_000;
    (
        i64::try_from(nanos.div_euclid(NANOS)).unwrap_or(i64::MAX),
        nanos.rem_euclid(NANOS) as u32,
    )
}

/// An opaque continuation token. Pass it back unchanged in [`Query::page`]; its text form is
/// stable across processes and store instances of the same backend kind, but is not an API.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PageToken(String);

impl PageToken {
    /// The token after `key` for `order`.
    pub fn after(order: Order, key: SortKey) -> Self {
        let o = match order {
            Order::Ascending => 'a',
            Order::Descending => 'd',
        };
        Self(format!("{o}{}.{:032x}", key.nanos, key.id))
    }

    /// Decodes a token for a query in `order`; a token from another order or a mangled one is
    /// an [`Error::InvalidInput`] on field `page`.
    pub fn decode(&self, order: Order) -> Result<SortKey> {
        let bad = |reason: &str| Error::invalid("page", reason.to_string());
        let s = self.0.as_str();
        let (o, rest) = s
            .split_at_checked(1)
            .ok_or_else(|| bad("empty page token"))?;
        let expected = match order {
            Order::Ascending => "a",
            Order::Descending => "d",
        };
        if o != expected {
            return Err(bad(
                "the page token belongs to a query with another sort order",
            ));
        }
        let (nanos, id) = rest
            .split_once('.')
            .ok_or_else(|| bad("malformed page token; pass back the token you were given"))?;
        let nanos = nanos
            .parse::<i128>()
            .map_err(|_| bad("malformed page token; pass back the token you were given"))?;
        if id.len() != 32 {
            return Err(bad(
                "malformed page token; pass back the token you were given",
            ));
        }
        let id = u128::from_str_radix(id, 16)
            .map_err(|_| bad("malformed page token; pass back the token you were given"))?;
        Ok(SortKey { nanos, id })
    }

    /// The token as text (for a URL or a response body).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for PageToken {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageToken({})", self.0)
    }
}

impl fmt::Display for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A page request.
#[derive(Debug, Clone)]
pub struct Query {
    /// What to return.
    pub filter: Filter,
    /// In which order.
    pub order: Order,
    /// At most this many per page (at least 1).
    pub limit: usize,
    /// Continue after this token (from a previous [`Page::next`]).
    pub page: Option<PageToken>,
}

impl Query {
    /// The first page of `filter`, ascending, `limit` per page.
    pub fn new(filter: Filter, limit: usize) -> Self {
        Self {
            filter,
            order: Order::Ascending,
            limit,
            page: None,
        }
    }

    /// The same in another order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The start key to continue after, checking the limit too.
    pub fn start(&self) -> Result<Option<SortKey>> {
        if self.limit == 0 {
            return Err(Error::invalid("limit", "must be at least 1"));
        }
        self.page.as_ref().map(|p| p.decode(self.order)).transpose()
    }
}

/// One page of results.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The measurements, in the query's order.
    pub items: Vec<Measurement>,
    /// The token for the next page; `None` when this is the last.
    pub next: Option<PageToken>,
    /// The store's version of each item, in the same order (see
    /// [`WriteSetStore`](crate::WriteSetStore)); empty from a store that keeps no versions.
    pub versions: Vec<u64>,
}

impl Page {
    /// A page from rows fetched with `LIMIT limit + 1` in `order`: a row beyond `limit` means
    /// there is a next page, which starts after the last row kept.
    pub fn from_overfetch(mut items: Vec<Measurement>, limit: usize, order: Order) -> Self {
        let next = if items.len() > limit {
            items.truncate(limit);
            items
                .last()
                .map(|m| PageToken::after(order, SortKey::of(m)))
        } else {
            None
        };
        Self {
            items,
            next,
            versions: Vec::new(),
        }
    }

    /// As [`from_overfetch`](Self::from_overfetch), with each row's version.
    pub fn from_overfetch_versioned(
        rows: Vec<(Measurement, u64)>,
        limit: usize,
        order: Order,
    ) -> Self {
        let (items, mut versions): (Vec<Measurement>, Vec<u64>) = rows.into_iter().unzip();
        let page = Self::from_overfetch(items, limit, order);
        versions.truncate(page.items.len());
        Self { versions, ..page }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_instant_sorts_like_the_instant() {
        const NANOS: i128 = 1_000_000_000;
        let xs = [
            -377_705_116_800 * NANOS,
            -NANOS - 1,
            -NANOS,
            -NANOS + 1,
            -1,
            0,
            1,
            NANOS - 1,
            NANOS,
            253_402_300_799 * NANOS + 999_999_999,
        ];
        for w in xs.windows(2) {
            assert!(split_instant(w[0]) < split_instant(w[1]), "{w:?}");
        }
        for x in xs {
            let (s, ns) = split_instant(x);
            assert!(ns < 1_000_000_000);
            assert_eq!(i128::from(s) * NANOS + i128::from(ns), x);
        }
    }
}
