//! Hearth, a FHIR R4 server.
//!
//! ```text
//!  client ─► app (router, middleware) ─► rest (FHIR interactions) ─► storage ─► SQLite | PostgreSQL
//!                                           │
//!                                           └─► fhir (parse, validate, serialize, OperationOutcome)
//! ```
//!
//! - [`config`]: settings from defaults, an optional TOML file and `HEARTH_*` environment.
//! - [`fhir`]: FHIR data without HTTP or SQL; the only module that names fhirbolt.
//! - [`storage`]: versioned resources in SQLite or PostgreSQL; the only module that names diesel.
//! - [`rest`]: the FHIR REST API over HTTP.
//! - [`auth`]: SMART on FHIR: authorize, token, keys, scopes; what a token may do.
//! - [`accounts`]: people, passwords, emailed links, sessions, throttling, audit events.
//! - [`mail`]: outgoing mail (SMTP or `.eml` files); the only module that names lettre.
//! - [`console`]: the server-rendered pages under `/console`.
//! - [`triage`]: echo triage, its calendar and its write hook.
//! - [`app`]: the composition root that wires them into a server.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod fhir;
pub mod hooks;
pub mod mail;
pub mod rest;
pub mod search;
pub mod storage;
pub mod triage;
