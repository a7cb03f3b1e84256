//! Bounded counts of index rows, remembered for a while. A search counts the index rows of a
//! condition (up to a limit) only to choose its plan: which clause drives, and whether a page
//! reads the driving index or walks the resources in order. The answer never depends on the
//! count, only the cost of finding it does, so a count some seconds old is as good as a new
//! one, and a search whose conditions were counted lately sends one statement fewer per
//! condition (on PostgreSQL a round trip each).

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use super::sql::{Bind, Sql};

/// How long a count is used before it is counted again.
const FRESH: Duration = Duration::from_secs(30);
/// Counts remembered at most.
const ENTRIES: usize = 16_384;

/// A remembered count: the rows found, the limit it was counted to, and when.
#[derive(Clone, Copy)]
struct Counted {
    rows: i64,
    limit: i64,
    at: Instant,
}

/// Counts by their statement (text and values, hashed).
pub struct Counts {
    cache: quick_cache::sync::Cache<u64, Counted>,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            cache: quick_cache::sync::Cache::new(ENTRIES),
        }
    }
}

impl Counts {
    /// The count of the statement `key` names up to `limit`, if one counted lately tells it: a
    /// count below its own limit is exact, and one that reached its limit is at least `limit`
    /// when that is no further.
    pub(super) fn get(&self, key: u64, limit: i64) -> Option<i64> {
        let c = self.cache.get(&key)?;
        if c.at.elapsed() > FRESH {
            return None;
        }
        if c.rows < c.limit {
            Some(c.rows.min(limit))
        } else if limit <= c.limit {
            Some(limit)
        } else {
            None
        }
    }

    /// Remembers that the statement `key` names counted `rows`, up to `limit`.
    pub(super) fn put(&self, key: u64, limit: i64, rows: i64) {
        self.cache.insert(
            key,
            Counted {
                rows,
                limit,
                at: Instant::now(),
            },
        );
    }
}

/// A statement's text and values, hashed: its key in [`Counts`]. Two statements that collide
/// would share a plan, never an answer.
pub(super) fn key(statement: &Sql) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    statement.text.hash(&mut hasher);
    for bind in &statement.binds {
        match bind {
            Bind::Text(s) => (0u8, s).hash(&mut hasher),
            Bind::Int(i) => (1u8, i).hash(&mut hasher),
            Bind::Float(f) => (2u8, f.to_bits()).hash(&mut hasher),
            Bind::OptText(s) => (3u8, s).hash(&mut hasher),
            Bind::OptFloat(f) => (4u8, f.map(f64::to_bits)).hash(&mut hasher),
            Bind::Bytes(b) => (5u8, b).hash(&mut hasher),
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(value: &str) -> Sql {
        let mut sql = Sql::new(false);
        sql.push("SELECT COUNT(*) FROM t WHERE v = ")
            .bind(Bind::Text(value.into()));
        sql
    }

    #[test]
    fn a_count_answers_only_what_it_proves() {
        let counts = Counts::default();
        let (a, b) = (key(&statement("a")), key(&statement("b")));
        assert_eq!(counts.get(a, 100), None);
        // Exact below its limit: any limit is answered.
        counts.put(a, 100, 7);
        assert_eq!(counts.get(a, 100), Some(7));
        assert_eq!(counts.get(a, 5), Some(5));
        assert_eq!(counts.get(a, 2000), Some(7));
        assert_eq!(counts.get(b, 100), None, "another value is another count");
        // Capped at its limit: only that limit or a smaller one is answered.
        counts.put(b, 100, 100);
        assert_eq!(counts.get(b, 50), Some(50));
        assert_eq!(counts.get(b, 100), Some(100));
        assert_eq!(counts.get(b, 101), None);
    }
}
