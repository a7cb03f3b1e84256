//! The `hearth` command: bad settings stop the start with a one-line reason; `migrate` works on
//! a fresh database and is idempotent.

use std::process::Command;

use crate::support::TestDatabase;

fn hearth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command.env("HEARTH_LOG", "warn");
    command
}

#[test]
fn bad_settings_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in [
        ("HEARTH_ADDR", "not-an-address", "HEARTH_ADDR"),
        ("HEARTH_DATABASE_URL", "mysql://x", "HEARTH_DATABASE_URL"),
        ("HEARTH_PUBLIC_URL", "ftp://x", "HEARTH_PUBLIC_URL"),
        ("HEARTH_DB_POOL_SIZE", "lots", "HEARTH_DB_POOL_SIZE"),
    ] {
        let output = hearth()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, "adress = \"127.0.0.1:1\"\n").unwrap();
    let output = hearth()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("adress"));
}

#[test]
fn migrate_creates_the_schema_and_can_run_again() {
    let databases: Vec<TestDatabase> = [Some(TestDatabase::sqlite()), TestDatabase::postgres()]
        .into_iter()
        .flatten()
        .collect();
    for database in databases {
        for _ in 0..2 {
            let output = hearth()
                .args(["migrate", "--database-url", &database.url()])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(String::from_utf8_lossy(&output.stdout).contains("migrations are up to date"));
        }
    }
}
