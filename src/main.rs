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
