//! `batch` (R4 http §3.1.0.11.1): every entry is its own interaction, run as that request would
//! run on its own, in the transaction processing order; one entry's failure is reported in its
//! response entry and does not touch the others.

use axum::http::HeaderMap;
use serde_json::Value;

use super::{Entry, dispatch, response_bundle};
use crate::rest::{ApiError, RestState};

/// Runs a batch; `malformed` are the entries that could not even be read.
pub async fn run(
    state: &RestState,
    mut entries: Vec<Entry>,
    malformed: Vec<(usize, ApiError)>,
    headers: &HeaderMap,
) -> Value {
    let total = entries.len() + malformed.len();
    let mut answers: Vec<Option<Value>> = vec![None; total];
    for (index, error) in malformed {
        answers[index] = Some(dispatch::failure(error));
    }
    let routes = super::super::routes(state).with_state(state.clone());
    entries.sort_by_key(|e| (e.method.phase(), e.index));
    for entry in &entries {
        answers[entry.index] = Some(dispatch::run(&routes, entry, headers).await);
    }
    let entries = answers.into_iter().flatten().collect();
    response_bundle(state, "batch-response", entries)
}
