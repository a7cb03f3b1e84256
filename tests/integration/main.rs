//! Integration tests: the real router on 127.0.0.1:0 against real SQLite and PostgreSQL.
//! Every suite is written once and runs on both backends (`on_both_backends!`).

mod support;

mod accounts;
mod browser;
mod bundles;

mod capabilities;
mod chrome;
mod cli;
mod concurrency;
mod console;
mod console_pages;
mod crash;
mod crud;
mod errors;
mod examples;
mod formats;
mod history;
mod import;
mod patch;
mod search;
mod search_cases;
mod search_drift;
mod smart;
mod statements;
mod triage;
