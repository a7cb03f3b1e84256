//! The audit trail of patient data: every FHIR request that reads or writes a resource in the
//! Patient compartment (or a Patient) becomes an R4 AuditEvent naming who (user and client
//! app), which patient, what (the entity or the query), the action and the outcome. The
//! request only hands a small record to a channel; a background task gathers the records in
//! batches and builds their events a part at a time (128 events, one multi-row insert per
//! table, so that the writes of clients never queue behind a whole batch), while the parts
//! before are written: auditing costs the request path next to nothing. The queue is bounded:
//! a request takes room for its record first, and the writer gives the room back part by part
//! as the events are stored, so a writer that falls behind slows every request a little rather
//! than stopping them all until a whole batch is stored.
//! Within a batch, the requests of one user through one app on one patient with the
//! same action, interaction and outcome become one AuditEvent whose `period` spans them, whose
//! entities are every resource they touched (50 to an event) and whose extension counts them:
//! a busy app reading one chart does not write an AuditEvent per read. AuditEvents are readable
//! by administrators and system-level tokens only.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::RestState;
use crate::auth::Access;
use crate::fhir::ResourceId;
use crate::fhir::instant::format_instant;
use crate::storage::{ImportItem, Storage};

/// Requests gathered into one batch at most: within a batch, the requests of one user on one
/// patient become one AuditEvent. Its events are built [`WRITE`] at a time, while the parts
/// before them are written.
const BATCH: usize = 1_024;
/// How long a request may wait for its batch.
const LINGER: Duration = Duration::from_millis(500);
/// Entities listed in one AuditEvent at most.
const ENTITIES: usize = 50;
/// The extension counting the requests an AuditEvent stands for.
pub const REQUEST_COUNT: &str = "http://hearth.health/fhir/StructureDefinition/audit-request-count";
/// AuditEvents written in one database write at most.
const WRITE: usize = 128;
/// Database writes of AuditEvents waiting at once: the next part is queued while one commits,
/// so the writer does not sit idle between parts.
const IN_FLIGHT: usize = 2;
/// Parts built and waiting for their write at most.
const AHEAD: usize = 2;
/// Records waiting at most; a request waits when the writer is this far behind.
const QUEUE: usize = 20_000;

/// One audited request.
#[derive(Debug, Clone)]
pub struct Record {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// `C`, `R`, `U`, `D` or `E`.
    pub action: &'static str,
    /// The restful interaction (`read`, `search-type`, `create`, …).
    pub interaction: &'static str,
    /// The resource acted on (`Observation/1`), if one.
    pub entity: Option<String>,
    /// The query of a search.
    pub query: Option<String>,
    /// The patient whose data it is, when known.
    pub patient: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The token's subject (a user id or a client id).
    pub subject: String,
    /// The user's FHIR resource.
    pub fhir_user: Option<String>,
    /// The client app.
    pub client_id: String,
}

/// Where requests drop their records.
#[derive(Clone)]
pub struct AuditTrail {
    sender: mpsc::UnboundedSender<Record>,
    /// Room for [`QUEUE`] records: one permit per record, taken by the request and given back
    /// by the writer once the record's AuditEvent is stored.
    room: Arc<Semaphore>,
}

impl AuditTrail {
    /// Starts the writer over `state`'s storage; the trail ends when every sender is gone.
    pub fn start(state: RestState) -> (AuditTrail, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(QUEUE));
        let task = tokio::spawn(write_batches(state, receiver, room.clone()));
        (AuditTrail { sender, room }, task)
    }

    /// Records a request (waits only when the writer is far behind).
    pub async fn record(&self, record: Record) {
        // The room is closed when the writer stops, so no request waits for room that will
        // never be given back.
        let sent = match self.room.acquire().await {
            Ok(permit) => {
                permit.forget();
                self.sender.send(record).is_ok()
            }
            Err(_) => false,
        };
        if !sent {
            tracing::error!("the audit writer has stopped; an AuditEvent was not recorded");
        }
    }
}

/// Closes the room when dropped: when the writer's task ends, however it ends.
struct ClosesRoom(Arc<Semaphore>);

impl Drop for ClosesRoom {
    fn drop(&mut self) {
        self.0.close();
    }
}

async fn write_batches(
    state: RestState,
    receiver: mpsc::UnboundedReceiver<Record>,
    room: Arc<Semaphore>,
) {
    let _closes = ClosesRoom(room.clone());
    // The next batch is gathered and built while the parts before it are written: built in
    // turn, each waited for the other, and the writer sat idle while a batch was built (see
    // `benches/README.md`).
    // Both halves in this one task, so that stopping the task stops both.
    let (parts, built) = mpsc::channel(AHEAD);
    tokio::join!(
        build_parts(state.clone(), receiver, parts, room.clone()),
        store_parts(&state.storage, built, |records| room.add_permits(records)),
    );
}

/// AuditEvents ready to store, and the records they stand for.
struct Part {
    events: Arc<Vec<ImportItem>>,
    /// The requests recorded in these events: the room given back once they are stored.
    records: usize,
}

/// Gathers records into batches of up to [`BATCH`] (or what [`LINGER`] brings), and hands
/// their AuditEvents on in parts of [`WRITE`], each built off the async workers. Ends when every
/// sender is gone.
async fn build_parts(
    state: RestState,
    mut receiver: mpsc::UnboundedReceiver<Record>,
    parts: mpsc::Sender<Part>,
    room: Arc<Semaphore>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = receiver.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(record)) => batch.push(record),
                Ok(None) | Err(_) => break,
            }
        }
        let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        let waiting = records.len();
        let Ok(summaries) = tokio::task::spawn_blocking(move || summarize(&records)).await else {
            tracing::error!("summarizing {waiting} audit records failed; they are lost");
            room.add_permits(waiting);
            continue;
        };
        for chunk in chunks(summaries) {
            let records = recorded(&chunk);
            let state = state.clone();
            let Ok(events) = tokio::task::spawn_blocking(move || items(&state, &chunk)).await
            else {
                tracing::error!("building AuditEvents failed; {records} records are lost");
                room.add_permits(records);
                continue;
            };
            let part = Part {
                events: Arc::new(events),
                records,
            };
            if parts.send(part).await.is_err() {
                return;
            }
        }
    }
}

/// Summaries in parts of [`WRITE`].
fn chunks(summaries: Vec<Summary>) -> Vec<Vec<Summary>> {
    let mut summaries = summaries.into_iter().peekable();
    let mut out = Vec::new();
    while summaries.peek().is_some() {
        out.push(summaries.by_ref().take(WRITE).collect());
    }
    out
}

/// The requests a part's summaries stand for (a summary split for its many entities counts
/// them in its first part).
fn recorded(summaries: &[Summary]) -> usize {
    summaries.iter().map(|s| s.count).sum()
}

/// Attempts at a write that the database refused for its data, before the part is stored one
/// event at a time, or (for one event) the event is given up.
const REFUSALS: u32 = 3;

/// Stores parts as they come, [`IN_FLIGHT`] at once, each retried until it is stored: the
/// writes that queue behind one part wait for that part alone. After each part, in order,
/// `stored` hears how many records it stood for. Ends when the parts end.
///
/// A part that the database refuses for its data (not for being unreachable) is stored one
/// event at a time instead, so that one event it cannot hold never holds back the others, nor,
/// once the queue is full, every request: a refused event is logged in full and given up.
async fn store_parts(
    storage: &Storage,
    mut built: mpsc::Receiver<Part>,
    mut stored: impl FnMut(usize),
) {
    let mut written = futures_util::stream::poll_fn(|cx| built.poll_recv(cx))
        .map(|part| async move {
            if !store_until_refused(storage, part.events.clone()).await {
                for event in part.events.iter() {
                    if !store_until_refused(storage, Arc::new(vec![event.clone()])).await {
                        tracing::error!(
                            "the database refused an AuditEvent, which is not stored: {}",
                            event.resource
                        );
                    }
                }
            }
            part.records
        })
        .buffered(IN_FLIGHT);
    while let Some(records) = written.next().await {
        stored(records);
    }
}

/// Stores `events`, retrying for as long as the database is unavailable; `false` once it has
/// refused their data [`REFUSALS`] times.
async fn store_until_refused(storage: &Storage, events: Arc<Vec<ImportItem>>) -> bool {
    let mut delay = Duration::from_millis(100);
    let mut refusals = 0;
    loop {
        match storage.import_shared(events.clone()).await {
            Ok(_) => return true,
            Err(e) => {
                if e.refused_data() {
                    refusals += 1;
                    if refusals >= REFUSALS {
                        tracing::warn!("the database refused {} AuditEvents: {e}", events.len());
                        return false;
                    }
                }
                tracing::warn!(
                    "writing {} AuditEvents failed ({e}); retrying",
                    events.len()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Requests that one AuditEvent stands for: the same who, app, patient, action, interaction and
/// outcome, within one batch.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The first request (its who, app, patient, action, interaction, status).
    pub first: Record,
    /// The last request's time, ms since the epoch.
    pub end_ms: i64,
    /// How many requests.
    pub count: usize,
    /// The resources touched, in order, without repeats.
    pub entities: Vec<String>,
    /// The queries of searches, without repeats.
    pub queries: Vec<String>,
}

impl Summary {
    fn of(record: Record) -> Summary {
        Summary {
            end_ms: record.at_ms,
            count: 1,
            entities: record.entity.iter().cloned().collect(),
            queries: record.query.iter().cloned().collect(),
            first: record,
        }
    }

    fn add(&mut self, record: &Record) {
        self.end_ms = self.end_ms.max(record.at_ms);
        self.count += 1;
        if let Some(e) = &record.entity
            && !self.entities.contains(e)
        {
            self.entities.push(e.clone());
        }
        if let Some(q) = &record.query
            && !self.queries.contains(q)
        {
            self.queries.push(q.clone());
        }
    }
}

/// The key of the requests one AuditEvent may stand for.
type SummaryKey<'a> = (
    &'a str,
    &'a str,
    u16,
    Option<&'a str>,
    &'a str,
    &'a str,
    Option<&'a str>,
);

/// Gathers records into summaries, and splits those that list too many entities.
pub fn summarize(records: &[Record]) -> Vec<Summary> {
    let mut summaries: Vec<Summary> = Vec::new();
    let mut index: std::collections::HashMap<SummaryKey<'_>, usize> =
        std::collections::HashMap::new();
    for record in records {
        let key = (
            record.action,
            record.interaction,
            record.status,
            record.patient.as_deref(),
            record.subject.as_str(),
            record.client_id.as_str(),
            record.fhir_user.as_deref(),
        );
        match index.get(&key) {
            Some(&i) => summaries[i].add(record),
            None => {
                index.insert(key, summaries.len());
                summaries.push(Summary::of(record.clone()));
            }
        }
    }
    let mut out = Vec::with_capacity(summaries.len());
    for summary in summaries {
        if summary.entities.len() <= ENTITIES && summary.queries.len() <= ENTITIES {
            out.push(summary);
            continue;
        }
        let chunks = summary
            .entities
            .len()
            .max(summary.queries.len())
            .div_ceil(ENTITIES);
        for i in 0..chunks {
            let slice = |v: &Vec<String>| {
                v.iter()
                    .skip(i * ENTITIES)
                    .take(ENTITIES)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            out.push(Summary {
                entities: slice(&summary.entities),
                queries: slice(&summary.queries),
                // The count goes with the first part.
                count: if i == 0 { summary.count } else { 0 },
                ..summary.clone()
            });
        }
    }
    out
}

/// The AuditEvents of `summaries`, ready to store.
fn items(state: &RestState, summaries: &[Summary]) -> Vec<ImportItem> {
    summaries
        .iter()
        .map(|summary| {
            let id = ResourceId::generate();
            let mut resource = audit_event(summary, &state.base);
            resource["id"] = Value::String(id.to_string());
            let index = state.index(&resource);
            ImportItem {
                resource_type: "AuditEvent".into(),
                id,
                resource,
                index,
            }
        })
        .collect()
}

/// The AuditEvent of a summary of requests.
pub fn audit_event(summary: &Summary, base: &str) -> Value {
    let record = &summary.first;
    let outcome = match record.status {
        0..=399 => "0",
        400..=499 => "4",
        _ => "8",
    };
    let user = match &record.fhir_user {
        Some(reference) => json!({"reference": reference}),
        None => json!({"identifier": {"system": "urn:hearth:subject", "value": record.subject}}),
    };
    let mut agents = vec![json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
        "who": user,
        "requestor": true,
    })];
    agents.push(json!({
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}]},
        "who": {"identifier": {"system": "urn:hearth:client", "value": record.client_id}},
        "requestor": false,
    }));
    let patient_role = json!({"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"});
    let patient_reference = record.patient.as_ref().map(|p| format!("Patient/{p}"));
    let mut entities: Vec<Value> = summary
        .entities
        .iter()
        .map(|entity| {
            let mut e = json!({
                "what": {"reference": entity},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            });
            if patient_reference.as_ref() == Some(entity) {
                e["role"] = patient_role.clone();
            }
            e
        })
        .collect();
    if let Some(reference) = &patient_reference
        && !summary.entities.contains(reference)
    {
        entities.push(json!({
            "what": {"reference": reference},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": patient_role,
        }));
    }
    for query in &summary.queries {
        entities.push(json!({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"},
            "query": base64::engine::general_purpose::STANDARD.encode(query.as_bytes()),
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": record.interaction}],
        "action": record.action,
        "period": {"start": format_instant(record.at_ms), "end": format_instant(summary.end_ms)},
        "recorded": format_instant(summary.end_ms),
        "outcome": outcome,
    });
    // Moved in, not through `json!`, which would copy the agents value by value.
    event["agent"] = Value::Array(agents);
    event["source"] = json!({
        "observer": {"display": format!("Hearth {base}")},
        "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
    });
    if outcome != "0" {
        event["outcomeDesc"] = json!(format!("HTTP {}", record.status));
    }
    if summary.count > 0 {
        event["extension"] = json!([{"url": REQUEST_COUNT, "valueInteger": summary.count}]);
    }
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    event
}

/// Whether resources of `resource_type` are patient data (a Patient or in its compartment).
pub fn patient_data(resource_type: &str) -> bool {
    resource_type == "Patient"
        || crate::search::compartment_params("Patient", resource_type).is_some()
}

/// The first patient a stored resource refers to (`"reference":"Patient/…"`), found without
/// parsing it.
pub fn referenced_patient(content: &[u8]) -> Option<String> {
    const MARK: &[u8] = b"\"reference\":\"Patient/";
    let at = memchr::memmem::find(content, MARK)? + MARK.len();
    let rest = &content[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    let id = std::str::from_utf8(&rest[..end]).ok()?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

/// A request and its answer, as far as the audit trail cares.
pub struct Exchange<'a> {
    /// The method.
    pub method: &'a axum::http::Method,
    /// The path (`/fhir/…`).
    pub path: &'a str,
    /// The query string.
    pub query: Option<&'a str>,
    /// The status answered.
    pub status: u16,
    /// The `Location` answered.
    pub location: Option<&'a str>,
    /// The body answered (JSON), when at hand.
    pub body: Option<&'a [u8]>,
}

/// The record of a request, or `None` when it touches no patient data.
pub fn record_of(access: &Access, exchange: &Exchange<'_>, at_ms: i64) -> Option<Record> {
    let Exchange {
        method,
        path,
        query,
        status,
        location,
        body,
    } = *exchange;
    use axum::http::Method;
    let segments: Vec<&str> = path
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let get = *method == Method::GET || *method == Method::HEAD;
    let (action, interaction, resource_type, entity, owner): (
        &str,
        &str,
        &str,
        Option<String>,
        Option<String>,
    ) = match segments.as_slice() {
        [] if *method == Method::POST => ("E", "transaction", "Bundle", None, None),
        [] | ["_search"] => ("E", "search-system", "*", None, None),
        [t] if get => ("E", "search-type", *t, None, None),
        [t, "_search"] => ("E", "search-type", *t, None, None),
        [t] if *method == Method::POST => ("C", "create", *t, location.and_then(entity_of), None),
        [t] if *method == Method::DELETE => ("D", "delete", *t, None, None),
        [t] => ("U", "update", *t, location.and_then(entity_of), None),
        [t, op] if op.starts_with('$') => ("E", "operation", *t, None, None),
        [t, "_history"] => ("R", "history-type", *t, None, None),
        [t, id] if get => ("R", "read", *t, Some(format!("{t}/{id}")), None),
        [t, id] if *method == Method::DELETE => {
            ("D", "delete", *t, Some(format!("{t}/{id}")), None)
        }
        [t, id] if *method == Method::PATCH => ("U", "patch", *t, Some(format!("{t}/{id}")), None),
        [t, id] => ("U", "update", *t, Some(format!("{t}/{id}")), None),
        [t, id, "_history"] => ("R", "history-instance", *t, Some(format!("{t}/{id}")), None),
        [t, id, "_history", _] => ("R", "vread", *t, Some(format!("{t}/{id}")), None),
        [t, id, op] if op.starts_with('$') => {
            ("E", "operation", *t, Some(format!("{t}/{id}")), None)
        }
        ["Patient", id, target] => ("E", "search-type", *target, None, Some((*id).to_owned())),
        [_, _, target] => ("E", "search-type", *target, None, None),
        _ => return None,
    };
    let audited = resource_type == "Bundle"
        || resource_type == "*"
        || (resource_type != "AuditEvent" && patient_data(resource_type));
    if !audited {
        return None;
    }
    // Only an id can name a patient: the AuditEvent stores it as a reference.
    let patient = owner
        .filter(|id| ResourceId::parse(id).is_ok())
        .or_else(|| query.and_then(queried_patient))
        .or_else(|| {
            entity
                .as_deref()
                .and_then(|e| e.strip_prefix("Patient/"))
                .map(str::to_owned)
        })
        .or_else(|| body.and_then(referenced_patient))
        .or_else(|| access.patient.clone())
        .or_else(|| {
            access
                .fhir_user
                .as_deref()
                .and_then(|u| u.strip_prefix("Patient/"))
                .map(str::to_owned)
        });
    Some(Record {
        at_ms,
        action,
        interaction,
        entity,
        query: (action == "E" && interaction.starts_with("search"))
            .then(|| query.unwrap_or_default().to_owned()),
        patient,
        status,
        subject: access.subject.clone(),
        fhir_user: access.fhir_user.clone(),
        client_id: access.client_id.clone(),
    })
}

/// The patient a search names: `patient=…` or `subject=Patient/…` (with or without a modifier).
fn queried_patient(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| {
        let name = key.split(':').next().unwrap_or_default();
        let value = value.split(',').next().unwrap_or_default();
        let id = match name {
            "patient" => value.rsplit("Patient/").next().unwrap_or(value),
            "subject" => value.strip_prefix("Patient/")?,
            _ => return None,
        };
        ResourceId::parse(id).ok().map(|id| id.as_str().to_owned())
    })
}

/// `Observation/1` of a `Location` such as `…/fhir/Observation/1/_history/1`.
fn entity_of(location: &str) -> Option<String> {
    let path = location.split("/fhir/").nth(1)?;
    let mut parts = path.split('/');
    Some(format!("{}/{}", parts.next()?, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patient_is_found_in_stored_json() {
        assert_eq!(
            referenced_patient(
                br#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}"#
            ),
            Some("p1".into())
        );
        assert_eq!(
            referenced_patient(br#"{"resourceType":"Observation"}"#),
            None
        );
    }

    #[tokio::test]
    async fn parts_are_stored_as_they_come_and_every_event_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("audit.db"));
        let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
        let storage = Storage::open(&url, 2, clock).unwrap();
        let (parts, built) = mpsc::channel(AHEAD);
        let sizes = [WRITE, WRITE, 44];
        let feeding = tokio::spawn(async move {
            let mut next = 0;
            for (i, size) in sizes.into_iter().enumerate() {
                let events = (next..next + size)
                    .map(|n| {
                        let id = ResourceId::parse(&format!("a{n}")).unwrap();
                        ImportItem {
                            resource_type: "AuditEvent".into(),
                            resource: json!({"resourceType": "AuditEvent", "id": id.to_string()}),
                            id,
                            index: Default::default(),
                        }
                    })
                    .collect();
                next += size;
                // A part may stand for more requests than it has events.
                let part = Part {
                    events: Arc::new(events),
                    records: size + i,
                };
                parts.send(part).await.unwrap();
            }
        });
        let mut heard = Vec::new();
        store_parts(&storage, built, |records| heard.push(records)).await;
        feeding.await.unwrap();
        // The room of a part's records is given back when that part is stored, in order.
        assert_eq!(heard, [WRITE, WRITE + 1, 46]);
        let stored = storage
            .current_batch(Some("AuditEvent".into()), None, None, 1000)
            .await
            .unwrap();
        assert_eq!(stored.len(), 2 * WRITE + 44);
    }

    /// An event that the database refuses for its data is given up, alone: the events beside
    /// it are stored, and the room of every record is given back. Before, the part was retried
    /// for ever, and once the queue filled every request waited (an id with a NUL, which
    /// PostgreSQL's text refuses, came from `Observation?patient=%00`).
    #[tokio::test]
    async fn an_event_the_database_refuses_holds_back_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let url = crate::config::DatabaseUrl::Sqlite(path.clone());
        let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
        let storage = Storage::open(&url, 2, clock).unwrap();
        crate::storage::sqlite_execute(
            &path,
            "CREATE TRIGGER refuse BEFORE INSERT ON resources WHEN NEW.resource_id = 'bad' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        );
        let event = |id: &str| {
            let id = ResourceId::parse(id).unwrap();
            ImportItem {
                resource_type: "AuditEvent".into(),
                resource: json!({"resourceType": "AuditEvent", "id": id.to_string()}),
                id,
                index: Default::default(),
            }
        };
        let (parts, built) = mpsc::channel(AHEAD);
        let feeding = tokio::spawn(async move {
            let first = ["a0", "a1", "bad", "a3"].map(event).into_iter().collect();
            let second = ["b0", "b1"].map(event).into_iter().collect();
            for (events, records) in [(first, 6), (second, 2)] {
                let events = Arc::new(events);
                parts.send(Part { events, records }).await.unwrap();
            }
        });
        let mut heard = Vec::new();
        store_parts(&storage, built, |records| heard.push(records)).await;
        feeding.await.unwrap();
        assert_eq!(heard, [6, 2]);
        let stored = storage
            .current_batch(Some("AuditEvent".into()), None, None, 1000)
            .await
            .unwrap();
        let mut ids: Vec<String> = stored.iter().map(|s| s.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, ["a0", "a1", "a3", "b0", "b1"]);
    }

    #[test]
    fn only_an_id_names_the_patient_of_a_search() {
        assert_eq!(
            queried_patient("patient=sp1&code=x").as_deref(),
            Some("sp1")
        );
        assert_eq!(
            queried_patient("subject=Patient/p.2").as_deref(),
            Some("p.2")
        );
        assert_eq!(queried_patient("patient=%00"), None);
        assert_eq!(queried_patient("patient=a%20b"), None);
    }

    /// A request never waits for room once the writer has stopped, even when the writer
    /// stopped with the room used up.
    #[tokio::test]
    async fn requests_do_not_wait_for_a_writer_that_has_stopped() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(1));
        let trail = AuditTrail {
            sender,
            room: room.clone(),
        };
        let record = Record {
            at_ms: 0,
            action: "R",
            interaction: "read",
            entity: None,
            query: None,
            patient: None,
            status: 200,
            subject: "u1".into(),
            fhir_user: None,
            client_id: "c1".into(),
        };
        trail.record(record.clone()).await;
        // The writer's task ends (a panic would drop its guard the same way).
        drop((receiver, ClosesRoom(room)));
        let waited = tokio::time::timeout(Duration::from_secs(5), trail.record(record)).await;
        assert!(
            waited.is_ok(),
            "a request waited for room after the writer stopped"
        );
    }

    #[test]
    fn the_parts_of_a_batch_give_back_the_room_of_every_record() {
        let record = |patient: usize, entity: usize| Record {
            at_ms: 0,
            action: "R",
            interaction: "read",
            entity: Some(format!("Observation/{entity}")),
            query: None,
            patient: Some(format!("p{patient}")),
            status: 200,
            subject: "u1".into(),
            fhir_user: None,
            client_id: "c1".into(),
        };
        // 300 patients read once, and one of them (p7) 120 times more: 61 entities, two events.
        let mut records: Vec<Record> = (0..300).map(|p| record(p, p)).collect();
        records.extend((0..120).map(|i| record(7, 1000 + i % 60)));
        let parts = chunks(summarize(&records));
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [WRITE, WRITE, 301 - 2 * WRITE]
        );
        assert_eq!(
            parts.iter().map(|p| recorded(p)).sum::<usize>(),
            records.len()
        );
        // The first part holds both events of that chart; the first counts its 121 reads.
        assert_eq!(recorded(&parts[0]), WRITE - 2 + 121);
        assert!(chunks(Vec::new()).is_empty());
    }

    #[test]
    fn events_are_valid_audit_events() {
        let record = Record {
            at_ms: 0,
            action: "R",
            interaction: "read",
            entity: Some("Observation/1".into()),
            query: None,
            patient: Some("p1".into()),
            status: 403,
            subject: "u1".into(),
            fhir_user: Some("Practitioner/x".into()),
            client_id: "c1".into(),
        };
        let mut event = audit_event(&Summary::of(record.clone()), "http://h/fhir");
        event["id"] = json!("a1");
        let bytes = serde_json::to_vec(&event).unwrap();
        crate::fhir::parse_resource(&bytes, crate::fhir::Format::Json, Some("AuditEvent"))
            .expect("a valid AuditEvent");
        assert_eq!(event["outcome"], "4");
        assert_eq!(event["entity"][1]["what"]["reference"], "Patient/p1");
        // Many reads of one chart are one event listing what was read.
        let mut records = Vec::new();
        for i in 0..120 {
            records.push(Record {
                at_ms: i,
                entity: Some(format!("Observation/{}", i % 60)),
                status: 200,
                ..record.clone()
            });
        }
        records.push(Record {
            client_id: "c2".into(),
            ..record.clone()
        });
        let summaries = summarize(&records);
        assert_eq!(
            summaries.len(),
            3,
            "60 entities make two events, the other app a third"
        );
        assert_eq!(summaries[0].count, 120);
        assert_eq!(summaries[0].entities.len(), 50);
        assert_eq!(summaries[1].entities.len(), 10);
        assert_eq!(summaries[2].first.client_id, "c2");
        let mut event = audit_event(&summaries[0], "http://h/fhir");
        event["id"] = json!("a2");
        let bytes = serde_json::to_vec(&event).unwrap();
        crate::fhir::parse_resource(&bytes, crate::fhir::Format::Json, Some("AuditEvent"))
            .expect("a valid AuditEvent");
        assert_eq!(event["extension"][0]["valueInteger"], 120);
        assert_eq!(event["period"]["end"], "1970-01-01T00:00:00.119Z");
    }
}
