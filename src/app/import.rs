//! `hearth import PATH…`: loads NDJSON files (one resource a line, as Bulk Data `$export` writes
//! them) and Bundle JSON files, or folders of them, straight into the database.
//!
//! Every resource is validated, completed by the write hooks and indexed as a FHIR write would
//! be, then written in batches of one database transaction each. A resource that cannot be
//! loaded is reported (file, line, reason) and the load goes on. Resources keep their ids; a
//! Bundle entry without one takes the UUID of its `urn:uuid:` fullUrl, and references between
//! the entries of a Bundle are resolved as in a transaction. So loading the same files again
//! changes nothing: a resource whose content is already current is left alone.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::AppError;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::fhir::outcome::Issue;
use crate::fhir::{ResourceId, check_value, references};
use crate::rest::RestState;
use crate::storage::{ImportItem, Imported};

/// Resources written per database transaction.
const BATCH: usize = 500;

/// Where a resource came from, for the report.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// The line of an NDJSON file, or the entry of a Bundle (from 1).
    pub position: usize,
    /// True for a Bundle entry.
    pub entry: bool,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.entry {
            write!(f, "{} entry {}", self.file.display(), self.position)
        } else {
            write!(f, "{}:{}", self.file.display(), self.position)
        }
    }
}

/// A resource that was not loaded, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Where it came from.
    pub origin: Origin,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Files read.
    pub files: usize,
    /// New resources.
    pub created: usize,
    /// New versions of existing resources.
    pub updated: usize,
    /// Resources already current.
    pub unchanged: usize,
    /// Resources not loaded.
    pub rejected: Vec<Rejected>,
    /// Seconds taken.
    pub seconds: f64,
}

impl Summary {
    /// Resources loaded (created, updated or already current).
    pub fn loaded(&self) -> usize {
        self.created + self.updated + self.unchanged
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let rate = self.loaded() as f64 / self.seconds.max(1e-9);
        format!(
            "imported {} resources from {} files in {:.1} s ({rate:.0} resources/s): {} created, {} updated, {} unchanged; {} rejected",
            self.loaded(),
            self.files,
            self.seconds,
            self.created,
            self.updated,
            self.unchanged,
            self.rejected.len()
        )
    }
}

/// A resource read from a file, not yet checked.
struct Item {
    origin: Origin,
    body: Body,
}

/// What a file gave for one resource.
enum Body {
    /// An NDJSON line, parsed with the rest of its batch on the blocking threads.
    Line(String),
    /// A resource of a JSON file.
    Parsed(Value),
}

/// Runs `hearth import`. Each rejected resource is printed to standard error as it is found
/// when `report` is set.
pub async fn import(
    config: &Config,
    paths: &[PathBuf],
    show_progress: bool,
) -> Result<Summary, AppError> {
    let clock: SharedClock = Arc::new(crate::clock::SystemClock);
    let calendar = super::calendar_settings(&config.triage)?;
    let storage = super::open_storage(config, clock.clone()).await?;
    let public_url = config.public_url(config.addr);
    let state = super::rest_state(storage, &public_url, clock, calendar).await?;
    super::install::install_profiles(&state).await?;
    let summary = load(&state, paths, show_progress).await?;
    // The planner's statistics predate the load: refresh them for the searches to come.
    state.storage.analyze().await?;
    Ok(summary)
}

/// Imports `paths` through `state` (see the module documentation).
pub async fn load(
    state: &RestState,
    paths: &[PathBuf],
    show_progress: bool,
) -> Result<Summary, AppError> {
    let started = Instant::now();
    let files = files(paths)?;
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let progress = ProgressBar::with_draw_target(
        Some(total),
        if show_progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut loader = Loader {
        state,
        summary: Summary {
            files: files.len(),
            ..Summary::default()
        },
        progress: &progress,
        writing: None,
    };
    let mut batch = Vec::with_capacity(BATCH);
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let mut read = 0u64;
        let is_ndjson = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("ndjson") || e.eq_ignore_ascii_case("jsonl"));
        if is_ndjson {
            let handle = std::fs::File::open(file).map_err(|e| io(file, &e))?;
            for (n, line) in std::io::BufReader::new(handle).lines().enumerate() {
                let origin = Origin {
                    file: file.clone(),
                    position: n + 1,
                    entry: false,
                };
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        reject(
                            &progress,
                            &mut loader.summary,
                            origin,
                            format!("unreadable: {e}"),
                        );
                        break;
                    }
                };
                let advance = line.len() as u64 + 1;
                read += advance;
                progress.inc(advance);
                if line.trim().is_empty() {
                    continue;
                }
                batch.push(Item {
                    origin,
                    body: Body::Line(line),
                });
                if batch.len() >= BATCH {
                    loader.flush(std::mem::take(&mut batch)).await?;
                }
            }
        } else {
            let items = read_json_file(file, &progress, &mut loader.summary);
            for item in items {
                batch.push(item);
                if batch.len() >= BATCH {
                    loader.flush(std::mem::take(&mut batch)).await?;
                }
            }
        }
        progress.inc(size.saturating_sub(read));
    }
    loader.flush(batch).await?;
    loader.settle().await?;
    let mut summary = loader.summary;
    progress.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn io(path: &Path, e: &std::io::Error) -> AppError {
    AppError::Install(format!("{}: {e}", path.display()))
}

/// The files to read: each file named, and every `.ndjson`, `.jsonl` and `.json` file under each
/// folder named, in name order.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AppError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| io(path, &e))?;
        if meta.is_dir() {
            let mut folder = Vec::new();
            walk(path, &mut folder)?;
            folder.sort();
            found.extend(folder);
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), AppError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, &e))? {
        let path = entry.map_err(|e| io(dir, &e))?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "ndjson" | "jsonl" | "json"))
        {
            found.push(path);
        }
    }
    Ok(())
}

fn reject(progress: &ProgressBar, summary: &mut Summary, origin: Origin, reason: String) {
    progress.suspend(|| eprintln!("{origin}: {reason}"));
    summary.rejected.push(Rejected { origin, reason });
}

/// The resources of a JSON file: the entries of a Bundle of type transaction, batch,
/// collection or searchset (ids from their fullUrls where they have none, references between
/// them resolved), or the one resource the file holds.
fn read_json_file(file: &Path, progress: &ProgressBar, summary: &mut Summary) -> Vec<Item> {
    let whole = Origin {
        file: file.to_owned(),
        position: 1,
        entry: false,
    };
    let value = match std::fs::read(file)
        .map_err(|e| format!("unreadable: {e}"))
        .and_then(|bytes| {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("not JSON: {e}"))
        }) {
        Ok(value) => value,
        Err(reason) => {
            reject(progress, summary, whole, reason);
            return Vec::new();
        }
    };
    let unpack = value.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && matches!(
            value.get("type").and_then(Value::as_str),
            Some("transaction" | "batch" | "collection" | "searchset")
        );
    if !unpack {
        return vec![Item {
            origin: whole,
            body: Body::Parsed(value),
        }];
    }
    let entries = value
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut map = HashMap::new();
    let mut items = Vec::with_capacity(entries.len());
    for (n, mut entry) in entries.into_iter().enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            position: n + 1,
            entry: true,
        };
        let method = entry
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or("PUT");
        if !matches!(method, "POST" | "PUT") {
            reject(
                progress,
                summary,
                origin,
                format!("a {method} entry is a request, not a resource to load"),
            );
            continue;
        }
        let Some(mut resource) = entry.get_mut("resource").map(Value::take) else {
            reject(
                progress,
                summary,
                origin,
                "the entry has no resource".into(),
            );
            continue;
        };
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        let t = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if resource.get("id").is_none()
            && let Some(id) = full_url.and_then(id_of_full_url)
        {
            resource["id"] = Value::String(id);
        }
        if let (Some(url), Some(id)) = (full_url, resource.get("id").and_then(Value::as_str)) {
            map.insert(url.to_owned(), format!("{t}/{id}"));
        }
        items.push((origin, resource));
    }
    items
        .into_iter()
        .map(|(origin, mut resource)| {
            references::rewrite(&mut resource, &map);
            Item {
                origin,
                body: Body::Parsed(resource),
            }
        })
        .collect()
}

/// The id a fullUrl gives a resource that has none: the UUID of `urn:uuid:…`, or the last
/// segment of `…/Type/id`.
fn id_of_full_url(url: &str) -> Option<String> {
    let candidate = match url.strip_prefix("urn:uuid:") {
        Some(uuid) => uuid,
        None if url.starts_with("http") => url.trim_end_matches('/').rsplit('/').next()?,
        None => return None,
    };
    ResourceId::parse(candidate).ok().map(|id| id.to_string())
}

/// Writes batches while the next one is read and prepared: a batch is checked, completed and
/// indexed on the blocking threads (two halves at once) while the one before it is written.
struct Loader<'a> {
    state: &'a RestState,
    summary: Summary,
    progress: &'a ProgressBar,
    /// The batch being written, in one database transaction.
    writing: Option<tokio::task::JoinHandle<crate::storage::StorageResult<Vec<Imported>>>>,
}

impl Loader<'_> {
    /// Prepares `batch`, then waits for the batch before it and starts writing this one.
    async fn flush(&mut self, batch: Vec<Item>) -> Result<(), AppError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut halves = vec![batch];
        let second = halves[0].len() / 2;
        let tail = halves[0].split_off(second);
        halves.push(tail);
        let mut tasks = Vec::new();
        for half in halves {
            let state = self.state.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                half.into_iter()
                    .map(|item| (item.origin, prepare(&state, item.body)))
                    .collect::<Vec<_>>()
            }));
        }
        let mut items = Vec::new();
        for task in tasks {
            let prepared = task.await.map_err(failed_task)?;
            for (origin, result) in prepared {
                match result {
                    Ok(item) => items.push(item),
                    Err(reason) => reject(self.progress, &mut self.summary, origin, reason),
                }
            }
        }
        self.settle().await?;
        if !items.is_empty() {
            let storage = self.state.storage.clone();
            self.writing = Some(tokio::spawn(async move { storage.import(items).await }));
        }
        Ok(())
    }

    /// Waits for the batch being written and counts what it did.
    async fn settle(&mut self) -> Result<(), AppError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        for outcome in writing.await.map_err(failed_task)?? {
            match outcome {
                Imported::Created => self.summary.created += 1,
                Imported::Updated => self.summary.updated += 1,
                Imported::Unchanged => self.summary.unchanged += 1,
            }
        }
        let loaded = self.summary.loaded();
        let rate = loaded as f64 / self.progress.elapsed().as_secs_f64().max(1e-3);
        self.progress
            .set_message(format!("{loaded} resources, {rate:.0}/s"));
        Ok(())
    }
}

fn failed_task(e: tokio::task::JoinError) -> AppError {
    AppError::Install(format!("an import task failed: {e}"))
}

fn describe(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| {
            if i.expression.is_empty() {
                i.diagnostics.clone()
            } else {
                format!("{} (at {})", i.diagnostics, i.expression.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses and validates one resource and runs the write hooks and the index extraction over it.
fn prepare(state: &RestState, body: Body) -> Result<ImportItem, String> {
    let resource = match body {
        Body::Line(line) => {
            serde_json::from_str::<Value>(&line).map_err(|e| format!("not JSON: {e}"))?
        }
        Body::Parsed(resource) => resource,
    };
    check_value(&resource, None).map_err(|issues| describe(&issues))?;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = match resource.get("id").and_then(Value::as_str) {
        Some(id) => ResourceId::parse(id).map_err(|issue| issue.diagnostics)?,
        None => ResourceId::generate(),
    };
    let mut resource = resource;
    resource["id"] = Value::String(id.to_string());
    let prepared = state
        .prepare(
            &resource_type,
            resource,
            None,
            crate::auth::Interaction::Update,
        )
        .map_err(|e| describe(e.issues()))?;
    Ok(ImportItem {
        resource_type,
        id,
        resource: prepared.resource,
        index: prepared.index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_urls_give_ids() {
        assert_eq!(
            id_of_full_url("urn:uuid:9e2f7a3b-94df-4b3d-bee2-360881649fa5").as_deref(),
            Some("9e2f7a3b-94df-4b3d-bee2-360881649fa5")
        );
        assert_eq!(
            id_of_full_url("http://example.org/fhir/Patient/123").as_deref(),
            Some("123")
        );
        assert_eq!(id_of_full_url("urn:oid:1.2.3"), None);
        assert_eq!(id_of_full_url("urn:uuid:not a uuid"), None);
    }
}
