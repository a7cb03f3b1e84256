//! The contents of resource versions, kept in memory. A version's content never changes once
//! stored (a write adds a version; nothing rewrites or removes one), so a copy keyed by
//! `(type, id, versionId)` is never stale, whichever Hearth node wrote it.
//!
//! Searches and includes of a kind whose resources were found here lately choose their
//! resources and versions from the index and `resources` alone, take the contents from here,
//! and read only those missing from `resource_versions`: a page of 50 then costs the database
//! no probe of that table. Other searches read the contents with the page, in the same
//! statement as before, and keep them: on PostgreSQL a second statement for a page that is not
//! here costs more than the probes it would save (`benches/README.md`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};

use super::StorageResult;
use super::connection::DbConnection;
use super::search::Hit;
use super::sql::{Sql, load};
use crate::search::query::{Condition, SearchQuery};

/// A version: its type, id and version id.
pub type VersionKey = (String, String, i64);

/// Bytes of content kept by default (`content_cache_mb`).
pub const DEFAULT_BYTES: u64 = 128 << 20;

/// The content column of a query that leaves the contents to [`Contents::complete`].
pub fn no_content(postgres: bool) -> &'static str {
    if postgres {
        "CAST(NULL AS BYTEA) AS content"
    } else {
        "CAST(NULL AS BLOB) AS content"
    }
}

/// Versions read in one statement at most.
const CHUNK: usize = 500;

/// Weighs an entry by its content's bytes, with its key and the cache's own bookkeeping.
#[derive(Clone, Copy)]
struct Bytes;

impl quick_cache::Weighter<VersionKey, Arc<[u8]>> for Bytes {
    fn weight(&self, key: &VersionKey, content: &Arc<[u8]>) -> u64 {
        (content.len() + key.0.len() + key.1.len() + 64) as u64
    }
}

/// Kinds of search whose warmth is kept at most; past this, the estimates start over.
const KINDS: usize = 4096;
/// A kind counts as warm once this share of its resources was found here, on average.
const WARM: f32 = 0.9;

/// The cache; empty and unused when its size is 0.
pub struct Contents {
    cache: Option<quick_cache::sync::Cache<VersionKey, Arc<[u8]>, Bytes>>,
    /// Per kind of search (see [`Kind`]): a moving average of the share of its resources
    /// found here.
    warmth: Mutex<HashMap<u64, f32>>,
}

/// A kind of search or include: what its resources have in common, hashed (the types and
/// parameters, not the values).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Kind(pub u64);

impl Kind {
    /// The kind of whatever `parts` describe.
    pub fn of(parts: impl Hash) -> Kind {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut hasher);
        Kind(hasher.finish())
    }

    /// What kind of search `query` is, for [`Contents::warm`]: its types and the shape of its
    /// conditions (parameters, modifiers and nesting, not values).
    pub fn search(query: &SearchQuery) -> Kind {
        fn shape(out: &mut String, cond: &Condition) {
            match cond {
                Condition::Ids(_) => out.push_str("_id"),
                Condition::LastUpdated(_) => out.push_str("_lastUpdated"),
                Condition::Match { code, negate, .. } => {
                    out.push_str(code);
                    if *negate {
                        out.push_str(":not");
                    }
                }
                Condition::Missing { code, .. } => {
                    out.push_str(code);
                    out.push_str(":missing");
                }
                Condition::Chain { code, targets } => {
                    out.push_str(code);
                    for (t, inner) in targets {
                        out.push('.');
                        out.push_str(t);
                        out.push('(');
                        shape(out, inner);
                        out.push(')');
                    }
                }
                Condition::Has {
                    source_type,
                    code,
                    inner,
                } => {
                    out.push_str("_has:");
                    out.push_str(source_type);
                    out.push(':');
                    out.push_str(code);
                    out.push('(');
                    shape(out, inner);
                    out.push(')');
                }
                Condition::Or(list) => {
                    out.push_str("or(");
                    for c in list {
                        shape(out, c);
                        out.push(',');
                    }
                    out.push(')');
                }
            }
        }
        let mut out = query.types.join(",");
        for clause in &query.clauses {
            for (t, cond) in &clause.per_type {
                out.push('&');
                out.push_str(t);
                out.push(':');
                shape(&mut out, cond);
            }
        }
        Kind::of(out)
    }
}

impl Contents {
    /// A cache holding at most `bytes` of content (none when 0).
    pub fn new(bytes: u64) -> Contents {
        let cache = (bytes > 0).then(|| {
            // quick_cache sizes its tables by the items it expects: a 4 KB resource each.
            let items = usize::try_from(bytes / 4096).unwrap_or(usize::MAX).max(16);
            quick_cache::sync::Cache::with_weighter(items, bytes, Bytes)
        });
        Contents {
            cache,
            warmth: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the resources of a search of `kind` are likely all here, so that its query
    /// should leave their contents out.
    pub fn warm(&self, kind: Kind) -> bool {
        self.cache.is_some()
            && self
                .warmth
                .lock()
                .map(|w| w.get(&kind.0).is_some_and(|&share| share >= WARM))
                .unwrap_or(false)
    }

    fn learn(&self, kind: Kind, found: usize, of: usize) {
        if of == 0 || self.cache.is_none() {
            return;
        }
        if let Ok(mut warmth) = self.warmth.lock() {
            if warmth.len() >= KINDS && !warmth.contains_key(&kind.0) {
                warmth.clear();
            }
            let share = found as f32 / of as f32;
            let average = warmth.entry(kind.0).or_insert(share);
            *average = 0.5 * *average + 0.5 * share;
        }
    }

    /// The resources of versions a query returned, each with its content when the query read
    /// it (kept here from then on) or `None` (taken from here, or read now). `kind` learns how
    /// many were here already.
    pub fn complete(
        &self,
        conn: &mut DbConnection,
        postgres: bool,
        kind: Kind,
        rows: Vec<(VersionKey, Option<Vec<u8>>)>,
    ) -> StorageResult<Vec<Hit>> {
        let total = rows.len();
        let mut found = 0;
        let mut out: Vec<(VersionKey, Option<Arc<[u8]>>)> = Vec::with_capacity(total);
        for (key, content) in rows {
            let content = match (content, &self.cache) {
                (Some(bytes), Some(cache)) => match cache.get(&key) {
                    Some(kept) => {
                        found += 1;
                        Some(kept)
                    }
                    None => {
                        let bytes: Arc<[u8]> = bytes.into();
                        cache.insert(key.clone(), bytes.clone());
                        Some(bytes)
                    }
                },
                (Some(bytes), None) => Some(bytes.into()),
                (None, Some(cache)) => {
                    let hit = cache.get(&key);
                    found += usize::from(hit.is_some());
                    hit
                }
                (None, None) => None,
            };
            out.push((key, content));
        }
        self.learn(kind, found, total);
        let missing: Vec<VersionKey> = out
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let mut loaded = self.load(conn, postgres, &missing)?.into_iter();
        Ok(out
            .into_iter()
            .map(|((resource_type, id, _), c)| Hit {
                resource_type,
                id,
                content: c.or_else(|| loaded.next()).unwrap_or_default(),
            })
            .collect())
    }

    /// The content of each version of `keys`, in their order: from the cache where it is, the
    /// others from `resource_versions` (one statement for up to 500), which are then kept.
    pub fn load(
        &self,
        conn: &mut DbConnection,
        postgres: bool,
        keys: &[VersionKey],
    ) -> StorageResult<Vec<Arc<[u8]>>> {
        let mut out: Vec<Option<Arc<[u8]>>> = match &self.cache {
            Some(cache) => keys.iter().map(|k| cache.get(k)).collect(),
            None => vec![None; keys.len()],
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        for chunk in missing.chunks(CHUNK) {
            let mut sql = Sql::new(postgres);
            sql.push(
                "SELECT resource_type, resource_id, version_id, content FROM resource_versions WHERE ",
            );
            for (n, &i) in chunk.iter().enumerate() {
                let (t, id, version) = &keys[i];
                if n > 0 {
                    sql.push(" OR ");
                }
                sql.push("(resource_type = ")
                    .text(t)
                    .push(" AND resource_id = ")
                    .text(id)
                    .push(" AND version_id = ")
                    .bind(super::sql::Bind::Int(*version))
                    .push(")");
            }
            // Where each version goes in `out` (one may be asked for twice).
            let mut wanted: HashMap<&VersionKey, Vec<usize>> = HashMap::new();
            for &i in chunk {
                wanted.entry(&keys[i]).or_default().push(i);
            }
            for row in load!(conn, &sql, VersionRow)? {
                let content: Arc<[u8]> = row.content.into();
                let key = (row.resource_type, row.resource_id, row.version_id);
                for &i in wanted.get(&key).into_iter().flatten() {
                    out[i] = Some(content.clone());
                }
                if let Some(cache) = &self.cache {
                    cache.insert(key, content);
                }
            }
        }
        // Every version named comes from a resource's row, and versions are never removed:
        // one not found means the database changed under the server (restored, edited).
        out.into_iter()
            .zip(keys)
            .map(|(content, (t, id, version))| {
                content.ok_or_else(|| {
                    super::StorageError::Inconsistent(format!(
                        "version {version} of {t}/{id} is named by the resource but not stored"
                    ))
                })
            })
            .collect()
    }
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    resource_id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = Binary)]
    content: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    use serde_json::json;

    use crate::config::DatabaseUrl;
    use crate::fhir::ResourceId;
    use crate::search::{Registry, extract, query};
    use crate::storage::{Storage, StorageError};

    /// A search serves the version that `resources` names, never an older one it read before,
    /// with the cache and without, cold or warm; `_include` the same. A version the database
    /// lost, asked for by a warm search, is an error that names it, never an empty resource.
    #[test]
    fn searches_serve_the_current_version_with_or_without_the_cache() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let registry = Registry::r4();
        let base = "http://h/fhir";
        for bytes in [0, super::DEFAULT_BYTES] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("hearth.db");
            let storage = Storage::open(
                &DatabaseUrl::Sqlite(path.clone()),
                2,
                Arc::new(crate::clock::SystemClock),
            )
            .unwrap()
            .with_content_cache(bytes);
            let org_id = ResourceId::parse("acme").unwrap();
            let write_org = |name: &str| {
                let content = json!({"resourceType": "Organization", "name": name});
                let index = extract(&registry, &content, base);
                rt.block_on(storage.update("Organization", &org_id, content, index, None))
                    .unwrap();
            };
            write_org("Acme");
            let patient = |born: &str| {
                json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}],
                    "birthDate": born, "managingOrganization": {"reference": "Organization/acme"}})
            };
            let first = patient("1970-01-01");
            let index = extract(&registry, &first, base);
            let created = rt
                .block_on(storage.create("Patient", first, index))
                .unwrap();
            let id = ResourceId::parse(&created.id).unwrap();
            let update = |born: &str, version: i64| {
                let content = patient(born);
                let index = extract(&registry, &content, base);
                rt.block_on(storage.update("Patient", &id, content, index, Some(version)))
                    .unwrap();
            };
            let search = || {
                let params = vec![
                    ("name".to_owned(), "chalmers".to_owned()),
                    ("_include".to_owned(), "Patient:organization".to_owned()),
                ];
                let q = query::parse(&registry, vec!["Patient".into()], &params, "", true).unwrap();
                rt.block_on(storage.search(q))
            };
            let text = |content: &[u8]| String::from_utf8(content.to_vec()).unwrap();
            // Cold, then warm (with the cache): the same answer.
            for _ in 0..8 {
                let page = search().unwrap();
                assert!(text(&page.matches[0].content).contains("1970-01-01"));
                assert!(text(&page.included[0].content).contains(r#""name":"Acme""#));
            }
            assert_eq!(
                storage.contents.warm(kind_of_name_search(&registry)),
                bytes > 0
            );

            update("1980-02-02", 1);
            write_org("Acme Two");
            let page = search().unwrap();
            let served = text(&page.matches[0].content);
            assert!(served.contains("1980-02-02"), "{bytes}: {served}");
            assert!(served.contains(r#""versionId":"2""#), "{bytes}: {served}");
            assert!(text(&page.included[0].content).contains("Acme Two"));

            if bytes > 0 {
                for _ in 0..8 {
                    search().unwrap();
                }
                update("1990-03-03", 2);
                let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                diesel::sql_query(
                    "DELETE FROM resource_versions WHERE resource_type = 'Patient' AND version_id = 3",
                )
                .execute(&mut conn)
                .unwrap();
                match search() {
                    Err(StorageError::Inconsistent(detail)) => {
                        assert!(
                            detail.contains(&format!("version 3 of Patient/{id}")),
                            "{detail}"
                        );
                    }
                    other => panic!(
                        "expected an inconsistency, got {:?}",
                        other.map(|p| p.matches.len())
                    ),
                }
            }
        }
    }

    fn kind_of_name_search(registry: &Registry) -> super::Kind {
        let params = vec![
            ("name".to_owned(), "chalmers".to_owned()),
            ("_include".to_owned(), "Patient:organization".to_owned()),
        ];
        let q = query::parse(registry, vec!["Patient".into()], &params, "", true).unwrap();
        super::Kind::search(&q)
    }
}
