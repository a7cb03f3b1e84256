//! How the console reads and writes clinical data: through the FHIR API itself, in process.
//! Each call is an ordinary FHIR HTTP request handed to the FHIR router with an access token for
//! the signed-in user (their identity, role and the scopes of that role), so the console never
//! goes around the API: the same validation, write hooks (triage), scope checks, versioning and
//! audit apply, and everything it does is visible over FHIR.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::accounts::User;
use crate::auth::Auth;

/// Seconds a console token lives; it is reused until a minute before it expires.
const TOKEN_LIFETIME_S: i64 = 600;

/// Largest response the console reads (a page of 1,000 resources with their includes).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The FHIR API as the console calls it.
#[derive(Clone)]
pub struct Fhir {
    router: Router,
    auth: Auth,
    /// Tokens by user (id, role and FHIR identity: a changed role gets a new token at once),
    /// with their expiry (seconds since the epoch).
    tokens: Arc<Mutex<HashMap<String, (String, i64)>>>,
}

/// A FHIR request that did not succeed: its status and what the OperationOutcome said.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The diagnostics, joined.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status.as_u16())
    }
}

impl Failure {
    /// The console failed on its side.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// True for a version conflict (`If-Match` did not match).
    pub fn is_conflict(&self) -> bool {
        self.status == StatusCode::PRECONDITION_FAILED || self.status == StatusCode::CONFLICT
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `Location` header, relative to the FHIR base (`Patient/1/_history/1`).
    pub location: Option<String>,
    /// The body, parsed (`Null` when empty or not JSON).
    pub body: Value,
    /// The raw body (for Binary content).
    pub bytes: bytes::Bytes,
    /// The `Content-Type`.
    pub content_type: Option<String>,
}

/// A body to send.
pub enum Payload {
    /// A FHIR resource as JSON.
    Resource(Value),
    /// A JSON Patch.
    JsonPatch(Value),
    /// Raw bytes of a content type (a Binary's content).
    Raw(String, Vec<u8>),
}

impl Fhir {
    /// The console's way into the FHIR `router`, with tokens from `auth`.
    pub fn new(router: Router, auth: Auth) -> Fhir {
        Fhir {
            router,
            auth,
            tokens: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The authorization server (SMART apps, launches).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    fn token(&self, user: &User) -> Result<String, Failure> {
        let now = self.auth.now_ms() / 1000;
        let key = format!(
            "{} {} {}",
            user.id,
            user.role.as_str(),
            user.fhir_reference.as_deref().unwrap_or_default()
        );
        if let Ok(tokens) = self.tokens.lock()
            && let Some((token, expires)) = tokens.get(&key)
            && *expires - 60 > now
        {
            return Ok(token.clone());
        }
        let (token, expires) = self
            .auth
            .console_token(user, TOKEN_LIFETIME_S)
            .map_err(|e| Failure::internal(format!("no access token: {e}")))?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, (_, e)| *e > now);
            tokens.insert(key, (token.clone(), expires));
        }
        Ok(token)
    }

    /// Sends `method path` (relative to the FHIR base, with its query) as `user`.
    pub async fn call(
        &self,
        user: &User,
        method: Method,
        path: &str,
        payload: Option<Payload>,
        if_match: Option<&str>,
    ) -> Result<Reply, Failure> {
        let token = self.token(user)?;
        let mut request = Request::builder()
            .method(method)
            .uri(match path.trim_start_matches('/') {
                "" => "/fhir".to_owned(),
                path => format!("/fhir/{path}"),
            })
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/fhir+json");
        if let Some(version) = if_match {
            request = request.header(header::IF_MATCH, format!("W/\"{version}\""));
        }
        let body = match payload {
            None => Body::empty(),
            Some(Payload::Resource(value)) => {
                request = request.header(header::CONTENT_TYPE, "application/fhir+json");
                Body::from(value.to_string())
            }
            Some(Payload::JsonPatch(value)) => {
                request = request.header(header::CONTENT_TYPE, "application/json-patch+json");
                Body::from(value.to_string())
            }
            Some(Payload::Raw(content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
        };
        // The path holds what the console's own address held (an id from the URL): one that
        // no URI can carry (a space, a NUL) is the visitor's mistake, not the console's.
        let request = request.body(body).map_err(|e| Failure {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "'{}' is not an address of a record ({e})",
                path.escape_debug()
            ),
        })?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| Failure::internal(format!("the FHIR API failed: {e}")))?;
        let status = response.status();
        let (parts, body) = response.into_parts();
        let text_header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = text_header(header::LOCATION).map(|l| match l.find("/fhir/") {
            Some(at) => l[at + "/fhir/".len()..].to_owned(),
            None => l,
        });
        let content_type = text_header(header::CONTENT_TYPE);
        let bytes = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| Failure::internal(format!("cannot read the answer: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(Failure {
                status,
                message: diagnostics(&body).unwrap_or_else(|| {
                    status
                        .canonical_reason()
                        .unwrap_or("the request failed")
                        .to_owned()
                }),
            });
        }
        Ok(Reply {
            status,
            location,
            body,
            bytes,
            content_type,
        })
    }

    /// `GET path`, the JSON body.
    pub async fn get(&self, user: &User, path: &str) -> Result<Value, Failure> {
        Ok(self.call(user, Method::GET, path, None, None).await?.body)
    }

    /// `POST path` with a resource.
    pub async fn post(&self, user: &User, path: &str, body: Value) -> Result<Reply, Failure> {
        self.call(
            user,
            Method::POST,
            path,
            Some(Payload::Resource(body)),
            None,
        )
        .await
    }

    /// `PUT path` with a resource, if it is still at `version`.
    pub async fn put(
        &self,
        user: &User,
        path: &str,
        body: Value,
        version: Option<&str>,
    ) -> Result<Reply, Failure> {
        self.call(
            user,
            Method::PUT,
            path,
            Some(Payload::Resource(body)),
            version,
        )
        .await
    }

    /// `PATCH path` with a JSON Patch, if it is still at `version`.
    pub async fn patch(
        &self,
        user: &User,
        path: &str,
        patch: Value,
        version: Option<&str>,
    ) -> Result<Reply, Failure> {
        self.call(
            user,
            Method::PATCH,
            path,
            Some(Payload::JsonPatch(patch)),
            version,
        )
        .await
    }

    /// Every resource of a search Bundle whose `search.mode` is `match`, and those included.
    pub async fn search(&self, user: &User, path: &str) -> Result<Found, Failure> {
        let bundle = self.get(user, path).await?;
        Ok(Found::from_bundle(bundle))
    }
}

/// A search's matches and included resources.
#[derive(Debug, Default)]
pub struct Found {
    /// Matches, in order.
    pub matches: Vec<Value>,
    /// Included resources by `Type/id`.
    pub included: HashMap<String, Value>,
    /// `Bundle.total`, when asked for.
    pub total: Option<u64>,
    /// The `next` link, relative to the FHIR base.
    pub next: Option<String>,
}

impl Found {
    fn from_bundle(bundle: Value) -> Found {
        let mut found = Found {
            total: bundle["total"].as_u64(),
            next: bundle["link"].as_array().and_then(|links| {
                links
                    .iter()
                    .find(|l| l["relation"] == "next")
                    .and_then(|l| l["url"].as_str())
                    .map(|u| match u.find("/fhir/") {
                        Some(at) => u[at + "/fhir/".len()..].to_owned(),
                        None => u.to_owned(),
                    })
            }),
            ..Found::default()
        };
        let Value::Object(mut bundle) = bundle else {
            return found;
        };
        let Some(Value::Array(entries)) = bundle.remove("entry") else {
            return found;
        };
        for mut entry in entries {
            let mode = entry["search"]["mode"]
                .as_str()
                .unwrap_or("match")
                .to_owned();
            let resource = entry["resource"].take();
            match mode.as_str() {
                "match" => found.matches.push(resource),
                "include" => {
                    let key = format!(
                        "{}/{}",
                        resource["resourceType"].as_str().unwrap_or_default(),
                        resource["id"].as_str().unwrap_or_default()
                    );
                    found.included.insert(key, resource);
                }
                _ => {}
            }
        }
        found
    }
}

/// The diagnostics of an OperationOutcome's issues, joined.
fn diagnostics(outcome: &Value) -> Option<String> {
    let issues = outcome["issue"].as_array()?;
    let texts: Vec<String> = issues
        .iter()
        .filter_map(|i| {
            i["diagnostics"]
                .as_str()
                .or_else(|| i["details"]["text"].as_str())
                .map(str::to_owned)
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}
