//! Settings: built-in defaults, then an optional TOML file, then `HEARTH_*` environment
//! variables, then command-line flags; validated once, so a bad value stops the start with a
//! one-line reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has unknown keys.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value Hearth cannot use.
    #[error("invalid {name}: {message}")]
    Invalid {
        /// The setting (environment variable or key).
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Which SQL backend a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://…`).
    Postgres(String),
}

impl DatabaseUrl {
    /// Reads `sqlite://PATH` or `postgres://…` / `postgresql://…`.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(
                    "sqlite:// needs a file path, e.g. sqlite://./hearth-data/hearth.db".into(),
                );
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(text.to_owned()))
        } else {
            Err("expected sqlite://PATH or postgres://…".into())
        }
    }

    /// The URL with any password masked, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_url(url),
        }
    }
}

/// Validated settings of a Hearth server.
#[derive(Clone)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub addr: SocketAddr,
    /// Directory for the SQLite database and other local files.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseUrl,
    /// External base URL, without a trailing slash (used in links, bundles, `Location`); when
    /// unset, `http://` and the address the server is bound to.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most entries in a batch or transaction Bundle.
    pub max_bundle_entries: usize,
    /// Connections in the database pool (by default [`default_pool_size`]).
    pub db_pool_size: u32,
    /// Bytes of resource contents that searches keep in memory (0: none).
    pub content_cache_bytes: u64,
    /// The echo triage calendar, as written (checked by `triage` when the server starts).
    pub triage: TriageSettings,
    /// Load the demo data at start (`serve --demo`).
    pub demo: bool,
    /// Accounts, sessions and mail.
    pub accounts: AccountConfig,
}

/// Accounts, sessions and mail as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// The administrator created at first start (`HEARTH_ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// Their password (`HEARTH_ADMIN_PASSWORD`).
    pub admin_password: Option<String>,
    /// `smtp://…` or `smtps://…`; when unset, mail is written to `{data-dir}/outbox/`.
    pub smtp_url: Option<String>,
    /// The sender of mail.
    pub mail_from: String,
    /// Whether anyone may register (`open`) or only invited people (`invite`).
    pub open_registration: bool,
    /// Shortest password.
    pub password_min_length: u32,
    /// Whether passwords need upper and lower case, a digit and a symbol.
    pub password_require_classes: bool,
    /// Minutes without a request after which a session ends.
    pub session_idle_minutes: u32,
    /// Hours after login after which a session ends.
    pub session_absolute_hours: u32,
    /// Failed logins per account before throttling.
    pub login_max_failures: u32,
    /// Failed logins per address before throttling.
    pub login_max_failures_per_address: u32,
    /// Minutes a failure counts against an account or address.
    pub login_lockout_minutes: u32,
    /// argon2id memory in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    pub argon2_iterations: u32,
    /// Attempts to send a mail before it is marked failed.
    pub mail_max_attempts: u32,
    /// Seconds before the first retry (doubled after each failure, at most an hour).
    pub mail_retry_seconds: u32,
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "****"),
            )
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("open_registration", &self.open_registration)
            .finish_non_exhaustive()
    }
}

/// A URL with the password of its user information masked.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let user_end = scheme + 3 + url[scheme + 3..at].find(':').unwrap_or(0);
            format!("{}:****{}", &url[..user_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The working-hours calendar of echo triage as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriageSettings {
    /// `england-and-wales` (default), `scotland` or `northern-ireland`.
    pub region: Option<String>,
    /// A daily window such as `08:00-18:00`; the whole day when unset.
    pub window: Option<String>,
    /// Extra days off (`YYYY-MM-DD`).
    pub extra_holidays: Vec<String>,
    /// Bank holidays the site works (`YYYY-MM-DD`).
    pub removed_holidays: Vec<String>,
    /// The site's clinical guidelines for echo triage (a PDF), linked from the triage desk.
    pub guidelines_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.redacted())
            .field("public_url", &self.public_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_bundle_entries", &self.max_bundle_entries)
            .field("db_pool_size", &self.db_pool_size)
            .field("content_cache_bytes", &self.content_cache_bytes)
            .field("triage", &self.triage)
            .field("demo", &self.demo)
            .field("accounts", &self.accounts)
            .finish()
    }
}

/// Settings as written in a file, the environment or flags; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// `addr` / `HEARTH_ADDR`.
    pub addr: Option<String>,
    /// `data_dir` / `HEARTH_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `database_url` / `HEARTH_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `public_url` / `HEARTH_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `max_body_bytes` / `HEARTH_MAX_BODY_BYTES`.
    pub max_body_bytes: Option<u64>,
    /// `max_bundle_entries` / `HEARTH_MAX_BUNDLE_ENTRIES`.
    pub max_bundle_entries: Option<u64>,
    /// `db_pool_size` / `HEARTH_DB_POOL_SIZE`.
    pub db_pool_size: Option<u32>,
    /// `content_cache_mb` / `HEARTH_CONTENT_CACHE_MB`.
    pub content_cache_mb: Option<u64>,
    /// `triage_region` / `HEARTH_TRIAGE_REGION`.
    pub triage_region: Option<String>,
    /// `triage_window` / `HEARTH_TRIAGE_WINDOW`.
    pub triage_window: Option<String>,
    /// `triage_guidelines_url` / `HEARTH_TRIAGE_GUIDELINES_URL`.
    pub triage_guidelines_url: Option<String>,
    /// `triage_extra_holidays` / `HEARTH_TRIAGE_EXTRA_HOLIDAYS` (comma-separated).
    pub triage_extra_holidays: Option<Vec<String>>,
    /// `triage_removed_holidays` / `HEARTH_TRIAGE_REMOVED_HOLIDAYS` (comma-separated).
    pub triage_removed_holidays: Option<Vec<String>>,
    /// `demo` / `serve --demo`.
    pub demo: Option<bool>,
    /// `admin_email` / `HEARTH_ADMIN_EMAIL`.
    pub admin_email: Option<String>,
    /// `admin_password` / `HEARTH_ADMIN_PASSWORD`.
    pub admin_password: Option<String>,
    /// `smtp_url` / `HEARTH_SMTP_URL`.
    pub smtp_url: Option<String>,
    /// `mail_from` / `HEARTH_MAIL_FROM`.
    pub mail_from: Option<String>,
    /// `registration` / `HEARTH_REGISTRATION`: `open` or `invite`.
    pub registration: Option<String>,
    /// `password_min_length` / `HEARTH_PASSWORD_MIN_LENGTH`.
    pub password_min_length: Option<u32>,
    /// `password_require_classes` / `HEARTH_PASSWORD_REQUIRE_CLASSES`.
    pub password_require_classes: Option<bool>,
    /// `session_idle_minutes` / `HEARTH_SESSION_IDLE_MINUTES`.
    pub session_idle_minutes: Option<u32>,
    /// `session_absolute_hours` / `HEARTH_SESSION_ABSOLUTE_HOURS`.
    pub session_absolute_hours: Option<u32>,
    /// `login_max_failures` / `HEARTH_LOGIN_MAX_FAILURES`.
    pub login_max_failures: Option<u32>,
    /// `login_max_failures_per_address` / `HEARTH_LOGIN_MAX_FAILURES_PER_ADDRESS`.
    pub login_max_failures_per_address: Option<u32>,
    /// `login_lockout_minutes` / `HEARTH_LOGIN_LOCKOUT_MINUTES`.
    pub login_lockout_minutes: Option<u32>,
    /// `argon2_memory_kib` / `HEARTH_ARGON2_MEMORY_KIB`.
    pub argon2_memory_kib: Option<u32>,
    /// `argon2_iterations` / `HEARTH_ARGON2_ITERATIONS`.
    pub argon2_iterations: Option<u32>,
    /// `mail_max_attempts` / `HEARTH_MAIL_MAX_ATTEMPTS`.
    pub mail_max_attempts: Option<u32>,
    /// `mail_retry_seconds` / `HEARTH_MAIL_RETRY_SECONDS`.
    pub mail_retry_seconds: Option<u32>,
}

impl Overrides {
    fn merge(self, over: Overrides) -> Overrides {
        Overrides {
            addr: over.addr.or(self.addr),
            data_dir: over.data_dir.or(self.data_dir),
            database_url: over.database_url.or(self.database_url),
            public_url: over.public_url.or(self.public_url),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_bundle_entries: over.max_bundle_entries.or(self.max_bundle_entries),
            db_pool_size: over.db_pool_size.or(self.db_pool_size),
            content_cache_mb: over.content_cache_mb.or(self.content_cache_mb),
            triage_region: over.triage_region.or(self.triage_region),
            triage_window: over.triage_window.or(self.triage_window),
            triage_guidelines_url: over.triage_guidelines_url.or(self.triage_guidelines_url),
            triage_extra_holidays: over.triage_extra_holidays.or(self.triage_extra_holidays),
            triage_removed_holidays: over
                .triage_removed_holidays
                .or(self.triage_removed_holidays),
            demo: over.demo.or(self.demo),
            admin_email: over.admin_email.or(self.admin_email),
            admin_password: over.admin_password.or(self.admin_password),
            smtp_url: over.smtp_url.or(self.smtp_url),
            mail_from: over.mail_from.or(self.mail_from),
            registration: over.registration.or(self.registration),
            password_min_length: over.password_min_length.or(self.password_min_length),
            password_require_classes: over
                .password_require_classes
                .or(self.password_require_classes),
            session_idle_minutes: over.session_idle_minutes.or(self.session_idle_minutes),
            session_absolute_hours: over.session_absolute_hours.or(self.session_absolute_hours),
            login_max_failures: over.login_max_failures.or(self.login_max_failures),
            login_max_failures_per_address: over
                .login_max_failures_per_address
                .or(self.login_max_failures_per_address),
            login_lockout_minutes: over.login_lockout_minutes.or(self.login_lockout_minutes),
            argon2_memory_kib: over.argon2_memory_kib.or(self.argon2_memory_kib),
            argon2_iterations: over.argon2_iterations.or(self.argon2_iterations),
            mail_max_attempts: over.mail_max_attempts.or(self.mail_max_attempts),
            mail_retry_seconds: over.mail_retry_seconds.or(self.mail_retry_seconds),
        }
    }

    /// Reads the `HEARTH_*` variables from `lookup` (the process environment in production).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Overrides, ConfigError> {
        fn number<T: std::str::FromStr>(
            name: &'static str,
            value: Option<String>,
        ) -> Result<Option<T>, ConfigError> {
            value
                .map(|v| {
                    v.trim().parse().map_err(|_| ConfigError::Invalid {
                        name,
                        message: format!("'{v}' is not a whole number"),
                    })
                })
                .transpose()
        }
        Ok(Overrides {
            addr: lookup("HEARTH_ADDR"),
            data_dir: lookup("HEARTH_DATA_DIR").map(PathBuf::from),
            database_url: lookup("HEARTH_DATABASE_URL"),
            public_url: lookup("HEARTH_PUBLIC_URL"),
            max_body_bytes: number("HEARTH_MAX_BODY_BYTES", lookup("HEARTH_MAX_BODY_BYTES"))?,
            max_bundle_entries: number(
                "HEARTH_MAX_BUNDLE_ENTRIES",
                lookup("HEARTH_MAX_BUNDLE_ENTRIES"),
            )?,
            db_pool_size: number("HEARTH_DB_POOL_SIZE", lookup("HEARTH_DB_POOL_SIZE"))?,
            content_cache_mb: number("HEARTH_CONTENT_CACHE_MB", lookup("HEARTH_CONTENT_CACHE_MB"))?,
            triage_region: lookup("HEARTH_TRIAGE_REGION"),
            triage_window: lookup("HEARTH_TRIAGE_WINDOW"),
            triage_guidelines_url: lookup("HEARTH_TRIAGE_GUIDELINES_URL"),
            triage_extra_holidays: lookup("HEARTH_TRIAGE_EXTRA_HOLIDAYS").map(|v| list(&v)),
            triage_removed_holidays: lookup("HEARTH_TRIAGE_REMOVED_HOLIDAYS").map(|v| list(&v)),
            demo: None,
            admin_email: lookup("HEARTH_ADMIN_EMAIL"),
            admin_password: lookup("HEARTH_ADMIN_PASSWORD"),
            smtp_url: lookup("HEARTH_SMTP_URL"),
            mail_from: lookup("HEARTH_MAIL_FROM"),
            registration: lookup("HEARTH_REGISTRATION"),
            password_min_length: number(
                "HEARTH_PASSWORD_MIN_LENGTH",
                lookup("HEARTH_PASSWORD_MIN_LENGTH"),
            )?,
            password_require_classes: boolean(
                "HEARTH_PASSWORD_REQUIRE_CLASSES",
                lookup("HEARTH_PASSWORD_REQUIRE_CLASSES"),
            )?,
            session_idle_minutes: number(
                "HEARTH_SESSION_IDLE_MINUTES",
                lookup("HEARTH_SESSION_IDLE_MINUTES"),
            )?,
            session_absolute_hours: number(
                "HEARTH_SESSION_ABSOLUTE_HOURS",
                lookup("HEARTH_SESSION_ABSOLUTE_HOURS"),
            )?,
            login_max_failures: number(
                "HEARTH_LOGIN_MAX_FAILURES",
                lookup("HEARTH_LOGIN_MAX_FAILURES"),
            )?,
            login_max_failures_per_address: number(
                "HEARTH_LOGIN_MAX_FAILURES_PER_ADDRESS",
                lookup("HEARTH_LOGIN_MAX_FAILURES_PER_ADDRESS"),
            )?,
            login_lockout_minutes: number(
                "HEARTH_LOGIN_LOCKOUT_MINUTES",
                lookup("HEARTH_LOGIN_LOCKOUT_MINUTES"),
            )?,
            argon2_memory_kib: number(
                "HEARTH_ARGON2_MEMORY_KIB",
                lookup("HEARTH_ARGON2_MEMORY_KIB"),
            )?,
            argon2_iterations: number(
                "HEARTH_ARGON2_ITERATIONS",
                lookup("HEARTH_ARGON2_ITERATIONS"),
            )?,
            mail_max_attempts: number(
                "HEARTH_MAIL_MAX_ATTEMPTS",
                lookup("HEARTH_MAIL_MAX_ATTEMPTS"),
            )?,
            mail_retry_seconds: number(
                "HEARTH_MAIL_RETRY_SECONDS",
                lookup("HEARTH_MAIL_RETRY_SECONDS"),
            )?,
        })
    }
}

/// `true` or `false`.
fn boolean(name: &'static str, value: Option<String>) -> Result<Option<bool>, ConfigError> {
    value
        .map(|v| match v.trim() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(ConfigError::Invalid {
                name,
                message: format!("'{other}' is not true or false"),
            }),
        })
        .transpose()
}

/// A comma-separated list.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// Loads settings: defaults, then `file` (TOML), then the environment, then `flags`.
    pub fn load(file: Option<&Path>, flags: Overrides) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<Overrides>(&text).map_err(|e| ConfigError::File {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?
            }
            None => Overrides::default(),
        };
        let env = Overrides::from_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
        Config::from_overrides(from_file.merge(env).merge(flags))
    }

    /// Validates merged settings, filling in the defaults.
    pub fn from_overrides(o: Overrides) -> Result<Config, ConfigError> {
        let addr: SocketAddr = o
            .addr
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| ConfigError::Invalid {
                name: "HEARTH_ADDR",
                message: "expected HOST:PORT, e.g. 127.0.0.1:8080".into(),
            })?;
        let data_dir = o.data_dir.unwrap_or_else(|| PathBuf::from("./hearth-data"));
        let database = match o.database_url {
            Some(url) => DatabaseUrl::parse(&url).map_err(|message| ConfigError::Invalid {
                name: "HEARTH_DATABASE_URL",
                message,
            })?,
            None => DatabaseUrl::Sqlite(data_dir.join("hearth.db")),
        };
        let public_url = o.public_url.map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.contains(['?', '#', ' '])) {
                return Err(ConfigError::Invalid {
                    name: "HEARTH_PUBLIC_URL",
                    message: format!("'{url}' is not an http(s) base URL"),
                });
            }
        }
        let max_body_bytes = o.max_body_bytes.unwrap_or(16 * 1024 * 1024);
        if !(1024..=1 << 32).contains(&max_body_bytes) {
            return Err(ConfigError::Invalid {
                name: "HEARTH_MAX_BODY_BYTES",
                message: "must be between 1 KiB and 4 GiB".into(),
            });
        }
        let max_bundle_entries = o.max_bundle_entries.unwrap_or(10_000);
        if !(1..=1_000_000).contains(&max_bundle_entries) {
            return Err(ConfigError::Invalid {
                name: "HEARTH_MAX_BUNDLE_ENTRIES",
                message: "must be between 1 and 1000000".into(),
            });
        }
        let db_pool_size = o.db_pool_size.unwrap_or_else(default_pool_size);
        if !(1..=512).contains(&db_pool_size) {
            return Err(ConfigError::Invalid {
                name: "HEARTH_DB_POOL_SIZE",
                message: "must be between 1 and 512".into(),
            });
        }
        let content_cache_mb = o.content_cache_mb.unwrap_or(128);
        if content_cache_mb > 1 << 20 {
            return Err(ConfigError::Invalid {
                name: "HEARTH_CONTENT_CACHE_MB",
                message: "must be between 0 and 1048576".into(),
            });
        }
        Ok(Config {
            addr,
            data_dir,
            database,
            public_url,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            max_bundle_entries: usize::try_from(max_bundle_entries).unwrap_or(usize::MAX),
            db_pool_size,
            content_cache_bytes: content_cache_mb << 20,
            triage: TriageSettings {
                region: o.triage_region,
                window: o.triage_window,
                extra_holidays: o.triage_extra_holidays.unwrap_or_default(),
                removed_holidays: o.triage_removed_holidays.unwrap_or_default(),
                guidelines_url: o.triage_guidelines_url,
            },
            demo: o.demo.unwrap_or(false),
            accounts: account_config(AccountOverrides {
                admin_email: o.admin_email,
                admin_password: o.admin_password,
                smtp_url: o.smtp_url,
                mail_from: o.mail_from,
                registration: o.registration,
                password_min_length: o.password_min_length,
                password_require_classes: o.password_require_classes,
                session_idle_minutes: o.session_idle_minutes,
                session_absolute_hours: o.session_absolute_hours,
                login_max_failures: o.login_max_failures,
                login_max_failures_per_address: o.login_max_failures_per_address,
                login_lockout_minutes: o.login_lockout_minutes,
                argon2_memory_kib: o.argon2_memory_kib,
                argon2_iterations: o.argon2_iterations,
                mail_max_attempts: o.mail_max_attempts,
                mail_retry_seconds: o.mail_retry_seconds,
            })?,
        })
    }

    /// The external base URL of a server bound to `bound`.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }
}

/// The account settings of [`Overrides`], taken apart.
struct AccountOverrides {
    admin_email: Option<String>,
    admin_password: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    registration: Option<String>,
    password_min_length: Option<u32>,
    password_require_classes: Option<bool>,
    session_idle_minutes: Option<u32>,
    session_absolute_hours: Option<u32>,
    login_max_failures: Option<u32>,
    login_max_failures_per_address: Option<u32>,
    login_lockout_minutes: Option<u32>,
    argon2_memory_kib: Option<u32>,
    argon2_iterations: Option<u32>,
    mail_max_attempts: Option<u32>,
    mail_retry_seconds: Option<u32>,
}

fn within(
    name: &'static str,
    value: Option<u32>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            message: format!(
                "{value} is out of range ({}–{})",
                range.start(),
                range.end()
            ),
        });
    }
    Ok(value)
}

fn account_config(o: AccountOverrides) -> Result<AccountConfig, ConfigError> {
    if o.admin_email.is_some() != o.admin_password.is_some() {
        return Err(ConfigError::Invalid {
            name: "HEARTH_ADMIN_EMAIL",
            message: "HEARTH_ADMIN_EMAIL and HEARTH_ADMIN_PASSWORD go together".into(),
        });
    }
    if let Some(url) = &o.smtp_url
        && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
    {
        return Err(ConfigError::Invalid {
            name: "HEARTH_SMTP_URL",
            message: format!(
                "'{}' is not smtp://HOST:PORT or smtps://HOST:PORT",
                redact_url(url)
            ),
        });
    }
    let open_registration = match o.registration.as_deref().unwrap_or("open") {
        "open" => true,
        "invite" => false,
        other => {
            return Err(ConfigError::Invalid {
                name: "HEARTH_REGISTRATION",
                message: format!("'{other}' is neither open nor invite"),
            });
        }
    };
    Ok(AccountConfig {
        admin_email: o.admin_email,
        admin_password: o.admin_password,
        smtp_url: o.smtp_url,
        mail_from: o
            .mail_from
            .unwrap_or_else(|| "Hearth <hearth@localhost>".to_owned()),
        open_registration,
        password_min_length: within(
            "HEARTH_PASSWORD_MIN_LENGTH",
            o.password_min_length,
            8,
            1..=128,
        )?,
        password_require_classes: o.password_require_classes.unwrap_or(true),
        session_idle_minutes: within(
            "HEARTH_SESSION_IDLE_MINUTES",
            o.session_idle_minutes,
            30,
            1..=7 * 24 * 60,
        )?,
        session_absolute_hours: within(
            "HEARTH_SESSION_ABSOLUTE_HOURS",
            o.session_absolute_hours,
            12,
            1..=24 * 30,
        )?,
        login_max_failures: within(
            "HEARTH_LOGIN_MAX_FAILURES",
            o.login_max_failures,
            5,
            1..=1000,
        )?,
        login_max_failures_per_address: within(
            "HEARTH_LOGIN_MAX_FAILURES_PER_ADDRESS",
            o.login_max_failures_per_address,
            20,
            1..=100_000,
        )?,
        login_lockout_minutes: within(
            "HEARTH_LOGIN_LOCKOUT_MINUTES",
            o.login_lockout_minutes,
            15,
            1..=24 * 60,
        )?,
        argon2_memory_kib: within(
            "HEARTH_ARGON2_MEMORY_KIB",
            o.argon2_memory_kib,
            19_456,
            1024..=4 * 1024 * 1024,
        )?,
        argon2_iterations: within("HEARTH_ARGON2_ITERATIONS", o.argon2_iterations, 3, 1..=100)?,
        mail_max_attempts: within("HEARTH_MAIL_MAX_ATTEMPTS", o.mail_max_attempts, 8, 1..=100)?,
        mail_retry_seconds: within(
            "HEARTH_MAIL_RETRY_SECONDS",
            o.mail_retry_seconds,
            30,
            1..=86_400,
        )?,
    })
}

/// Connections in the database pool unless set: twice this machine's cores, at least 4 and at
/// most 64. On PostgreSQL each connection has a thread of its own and runs one statement at a
/// time; with more connections than the cores can serve, the statements only wait inside the
/// database, each for a share of the cores, and the slowest wait the longest: on 2 cores, 16
/// connections gave single-patient searches a p99 three to five times that of 4, for no more
/// searches a second (`benches/README.md`). A database on a larger machine of its own may
/// want more.
pub fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    cores.saturating_mul(2).clamp(4, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let c = Config::from_overrides(Overrides::default()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database,
            DatabaseUrl::Sqlite(PathBuf::from("./hearth-data/hearth.db"))
        );
        assert_eq!(c.public_url(c.addr), "http://127.0.0.1:8080");
        assert_eq!(c.max_body_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn later_layers_win_and_bad_values_stop() {
        let file: Overrides =
            toml::from_str("addr = \"0.0.0.0:9000\"\npublic_url = \"https://x.org/\"").unwrap();
        let env =
            Overrides::from_env(|n| (n == "HEARTH_ADDR").then(|| "127.0.0.1:7000".to_owned()))
                .unwrap();
        let c = Config::from_overrides(file.merge(env)).unwrap();
        assert_eq!(c.addr.port(), 7000);
        assert_eq!(c.public_url.as_deref(), Some("https://x.org"));
        assert!(toml::from_str::<Overrides>("colour = 1").is_err());
        assert!(
            Overrides::from_env(|n| (n == "HEARTH_DB_POOL_SIZE").then(|| "many".to_owned()))
                .is_err()
        );
        let bad = Overrides {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(
            Config::from_overrides(bad)
                .unwrap_err()
                .to_string()
                .contains("HEARTH_DATABASE_URL")
        );
        let bad = Overrides {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(Config::from_overrides(bad).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let url = DatabaseUrl::parse("postgres://u:secret@h:5432/db").unwrap();
        assert_eq!(url.redacted(), "postgres://u:****@h:5432/db");
    }
}
