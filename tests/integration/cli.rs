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

/// `hearth user add|list|set-role|disable|enable` on the configured database; bad input is
/// refused with a reason.
#[test]
fn user_commands_manage_accounts() {
    let database = TestDatabase::sqlite();
    let run = |args: &[&str]| {
        let output = hearth()
            .arg("--database-url")
            .arg(database.url())
            .arg("--data-dir")
            .arg(database.data_dir())
            .env("HEARTH_ARGON2_MEMORY_KIB", "1024")
            .env("HEARTH_ARGON2_ITERATIONS", "1")
            .arg("user")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "add",
        "--email",
        "gus@hearth.test",
        "--password",
        "Echo#Lab77",
        "--role",
        "clinician",
        "--name",
        "Gus Ray",
        "--specialty",
        "Sonography",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let added: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(added["status"], "active");
    assert_eq!(added["role"], "clinician");
    assert!(
        added["fhirUser"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );

    let (code, _, err) = run(&[
        "add",
        "--email",
        "GUS@hearth.test",
        "--password",
        "Echo#Lab77",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run(&["add", "--email", "weak@hearth.test", "--password", "weak"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("too short"), "{err}");
    let (code, _, err) = run(&["set-role", "gus@hearth.test", "wizard"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a role"), "{err}");

    let (code, out, _) = run(&["set-role", "gus@hearth.test", "physician"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"role\":\"physician\""), "{out}");
    let (code, out, _) = run(&["disable", "gus@hearth.test"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"status\":\"disabled\""), "{out}");
    let (_, out, _) = run(&["list"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("gus@hearth.test") && out.contains("disabled"));
    let (code, out, _) = run(&["enable", "gus@hearth.test"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"status\":\"active\""), "{out}");
    let (code, _, err) = run(&["disable", "nobody@hearth.test"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nobody@hearth.test: no such account"), "{err}");
}
