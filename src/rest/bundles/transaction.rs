//! `transaction` (R4 http §3.1.0.11.2): all the writes of the Bundle or none of them.
//!
//! Planning reads what the writes depend on (conditional matches, current versions, the
//! resources a patch applies to), assigns the ids of new resources, turns every reference to
//! another entry (`urn:uuid:…`) or to search criteria into `Type/id`, and runs the write hooks.
//! The plan is then written as one database transaction in which each write checks that what
//! the plan read is still so; when it is not (another request got in between), the whole plan
//! is made again. Reads (`GET`, `HEAD`) run after the commit and see its writes.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{Entry, Method, Target, dispatch, response_bundle, response_entry};
use crate::fhir::instant::format_instant;
use crate::fhir::outcome::{Issue, IssueType, operation_outcome};
use crate::fhir::{ResourceId, check_value, references};
use crate::rest::interactions::{conditional_criteria, patch};
use crate::rest::preconditions::{PreferReturn, prefer_return, version_of_etag};
use crate::rest::response::etag;
use crate::rest::{ApiError, Prepared, RestState};
use crate::storage::{
    Expect, MAX_CONDITIONAL_DELETES, Source, StorageError, StoredVersion, TxDone, TxStep,
    WriteMethod,
};

/// How often a transaction is planned again when other writes made its plan stale.
const ATTEMPTS: usize = 5;

/// How an entry is answered once the transaction is committed.
enum Answer {
    /// By the step at this position of the plan.
    Step(usize, Vec<Issue>),
    /// A conditional delete: by these steps.
    Deletes(Vec<usize>),
    /// A conditional create whose criteria matched one resource: nothing was written.
    Existing(StoredVersion),
    /// A read, run after the commit.
    Read,
}

/// A write whose references are resolved once every entry's identity is known.
struct Pending {
    entry: usize,
    resource_type: String,
    id: ResourceId,
    resource: Value,
    method: WriteMethod,
    expect: (Expect, Source),
    /// The current version, for the write hooks.
    previous: Option<Value>,
}

enum Planned {
    Ready(Box<TxStep>),
    Write(Box<Pending>),
}

/// What a transaction will do.
struct Plan {
    steps: Vec<TxStep>,
    answers: Vec<Answer>,
}

/// Runs a transaction and returns the `transaction-response` Bundle.
pub async fn run(
    state: &RestState,
    entries: Vec<Entry>,
    headers: &HeaderMap,
) -> Result<Value, ApiError> {
    check(&entries)?;
    let mut attempt = 0;
    let (answers, done) = loop {
        attempt += 1;
        let Plan { steps, answers } = plan(state, &entries).await?;
        match state.storage.transaction(steps).await {
            Ok(done) => break (answers, done),
            Err(StorageError::Entry { source, .. })
                if matches!(*source, StorageError::Stale(_)) && attempt < ATTEMPTS => {}
            Err(StorageError::Entry { entry, source }) => {
                return Err(ApiError::from(*source).in_entry(entry, &entries[entry].label()));
            }
            Err(e) => return Err(e.into()),
        }
    };
    after_commit(state, &done).await?;
    let prefer = prefer_return(headers);
    let routes = answers
        .iter()
        .any(|a| matches!(a, Answer::Read))
        .then(|| super::super::routes(state).with_state(state.clone()));
    let mut response = Vec::with_capacity(entries.len());
    for (entry, answer) in entries.iter().zip(answers) {
        response.push(match answer {
            Answer::Step(step, warnings) => match &done[step] {
                TxDone::Stored(version) if version.deleted => deleted_entry(Some(version)),
                TxDone::Stored(version) => written_entry(state, version, prefer, &warnings),
                _ => deleted_entry(None),
            },
            Answer::Deletes(steps) => {
                let count = steps
                    .iter()
                    .filter(|s| matches!(&done[**s], TxDone::Stored(_)))
                    .count();
                let message = format!(
                    "deleted {count} {} resources",
                    entry.url_type().unwrap_or_default()
                );
                response_entry(
                    StatusCode::OK,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(operation_outcome(&[Issue::information(message)])),
                )
            }
            Answer::Existing(mut version) => {
                version.created = false;
                written_entry(state, &version, prefer, &[])
            }
            Answer::Read => match &routes {
                Some(routes) => dispatch::run(routes, entry, headers).await,
                None => dispatch::failure(ApiError::internal("no routes for a read")),
            },
        });
    }
    Ok(response_bundle(state, "transaction-response", response))
}

/// What follows the commit: written SearchParameters join the registry (deleted ones leave it)
/// and the hooks see what was stored.
async fn after_commit(state: &RestState, done: &[TxDone]) -> Result<(), ApiError> {
    let mut parameters_deleted = false;
    for d in done {
        if let TxDone::Stored(version) = d {
            if version.deleted {
                parameters_deleted |= version.resource_type == "SearchParameter";
            } else {
                state.after_store(&version.resource_type, version);
            }
        }
    }
    if parameters_deleted {
        let registry = crate::rest::search_parameters::rebuild(&state.storage).await?;
        state.registry.replace(registry);
        state.refresh_capabilities();
    }
    Ok(())
}

fn written_entry(
    state: &RestState,
    version: &StoredVersion,
    prefer: PreferReturn,
    warnings: &[Issue],
) -> Value {
    let status = if version.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let url = format!("{}/{}/{}", state.base, version.resource_type, version.id);
    let resource = (prefer == PreferReturn::Representation)
        .then(|| serde_json::from_slice(&version.content).ok())
        .flatten();
    let outcome = match prefer {
        PreferReturn::OperationOutcome => {
            let verb = if version.created {
                "created"
            } else {
                "updated"
            };
            let mut issues = vec![Issue::information(format!(
                "{verb} {}/{} version {}",
                version.resource_type, version.id, version.version_id
            ))];
            issues.extend(warnings.iter().cloned());
            Some(operation_outcome(&issues))
        }
        _ if !warnings.is_empty() => Some(operation_outcome(warnings)),
        _ => None,
    };
    response_entry(
        status,
        Some(url.clone()),
        resource,
        Some(format!("{url}/_history/{}", version.version_id)),
        Some(etag(version.version_id)),
        Some(format_instant(version.last_updated)),
        outcome,
    )
}

fn deleted_entry(tombstone: Option<&StoredVersion>) -> Value {
    let message = match tombstone {
        Some(t) => format!(
            "deleted {}/{} (version {})",
            t.resource_type, t.id, t.version_id
        ),
        None => "nothing to delete: the resource does not exist or was already deleted".into(),
    };
    response_entry(
        StatusCode::OK,
        None,
        None,
        None,
        tombstone.map(|t| etag(t.version_id)),
        tombstone.map(|t| format_instant(t.last_updated)),
        Some(operation_outcome(&[Issue::information(message)])),
    )
}

/// Checks what can be checked without the database: fullUrls are unique, writes carry valid
/// resources of the type their URL names.
fn check(entries: &[Entry]) -> Result<(), ApiError> {
    let mut full_urls: HashMap<&str, usize> = HashMap::new();
    for entry in entries {
        if let Some(url) = &entry.full_url
            && let Some(first) = full_urls.insert(url, entry.index)
        {
            return Err(entry.error(
                StatusCode::BAD_REQUEST,
                IssueType::Duplicate,
                format!("fullUrl '{url}' is also the fullUrl of Bundle.entry[{first}]"),
            ));
        }
        let needs_resource = matches!(entry.method, Method::Post | Method::Put | Method::Patch);
        let Some(resource) = entry.resource.as_ref().filter(|_| needs_resource) else {
            if needs_resource {
                return Err(entry.error(
                    StatusCode::BAD_REQUEST,
                    IssueType::Required,
                    "this entry needs a resource",
                ));
            }
            continue;
        };
        if entry.method == Method::Patch {
            continue;
        }
        let expected = entry.url_type();
        check_value(resource, expected)
            .map_err(|issues| ApiError::from(issues).in_entry(entry.index, &entry.label()))?;
    }
    Ok(())
}

/// The version an entry's `ifMatch` names.
fn client_version(entry: &Entry) -> Result<Option<i64>, ApiError> {
    let Some(tag) = &entry.if_match else {
        return Ok(None);
    };
    version_of_etag(tag).map(Some).ok_or_else(|| {
        entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::Value,
            format!("ifMatch '{tag}' is not a version ETag such as W/\"3\""),
        )
    })
}

fn in_entry<T>(entry: &Entry, result: Result<T, ApiError>) -> Result<T, ApiError> {
    result.map_err(|e| e.in_entry(entry.index, &entry.label()))
}

/// Plans the transaction (see the module documentation).
async fn plan(state: &RestState, entries: &[Entry]) -> Result<Plan, ApiError> {
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_key(|e| (e.method.phase(), e.index));
    let mut planner = Planner {
        state,
        planned: Vec::new(),
        answers: entries.iter().map(|_| Answer::Read).collect(),
        references: HashMap::new(),
        touched: HashMap::new(),
    };
    for entry in order {
        authorize_entry(state, entry)
            .await
            .map_err(|e| e.in_entry(entry.index, &entry.label()))?;
        match entry.method {
            Method::Delete => planner.delete(entry).await?,
            Method::Post => planner.create(entry).await?,
            Method::Put => planner.update(entry).await?,
            Method::Patch => planner.patch(entry).await?,
            Method::Get | Method::Head => {}
        }
    }
    planner.finish().await
}

/// Checks an entry against the token of the request: its scopes must permit the interaction on
/// the type, and an existing resource it changes must be within the token's permit. (GET and
/// HEAD entries are checked when they are dispatched; what entries write is checked when it is
/// prepared.)
async fn authorize_entry(state: &RestState, entry: &Entry) -> Result<(), ApiError> {
    use crate::auth::Interaction;
    let interaction = match entry.method {
        Method::Delete => Interaction::Delete,
        Method::Post => Interaction::Create,
        Method::Put | Method::Patch => Interaction::Update,
        Method::Get | Method::Head => return Ok(()),
    };
    match entry.target() {
        Target::Instance(t, id) => {
            crate::rest::guard::current_permit(t, interaction)?;
            state.check_existing(t, &id, interaction).await
        }
        Target::Type(t) | Target::Conditional(t, _) => {
            crate::rest::guard::current_permit(t, interaction).map(|_| ())
        }
        Target::Other => Ok(()),
    }
}

struct Planner<'a> {
    state: &'a RestState,
    planned: Vec<Planned>,
    answers: Vec<Answer>,
    /// fullUrls (and later conditional references) to `Type/id`.
    references: HashMap<String, String>,
    /// Resources written or deleted, and by which entry.
    touched: HashMap<String, usize>,
}

impl Planner<'_> {
    /// Notes that `entry` writes `t/id`; two entries may not.
    fn touch(&mut self, entry: &Entry, t: &str, id: &str) -> Result<(), ApiError> {
        let key = format!("{t}/{id}");
        if let Some(first) = self.touched.insert(key.clone(), entry.index) {
            return Err(entry.error(
                StatusCode::BAD_REQUEST,
                IssueType::Duplicate,
                format!("Bundle.entry[{first}] already acts on {key}; a transaction may change a resource once"),
            ));
        }
        Ok(())
    }

    fn push(&mut self, planned: Planned) -> usize {
        self.planned.push(planned);
        self.planned.len() - 1
    }

    /// The ids of the live resources that match `criteria`, at most `limit`, sorted; the plan
    /// checks again at commit time that they still are the matches.
    async fn matches(
        &mut self,
        entry: &Entry,
        t: &str,
        criteria: &str,
        what: &str,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let (query, key) = in_entry(
            entry,
            conditional_criteria(self.state, t, Some(criteria), what),
        )?;
        let mut ids = self.state.storage.matching(query.clone(), limit).await?;
        ids.sort();
        if ids.len() < limit {
            self.push(Planned::Ready(Box::new(TxStep::Matches {
                entry: entry.index,
                query,
                key,
                ids: ids.clone(),
            })));
        }
        Ok(ids)
    }

    fn map_full_url(&mut self, entry: &Entry, t: &str, id: &str) {
        if let Some(url) = &entry.full_url {
            self.references.insert(url.clone(), format!("{t}/{id}"));
        }
    }

    fn several(entry: &Entry, what: &str) -> ApiError {
        entry.error(
            StatusCode::PRECONDITION_FAILED,
            IssueType::MultipleMatches,
            format!("the criteria match more than one resource; {what}"),
        )
    }

    fn unsupported(entry: &Entry) -> ApiError {
        entry.error(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            format!(
                "{} {} is not an interaction a transaction can hold (operations run on their own or in a batch)",
                entry.method.as_str(),
                entry.url
            ),
        )
    }

    async fn delete(&mut self, entry: &Entry) -> Result<(), ApiError> {
        match entry.target() {
            Target::Instance(t, id) => {
                let expect = match client_version(entry)? {
                    Some(v) => (Expect::Version(v), Source::Client),
                    None => (Expect::Any, Source::Planner),
                };
                self.touch(entry, t, id.as_str())?;
                let step = self.push(Planned::Ready(Box::new(TxStep::Delete {
                    entry: entry.index,
                    resource_type: t.to_owned(),
                    id,
                    expect,
                })));
                self.answers[entry.index] = Answer::Step(step, Vec::new());
            }
            Target::Conditional(t, criteria) => {
                let limit = MAX_CONDITIONAL_DELETES + 1;
                let ids = self
                    .matches(entry, t, criteria, "a conditional delete", limit)
                    .await?;
                if ids.len() >= limit {
                    return Err(entry.error(
                        StatusCode::PRECONDITION_FAILED,
                        IssueType::MultipleMatches,
                        format!("the criteria match more than {MAX_CONDITIONAL_DELETES} resources; a conditional delete removes at most {MAX_CONDITIONAL_DELETES}"),
                    ));
                }
                let mut steps = Vec::new();
                for id in ids {
                    self.touch(entry, t, &id)?;
                    let id = in_entry(entry, crate::rest::url_id(&id))?;
                    steps.push(self.push(Planned::Ready(Box::new(TxStep::Delete {
                        entry: entry.index,
                        resource_type: t.to_owned(),
                        id,
                        expect: (Expect::Any, Source::Planner),
                    }))));
                }
                self.answers[entry.index] = Answer::Deletes(steps);
            }
            Target::Type(_) | Target::Other => return Err(Self::unsupported(entry)),
        }
        Ok(())
    }

    async fn create(&mut self, entry: &Entry) -> Result<(), ApiError> {
        let Target::Type(t) = entry.target() else {
            return Err(Self::unsupported(entry));
        };
        if let Some(criteria) = &entry.if_none_exist {
            let ids = self.matches(entry, t, criteria, "ifNoneExist", 2).await?;
            match ids.as_slice() {
                [] => {}
                [one] => {
                    let id = in_entry(entry, crate::rest::url_id(one))?;
                    let existing = self
                        .state
                        .storage
                        .find_current(t, &id)
                        .await?
                        .ok_or_else(|| ApiError::internal("a matched resource vanished"))?;
                    self.map_full_url(entry, t, one);
                    self.answers[entry.index] = Answer::Existing(existing);
                    return Ok(());
                }
                _ => return Err(Self::several(entry, "nothing was created")),
            }
        }
        let id = ResourceId::generate();
        self.write(
            entry,
            t,
            id,
            WriteMethod::Post,
            (Expect::Absent, Source::Planner),
            None,
        )
    }

    async fn update(&mut self, entry: &Entry) -> Result<(), ApiError> {
        let client = client_version(entry)?;
        let body_id = entry
            .resource
            .as_ref()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (t, id, method) = match entry.target() {
            Target::Instance(t, id) => {
                if body_id.as_deref().is_some_and(|b| b != id.as_str()) {
                    return Err(entry.error(
                        StatusCode::BAD_REQUEST,
                        IssueType::Invalid,
                        format!("the resource's id does not match the id in the URL ('{id}')"),
                    ));
                }
                (t, id, WriteMethod::Put)
            }
            Target::Conditional(t, criteria) => {
                let ids = self
                    .matches(entry, t, criteria, "a conditional update", 2)
                    .await?;
                match (ids.as_slice(), &body_id) {
                    ([], Some(body)) => (
                        t,
                        in_entry(entry, crate::rest::url_id(body))?,
                        WriteMethod::Put,
                    ),
                    ([], None) => (t, ResourceId::generate(), WriteMethod::Post),
                    ([one], Some(body)) if body != one => {
                        return Err(entry.error(
                            StatusCode::BAD_REQUEST,
                            IssueType::Invalid,
                            format!(
                                "the criteria match {t}/{one}, but the resource carries another id"
                            ),
                        ));
                    }
                    ([one], _) => (
                        t,
                        in_entry(entry, crate::rest::url_id(one))?,
                        WriteMethod::Put,
                    ),
                    _ => return Err(Self::several(entry, "nothing was updated")),
                }
            }
            Target::Type(_) | Target::Other => return Err(Self::unsupported(entry)),
        };
        let mut expect = match client {
            Some(v) => (Expect::Version(v), Source::Client),
            None if method == WriteMethod::Post => (Expect::Absent, Source::Planner),
            None => (Expect::Any, Source::Planner),
        };
        let mut previous = None;
        if method == WriteMethod::Put && self.state.hooked(t) {
            // The hooks decide on the current version: it must still be current at commit.
            let current = self.state.current_value(t, &id).await?;
            if client.is_none() {
                expect.0 = current
                    .as_ref()
                    .map_or(Expect::Absent, |(_, v)| Expect::Version(*v));
            }
            previous = current.map(|(value, _)| value);
        }
        self.write(entry, t, id, method, expect, previous)
    }

    async fn patch(&mut self, entry: &Entry) -> Result<(), ApiError> {
        let (t, id) = match entry.target() {
            Target::Instance(t, id) => (t, id),
            Target::Conditional(t, criteria) => {
                let ids = self
                    .matches(entry, t, criteria, "a conditional patch", 2)
                    .await?;
                match ids.as_slice() {
                    [] => {
                        return Err(entry.error(
                            StatusCode::NOT_FOUND,
                            IssueType::NotFound,
                            format!("no {t} matches the criteria; nothing was patched"),
                        ));
                    }
                    [one] => (t, in_entry(entry, crate::rest::url_id(one))?),
                    _ => return Err(Self::several(entry, "nothing was patched")),
                }
            }
            Target::Type(_) | Target::Other => return Err(Self::unsupported(entry)),
        };
        let resource = entry.resource.as_ref().unwrap_or(&Value::Null);
        let (content_type, body) = dispatch::patch_body(entry, resource)?;
        let document = if content_type.starts_with("application/json-patch+json") {
            patch::PatchDocument::Json(in_entry(entry, patch::parse_json_patch(&body))?)
        } else if resource.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
            check_value(resource, Some("Parameters"))
                .map_err(|issues| ApiError::from(issues).in_entry(entry.index, &entry.label()))?;
            patch::PatchDocument::FhirPath(resource.clone())
        } else {
            return Err(entry.error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueType::NotSupported,
                format!("a PATCH entry takes a Binary holding a JSON Patch (contentType application/json-patch+json) or a FHIRPath Patch Parameters, not '{content_type}'"),
            ));
        };
        let Some(stored) = self.state.storage.find_current(t, &id).await? else {
            return Err(entry.error(
                StatusCode::NOT_FOUND,
                IssueType::NotFound,
                format!("{t}/{id} does not exist"),
            ));
        };
        if stored.deleted {
            return Err(entry.error(
                StatusCode::GONE,
                IssueType::Deleted,
                format!("{t}/{id} was deleted"),
            ));
        }
        let client = client_version(entry)?;
        if let Some(expected) = client
            && expected != stored.version_id
        {
            return Err(entry.error(
                StatusCode::PRECONDITION_FAILED,
                IssueType::Conflict,
                format!(
                    "ifMatch expects version {expected}, but the current version of {t}/{id} is {}",
                    stored.version_id
                ),
            ));
        }
        let current: Value = serde_json::from_slice(&stored.content)
            .map_err(|e| ApiError::internal(format!("stored JSON unreadable: {e}")))?;
        let patched = in_entry(entry, patch::apply(t, &id, current.clone(), &document))?;
        let source = if client.is_some() {
            Source::Client
        } else {
            Source::Planner
        };
        let mut pending_entry = entry.clone();
        pending_entry.resource = Some(patched);
        self.write(
            &pending_entry,
            t,
            id,
            WriteMethod::Put,
            (Expect::Version(stored.version_id), source),
            Some(current),
        )
    }

    fn write(
        &mut self,
        entry: &Entry,
        t: &str,
        id: ResourceId,
        method: WriteMethod,
        expect: (Expect, Source),
        previous: Option<Value>,
    ) -> Result<(), ApiError> {
        self.touch(entry, t, id.as_str())?;
        self.map_full_url(entry, t, id.as_str());
        let resource = entry.resource.clone().unwrap_or(Value::Null);
        let step = self.push(Planned::Write(Box::new(Pending {
            entry: entry.index,
            resource_type: t.to_owned(),
            id,
            resource,
            method,
            expect,
            previous,
        })));
        self.answers[entry.index] = Answer::Step(step, Vec::new());
        Ok(())
    }

    /// Resolves conditional references, rewrites every reference, runs the write hooks and
    /// extracts the index rows.
    async fn finish(mut self) -> Result<Plan, ApiError> {
        let mut conditional: Vec<(String, usize)> = Vec::new();
        for planned in &self.planned {
            if let Planned::Write(pending) = planned {
                let mut found = Vec::new();
                references::conditional(&pending.resource, &mut found);
                conditional.extend(found.into_iter().map(|r| (r, pending.entry)));
            }
        }
        for (reference, entry_index) in conditional {
            if self.references.contains_key(&reference) {
                continue;
            }
            let (t, criteria) = reference.split_once('?').unwrap_or((&reference, ""));
            let (query, _) =
                conditional_criteria(self.state, t, Some(criteria), "a conditional reference")
                    .map_err(|e| e.in_entry(entry_index, "conditional reference"))?;
            let ids = self.state.storage.matching(query, 2).await?;
            let [one] = ids.as_slice() else {
                let (code, found) = if ids.is_empty() {
                    (IssueType::NotFound, "no resource")
                } else {
                    (IssueType::MultipleMatches, "more than one resource")
                };
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    code,
                    format!("the conditional reference '{reference}' matches {found}; it must match exactly one"),
                )
                .in_entry(entry_index, "conditional reference"));
            };
            let target = format!("{t}/{one}");
            self.references.insert(reference, target);
        }
        let mut steps = Vec::with_capacity(self.planned.len());
        for planned in self.planned {
            let pending = match planned {
                Planned::Ready(step) => {
                    steps.push(*step);
                    continue;
                }
                Planned::Write(pending) => *pending,
            };
            let Pending {
                entry,
                resource_type,
                id,
                mut resource,
                method,
                expect,
                previous,
            } = pending;
            references::rewrite(&mut resource, &self.references);
            resource["id"] = Value::String(id.to_string());
            let label = format!("{} {resource_type}", method.as_str());
            let Prepared {
                resource,
                index,
                warnings,
            } = self
                .state
                .prepare(
                    &resource_type,
                    resource,
                    previous.as_ref(),
                    if method == WriteMethod::Post {
                        crate::auth::Interaction::Create
                    } else {
                        crate::auth::Interaction::Update
                    },
                )
                .map_err(|e| e.in_entry(entry, &label))?;
            if let Answer::Step(_, w) = &mut self.answers[entry] {
                *w = warnings;
            }
            steps.push(TxStep::Write {
                entry,
                resource_type,
                id,
                resource: crate::fhir::Unstamped::new(&resource),
                index,
                method,
                expect,
            });
        }
        Ok(Plan {
            steps,
            answers: self.answers,
        })
    }
}
