//! The `hearth` command: parses the command line, loads the configuration and hands over to
//! `app`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use hearth::clock::SystemClock;
use hearth::config::{Config, Overrides};

/// Hearth, a FHIR R4 server.
/// mimalloc: glibc's allocator serializes the many small allocations of concurrent requests.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hearth", version, about)]
struct Cli {
    /// TOML configuration file (also HEARTH_CONFIG).
    #[arg(long, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (also HEARTH_ADDR).
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Folder for the SQLite database and local files (also HEARTH_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://… (also HEARTH_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Load a small demo (wards, patients, echo requests on every pathway) at start.
        #[arg(long)]
        demo: bool,
    },
    /// Run pending database migrations and exit.
    Migrate,
    /// Load NDJSON files (one resource a line) and Bundle JSON files, or folders of them.
    /// Rejected resources are listed on standard error (file, line, reason) and the load goes
    /// on; the exit status is 1 when any was rejected. Loading the same files again changes
    /// nothing.
    Import {
        /// Files or folders (.ndjson, .jsonl and .json files are read from folders).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Manage accounts (prints each account as a JSON line).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print an access token signed by the server's key, for scripts and operators.
    Token {
        /// SMART scopes, e.g. 'system/*.cruds' or 'system/Patient.rs system/Observation.rs'.
        #[arg(long, default_value = "system/*.cruds")]
        scope: String,
        /// Lifetime in seconds (at most a day).
        #[arg(long, default_value_t = 3600)]
        lifetime: i64,
    },
    /// Manage SMART client apps (prints JSON).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage the server's signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Issue an EHR launch value for an app launched in a patient's (and encounter's) context.
    Launch {
        /// The patient's id.
        #[arg(long)]
        patient: Option<String>,
        /// The encounter's id.
        #[arg(long)]
        encounter: Option<String>,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an app or backend service; prints {"client_id": …, "client_secret": …}.
    Add {
        /// Name shown to users.
        #[arg(long)]
        name: String,
        /// Exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Scopes the client may be granted (default: app scopes, or system/*.rs for backend
        /// services).
        #[arg(long)]
        scope: Option<String>,
        /// A public app (no secret).
        #[arg(long, conflicts_with_all = ["secret", "jwks_file", "jwks_url"])]
        public: bool,
        /// A confidential app with a generated client secret.
        #[arg(long, conflicts_with_all = ["jwks_file", "jwks_url"])]
        secret: bool,
        /// A JWK Set file with the client's public keys (private_key_jwt).
        #[arg(long, conflicts_with = "jwks_url")]
        jwks_file: Option<PathBuf>,
        /// The URL of the client's JWK Set (private_key_jwt).
        #[arg(long)]
        jwks_url: Option<String>,
        /// The app's launch URL (EHR launch from the console).
        #[arg(long)]
        launch_url: Option<String>,
    },
    /// List every client.
    List,
    /// Disable a client: it gets no new tokens.
    Disable {
        /// The client_id.
        client_id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// The client_id.
        client_id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate new signing keys; the old ones verify until their tokens expire.
    Rotate,
}

impl ClientCommand {
    fn into_app(self) -> Result<hearth::app::smart::SmartCommand, String> {
        use hearth::app::smart::SmartCommand as C;
        use hearth::auth::clients::{Credentials, NewClient};
        Ok(match self {
            ClientCommand::Add {
                name,
                redirect_uris,
                scope,
                public,
                secret,
                jwks_file,
                jwks_url,
                launch_url,
            } => {
                let credentials = if let Some(path) = jwks_file {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    Credentials::Jwks(
                        serde_json::from_str(&text)
                            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?,
                    )
                } else if let Some(url) = jwks_url {
                    Credentials::JwksUrl(url)
                } else if secret {
                    Credentials::Secret
                } else if public {
                    Credentials::Public
                } else {
                    return Err(
                        "say how the client authenticates: --public, --secret, --jwks-file or --jwks-url".into(),
                    );
                };
                C::ClientAdd(NewClient {
                    name,
                    redirect_uris,
                    scope,
                    credentials,
                    launch_url,
                })
            }
            ClientCommand::List => C::ClientList,
            ClientCommand::Disable { client_id } => C::ClientDisable {
                id: client_id,
                disabled: true,
            },
            ClientCommand::Enable { client_id } => C::ClientDisable {
                id: client_id,
                disabled: false,
            },
        })
    }
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an active account; staff get a Practitioner, patients a Patient.
    Add {
        /// Email address (the login).
        #[arg(long)]
        email: String,
        /// Password (also HEARTH_USER_PASSWORD, which keeps it out of the shell history).
        #[arg(long, env = "HEARTH_USER_PASSWORD")]
        password: String,
        /// admin, physician, clinician or patient.
        #[arg(long, default_value = "physician")]
        role: String,
        /// Full name.
        #[arg(long, default_value = "")]
        name: String,
        /// Specialty, e.g. Cardiology (staff).
        #[arg(long)]
        specialty: Option<String>,
    },
    /// List every account.
    List,
    /// Disable an account: its sessions end at once.
    Disable {
        /// Email address.
        email: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Email address.
        email: String,
    },
    /// Change the role of an account.
    SetRole {
        /// Email address.
        email: String,
        /// admin, physician, clinician or patient.
        role: String,
    },
}

impl UserCommand {
    fn into_app(self) -> hearth::app::people::UserCommand {
        use hearth::app::people::UserCommand as C;
        match self {
            UserCommand::Add {
                email,
                password,
                role,
                name,
                specialty,
            } => C::Add {
                name: if name.trim().is_empty() {
                    email.split('@').next().unwrap_or_default().to_owned()
                } else {
                    name
                },
                email,
                password,
                role,
                specialty,
            },
            UserCommand::List => C::List,
            UserCommand::Disable { email } => C::Disable { email },
            UserCommand::Enable { email } => C::Enable { email },
            UserCommand::SetRole { email, role } => C::SetRole { email, role },
        }
    }
}

async fn smart(
    config: &Config,
    command: hearth::app::smart::SmartCommand,
) -> Result<(), hearth::app::AppError> {
    hearth::app::smart::smart_command(config, command)
        .await
        .map(|output| {
            if !output.is_empty() {
                println!("{output}");
            }
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let demo = matches!(cli.command, Command::Serve { demo: true });
    let flags = Overrides {
        demo: demo.then_some(true),
        addr: cli.addr,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        ..Overrides::default()
    };
    let config = match Config::load(cli.config.as_deref(), flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hearth: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(hearth::app::runtime_thread_start(&config))
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hearth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { .. } => hearth::app::serve(&config).await,
            Command::Migrate => hearth::app::open_storage(&config, Arc::new(SystemClock))
                .await
                .map(|_| {
                    println!(
                        "migrations are up to date on {}",
                        config.database.redacted()
                    );
                }),
            Command::Import { paths, quiet } => {
                match hearth::app::import::import(&config, &paths, !quiet).await {
                    Ok(summary) => {
                        println!("{}", summary.line());
                        if !summary.rejected.is_empty() {
                            return Err(hearth::app::AppError::Install(format!(
                                "{} resources were rejected (listed above)",
                                summary.rejected.len()
                            )));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Command::Token { scope, lifetime } => {
                smart(
                    &config,
                    hearth::app::smart::SmartCommand::Token { scope, lifetime },
                )
                .await
            }
            Command::Client { command } => match command.into_app() {
                Ok(command) => smart(&config, command).await,
                Err(e) => Err(hearth::app::AppError::Accounts(e)),
            },
            Command::Keys {
                command: KeysCommand::Rotate,
            } => smart(&config, hearth::app::smart::SmartCommand::KeysRotate).await,
            Command::Launch { patient, encounter } => {
                smart(
                    &config,
                    hearth::app::smart::SmartCommand::Launch(hearth::auth::grants::LaunchContext {
                        patient,
                        encounter,
                        user_id: None,
                    }),
                )
                .await
            }
            Command::User { command } => {
                hearth::app::people::user_command(&config, command.into_app())
                    .await
                    .map(|output| {
                        if !output.is_empty() {
                            println!("{output}");
                        }
                    })
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::FAILURE
        }
    }
}
