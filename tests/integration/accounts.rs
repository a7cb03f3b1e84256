//! Accounts over HTTP on both backends, with mail through a real SMTP server: registration →
//! the mail arrives → its link verifies → login; expired, reused and withdrawn links; password
//! reset; throttling; CSRF; invitations, roles and disabled users; the outbox when SMTP fails;
//! mail as `.eml` files when SMTP is unset; audit events.

use std::sync::Arc;

use hearth::clock::ManualClock;
use hearth::config::Overrides;
use serde_json::Value;

use crate::browser::{Browser, MailServer};
use crate::support::{TestDatabase, TestServer};

const ADMIN: &str = "admin@hearth.test";
const ADMIN_PASSWORD: &str = "Admin-pass1";
const PASSWORD: &str = "Sonogram#42";

/// Settings for a test server: mail to `smtp`, cheap argon2 (the cost is for benchmarks),
/// a bootstrap administrator.
fn settings(smtp: Option<&str>) -> Overrides {
    Overrides {
        smtp_url: smtp.map(str::to_owned),
        mail_from: Some("Hearth <noreply@hearth.test>".into()),
        admin_email: Some(ADMIN.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        argon2_memory_kib: Some(1024),
        argon2_iterations: Some(1),
        ..Overrides::default()
    }
}

/// Runs `test` on SQLite and on PostgreSQL (when configured).
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::TestDatabase::sqlite()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(database) = $crate::support::TestDatabase::postgres() else { return };
                super::$name(database).await;
            }
        }
    )*};
}

on_both!(
    registration_verification_and_login,
    links_expire_and_work_once,
    password_reset,
    failed_logins_are_throttled,
    forms_need_their_csrf_token,
    invitations_roles_and_disabled_users,
);

async fn register(browser: &Browser, name: &str, email: &str) {
    browser
        .submit(
            "/console/register",
            "/console/register",
            &[
                ("name", name),
                ("email", email),
                ("password", PASSWORD),
                ("specialty", "Cardiology"),
            ],
        )
        .await
        .expect(200, "Check your email");
}

async fn search(server: &TestServer, query: &str) -> Value {
    let response = server.get(query).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

async fn registration_verification_and_login(database: TestDatabase) {
    let smtp = MailServer::start();
    let server = TestServer::start(database, settings(Some(&smtp.url))).await;
    let browser = Browser::new(&server.root());

    // The form explains the password policy; a weak password is refused beside its field
    // and what was typed (but the password) is kept.
    browser.get("/console/register").await.expect(
        200,
        "At least 8 characters, with an upper-case letter, a lower-case letter, a digit and a symbol.",
    );
    let weak = browser
        .submit(
            "/console/register",
            "/console/register",
            &[
                ("name", "Ann Smith"),
                ("email", "ann@hearth.test"),
                ("password", "password"),
            ],
        )
        .await;
    weak.expect(
        422,
        "The password needs an upper-case letter, a digit, a symbol.",
    );
    assert!(weak.body.contains("value=\"Ann Smith\""), "{}", weak.body);
    assert!(
        weak.body
            .contains("class=\"field-error\" id=\"password-error\"")
    );

    register(&browser, "Ann Smith", "Ann@Hearth.test").await;
    let mail = smtp.wait("Ann@Hearth.test", 1).await;
    assert_eq!(mail.subject, "Confirm your email address for Hearth");
    let link = mail.link("verify");
    assert!(link.starts_with(&server.root()), "{link}");
    assert!(mail.html.contains("href=\"") && mail.html.contains("/console/verify?token="));

    // Not verified yet: the right password gets a clear message and a resend button.
    let page = browser.login("ann@hearth.test", PASSWORD).await;
    page.expect(403, "not verified yet");
    assert!(page.body.contains("action=\"/console/resend\""));
    // A wrong password does not reveal that the account exists.
    browser
        .login("ann@hearth.test", "Wrong#pass1")
        .await
        .expect(401, "The email or password is incorrect.");
    browser
        .login("nobody@hearth.test", "Wrong#pass1")
        .await
        .expect(401, "The email or password is incorrect.");

    // Registering again with the same address answers the same and mails the owner instead.
    register(
        &Browser::new(&server.root()),
        "Someone Else",
        "ann@hearth.test",
    )
    .await;
    let second = smtp.wait("ann@hearth.test", 2).await;
    assert_eq!(second.subject, "Confirm your email address for Hearth");

    // The newest link verifies; the first was withdrawn when the second was sent.
    browser.get(&link).await.expect(400, "already been used");
    let fresh = second.link("verify");
    browser
        .get(&fresh)
        .await
        .expect(200, "your account is active");
    browser.get(&fresh).await.expect(400, "already been used");

    // Login replaces the session (no fixation) and shows the user.
    let before = browser.get("/console/login").await;
    before.expect(200, "Sign in");
    let page = browser.login("ANN@hearth.test", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/console"));
    browser
        .get("/console")
        .await
        .expect(200, "Signed in as <strong>Ann Smith</strong> (physician)");
    // The old anonymous session's CSRF token is worthless now.
    browser
        .post_raw("/console/logout", &[("csrf", &before.csrf())])
        .await
        .expect(403, "Form expired");

    // The person is a Practitioner with a PractitionerRole for the specialty.
    let practitioners = search(&server, "Practitioner?email=Ann@Hearth.test").await;
    assert_eq!(practitioners["total"], 1, "{practitioners}");
    let practitioner = &practitioners["entry"][0]["resource"];
    assert_eq!(practitioner["name"][0]["family"], "Smith");
    let id = practitioner["id"].as_str().unwrap();
    let roles = search(&server, &format!("PractitionerRole?practitioner={id}")).await;
    assert_eq!(
        roles["entry"][0]["resource"]["specialty"][0]["text"],
        "Cardiology"
    );

    // Logout ends the session.
    let csrf = browser.get("/console").await.csrf();
    let page = browser
        .post_raw("/console/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(
        browser.get("/console").await.location.as_deref(),
        Some("/console/login")
    );

    // Logins, failures, verification and logout are audit events.
    let events = search(&server, "AuditEvent?_count=100").await;
    let entries = events["entry"].as_array().unwrap();
    let described = |text: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["resource"]["outcomeDesc"] == text && e["resource"]["outcome"] == outcome)
    };
    assert!(described("login", "0"), "{events}");
    assert!(described("wrong password", "4"));
    assert!(described("unknown email", "4"));
    assert!(described("email not verified", "4"));
    assert!(described("email verified", "0"));
    assert!(described("logout", "0"));
    let failure = entries
        .iter()
        .find(|e| e["resource"]["outcomeDesc"] == "wrong password")
        .unwrap();
    assert_eq!(
        failure["resource"]["agent"][0]["network"]["address"],
        "127.0.0.1"
    );
    server.finish().await;
}

async fn links_expire_and_work_once(database: TestDatabase) {
    let smtp = MailServer::start();
    let clock = ManualClock::at(1_800_000_000_000);
    let server =
        TestServer::start_with_clock(database, settings(Some(&smtp.url)), Arc::new(clock.clone()))
            .await;
    let browser = Browser::new(&server.root());
    register(&browser, "Bea Jones", "bea@hearth.test").await;
    let link = smtp.wait("bea@hearth.test", 1).await.link("verify");
    clock.set(1_800_000_000_000 + 24 * 3600 * 1000 + 1);
    browser
        .get(&link)
        .await
        .expect(400, "This link has expired");
    browser
        .get("/console/verify?token=made-up")
        .await
        .expect(400, "This link is not valid");
    // A new link, sent on request, works.
    browser
        .submit(
            "/console/login",
            "/console/resend",
            &[("email", "bea@hearth.test")],
        )
        .await
        .expect(200, "If an account with this address is waiting");
    let link = smtp.wait("bea@hearth.test", 2).await.link("verify");
    browser
        .get(&link)
        .await
        .expect(200, "your account is active");

    // A reset link lasts an hour.
    browser
        .submit(
            "/console/forgot",
            "/console/forgot",
            &[("email", "bea@hearth.test")],
        )
        .await
        .expect(200, "If an account exists for this address");
    let reset = smtp.wait("bea@hearth.test", 3).await;
    assert_eq!(reset.subject, "Reset your Hearth password");
    let link = reset.link("reset");
    browser
        .get(&link)
        .await
        .expect(200, "Choose a new password");
    clock.set(1_800_000_000_000 + 25 * 3600 * 1000 + 2);
    browser
        .get(&link)
        .await
        .expect(400, "This link has expired");
    server.finish().await;
}

async fn password_reset(database: TestDatabase) {
    let smtp = MailServer::start();
    let server = TestServer::start(database, settings(Some(&smtp.url))).await;
    let browser = Browser::new(&server.root());
    register(&browser, "Cai Wong", "cai@hearth.test").await;
    let link = smtp.wait("cai@hearth.test", 1).await.link("verify");
    browser
        .get(&link)
        .await
        .expect(200, "your account is active");
    let signed_in = Browser::new(&server.root());
    assert_eq!(
        signed_in.login("cai@hearth.test", PASSWORD).await.status,
        303
    );

    // Unknown and known addresses get the same answer; only the known one gets mail.
    let unknown = browser
        .submit(
            "/console/forgot",
            "/console/forgot",
            &[("email", "nobody@hearth.test")],
        )
        .await;
    let known = browser
        .submit(
            "/console/forgot",
            "/console/forgot",
            &[("email", "cai@hearth.test")],
        )
        .await;
    unknown.expect(200, "If an account exists for this address");
    let notice = |page: &crate::browser::Page| {
        let at = page.body.find("class=\"notice\"").unwrap();
        page.body[at..at + 200].to_owned()
    };
    assert_eq!(notice(&unknown), notice(&known));
    let link = smtp.wait("cai@hearth.test", 2).await.link("reset");
    assert!(smtp.to("nobody@hearth.test").is_empty());

    let token = link.split("token=").nth(1).unwrap().to_owned();
    let form = browser.get(&link).await;
    form.expect(200, "Set the new password");
    let csrf = form.csrf();
    browser
        .post_raw(
            "/console/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "New#Pass99"),
                ("confirm", "New#Pass98"),
            ],
        )
        .await
        .expect(422, "The two passwords are not the same.");
    browser
        .post_raw(
            "/console/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await
        .expect(422, "The password is too short");
    browser
        .post_raw(
            "/console/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "New#Pass99"),
                ("confirm", "New#Pass99"),
            ],
        )
        .await
        .expect(200, "Your password is changed");
    browser
        .post_raw(
            "/console/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "Other#Pass1"),
                ("confirm", "Other#Pass1"),
            ],
        )
        .await
        .expect(400, "already been used");

    // The reset ended the other session; the old password is gone, the new one works.
    assert_eq!(
        signed_in.get("/console").await.location.as_deref(),
        Some("/console/login")
    );
    browser
        .login("cai@hearth.test", PASSWORD)
        .await
        .expect(401, "incorrect");
    assert_eq!(
        browser.login("cai@hearth.test", "New#Pass99").await.status,
        303
    );

    // Changing the password while signed in needs the current one.
    let change = |current: &'static str, new: &'static str| {
        let browser = &browser;
        async move {
            browser
                .submit(
                    "/console/password",
                    "/console/password",
                    &[("current", current), ("password", new), ("confirm", new)],
                )
                .await
        }
    };
    change("Wrong#Pass1", "Third#Pass3")
        .await
        .expect(422, "The current password is incorrect.");
    change("New#Pass99", "Third#Pass3")
        .await
        .expect(200, "Your password is changed");
    let other = Browser::new(&server.root());
    assert_eq!(
        other.login("cai@hearth.test", "Third#Pass3").await.status,
        303
    );
    server.finish().await;
}

async fn failed_logins_are_throttled(database: TestDatabase) {
    let smtp = MailServer::start();
    let clock = ManualClock::at(1_800_000_000_000);
    let overrides = Overrides {
        login_max_failures_per_address: Some(8),
        ..settings(Some(&smtp.url))
    };
    let server = TestServer::start_with_clock(database, overrides, Arc::new(clock.clone())).await;
    let browser = Browser::new(&server.root());
    for _ in 0..5 {
        browser
            .login(ADMIN, "Wrong#pass1")
            .await
            .expect(401, "incorrect");
    }
    // Locked for the account: even the right password waits, and the page says how long.
    browser
        .login(ADMIN, ADMIN_PASSWORD)
        .await
        .expect(429, "Too many failed attempts. Try again in 15 minutes.");
    clock.set(1_800_000_000_000 + 5 * 60 * 1000);
    browser
        .login(ADMIN, ADMIN_PASSWORD)
        .await
        .expect(429, "Try again in 10 minutes.");
    // Per address: three more failures on other emails reach the address limit of eight.
    for email in ["x@hearth.test", "y@hearth.test", "z@hearth.test"] {
        browser
            .login(email, "Wrong#pass1")
            .await
            .expect(401, "incorrect");
    }
    browser
        .login("w@hearth.test", "Wrong#pass1")
        .await
        .expect(429, "Too many failed attempts");
    // The window passes; the right password works again.
    clock.set(1_800_000_000_000 + 16 * 60 * 1000);
    assert_eq!(browser.login(ADMIN, ADMIN_PASSWORD).await.status, 303);
    let events = search(&server, "AuditEvent?_count=100").await;
    assert!(
        events["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["outcomeDesc"] == "throttled")
    );
    server.finish().await;
}

async fn forms_need_their_csrf_token(database: TestDatabase) {
    let server = TestServer::start(database, settings(None)).await;
    let browser = Browser::new(&server.root());
    let fields = [("email", ADMIN), ("password", ADMIN_PASSWORD)];
    // No session at all.
    browser
        .post_raw("/console/login", &fields)
        .await
        .expect(403, "This form has expired or did not come from Hearth");
    // A session, but no token, then a wrong one, then another session's token.
    let mine = browser.get("/console/login").await.csrf();
    browser
        .post_raw("/console/login", &fields)
        .await
        .expect(403, "Form expired");
    browser
        .post_raw(
            "/console/login",
            &[
                ("csrf", "forged"),
                ("email", ADMIN),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await
        .expect(403, "Form expired");
    let theirs = Browser::new(&server.root())
        .get("/console/login")
        .await
        .csrf();
    assert_ne!(mine, theirs);
    browser
        .post_raw(
            "/console/login",
            &[
                ("csrf", &theirs),
                ("email", ADMIN),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await
        .expect(403, "Form expired");
    // With its own token the same form works.
    let page = browser
        .post_raw(
            "/console/login",
            &[
                ("csrf", &mine),
                ("email", ADMIN),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    // Admin actions need it too.
    browser
        .post_raw(
            "/console/admin/users/invite",
            &[("name", "X"), ("email", "x@hearth.test"), ("role", "admin")],
        )
        .await
        .expect(403, "Form expired");
    let visitor = Browser::new(&server.root())
        .get("/console/admin/users")
        .await;
    assert_eq!(
        visitor.location.as_deref(),
        Some("/console/login"),
        "a visitor is sent to the login page"
    );
    server.finish().await;
}

async fn invitations_roles_and_disabled_users(database: TestDatabase) {
    let smtp = MailServer::start();
    let server = TestServer::start(database, settings(Some(&smtp.url))).await;
    let admin = Browser::new(&server.root());
    assert_eq!(admin.login(ADMIN, ADMIN_PASSWORD).await.status, 303);
    admin
        .submit(
            "/console/admin/users",
            "/console/admin/users/invite",
            &[
                ("name", "Dee Park"),
                ("email", "dee@hearth.test"),
                ("role", "clinician"),
                ("specialty", "Sonography"),
            ],
        )
        .await
        .expect(200, "Invitation sent to dee@hearth.test.");
    admin
        .submit(
            "/console/admin/users",
            "/console/admin/users/invite",
            &[
                ("name", "Dee Again"),
                ("email", "DEE@hearth.test"),
                ("role", "clinician"),
            ],
        )
        .await
        .expect(409, "An account with this email already exists.");

    // The invitation is the verification mail; its link asks for a password.
    let mail = smtp.wait("dee@hearth.test", 1).await;
    assert_eq!(mail.subject, "You are invited to Hearth");
    assert!(mail.text.contains("as clinician"));
    let dee = Browser::new(&server.root());
    dee.login("dee@hearth.test", "Anything#1")
        .await
        .expect(401, "incorrect");
    let form = dee.get(&mail.link("verify")).await;
    form.expect(200, "Choose a password for dee@hearth.test");
    let token = mail
        .link("verify")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    dee.post_raw(
        "/console/verify",
        &[
            ("csrf", &form.csrf()),
            ("token", &token),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await
    .expect(200, "your account is active");
    assert_eq!(dee.login("dee@hearth.test", PASSWORD).await.status, 303);
    dee.get("/console").await.expect(200, "(clinician)");
    // A clinician may not administer.
    dee.get("/console/admin/users")
        .await
        .expect(403, "Your role does not give access");

    // The administrator changes the role, then disables the account: the session ends at once.
    let users = admin.get("/console/admin/users").await;
    let id = {
        let at = users.body.find("dee@hearth.test").unwrap();
        let marker = "/console/admin/users/";
        let start = users.body[at..].find(marker).unwrap() + at + marker.len();
        users.body[start..start + 36].to_owned()
    };
    admin
        .submit(
            "/console/admin/users",
            &format!("/console/admin/users/{id}/role"),
            &[("role", "physician")],
        )
        .await
        .expect(200, "dee@hearth.test is now physician.");
    admin
        .submit(
            "/console/admin/users",
            &format!("/console/admin/users/{id}/role"),
            &[("role", "patient")],
        )
        .await
        .expect(422, "A patient account cannot become a staff account");
    dee.get("/console").await.expect(200, "(physician)");
    // A reset link asked for before the account is disabled dies with it.
    Browser::new(&server.root())
        .submit(
            "/console/forgot",
            "/console/forgot",
            &[("email", "dee@hearth.test")],
        )
        .await
        .expect(200, "If an account exists");
    let reset = smtp.wait("dee@hearth.test", 2).await.link("reset");
    admin
        .submit(
            "/console/admin/users",
            &format!("/console/admin/users/{id}/status"),
            &[("disabled", "true")],
        )
        .await
        .expect(
            200,
            "dee@hearth.test is disabled; their sessions have ended.",
        );
    dee.get(&reset).await.expect(400, "already been used");
    assert_eq!(
        dee.get("/console").await.location.as_deref(),
        Some("/console/login")
    );
    dee.login("dee@hearth.test", PASSWORD)
        .await
        .expect(403, "This account is disabled.");
    admin
        .submit(
            "/console/admin/users",
            &format!("/console/admin/users/{id}/status"),
            &[("disabled", "false")],
        )
        .await
        .expect(200, "dee@hearth.test is enabled (active).");
    assert_eq!(dee.login("dee@hearth.test", PASSWORD).await.status, 303);

    // Role and status changes are audited with the account acted on.
    let events = search(&server, "AuditEvent?_count=100").await;
    let changed = events["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["outcomeDesc"] == "role changed from clinician to physician")
        .expect("role change audited");
    assert_eq!(changed["resource"]["agent"][0]["who"]["display"], ADMIN);
    assert_eq!(
        changed["resource"]["entity"][0]["what"]["display"],
        "dee@hearth.test"
    );
    server.finish().await;
}

/// When SMTP fails, the request still succeeds; the mail is marked failed after its attempts
/// and an administrator sees it (and can queue it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_mail_is_visible_to_an_administrator() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", closed.local_addr().unwrap());
    drop(closed);
    let overrides = Overrides {
        mail_max_attempts: Some(1),
        ..settings(Some(&url))
    };
    let server = TestServer::start(TestDatabase::sqlite(), overrides).await;
    let browser = Browser::new(&server.root());
    register(&browser, "Eve Stone", "eve@hearth.test").await;
    let admin = Browser::new(&server.root());
    assert_eq!(admin.login(ADMIN, ADMIN_PASSWORD).await.status, 303);
    let mut page = admin.get("/console/admin/outbox").await;
    for _ in 0..100 {
        if page.body.contains("could not be sent") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        page = admin.get("/console/admin/outbox").await;
    }
    page.expect(200, "1 message could not be sent");
    assert!(page.body.contains("eve@hearth.test") && page.body.contains("SMTP"));
    admin
        .submit(
            "/console/admin/outbox",
            &{
                let at = page.body.find("/console/admin/outbox/").unwrap();
                let end = page.body[at..].find('"').unwrap();
                page.body[at..at + end].to_owned()
            },
            &[],
        )
        .await
        .expect(200, "The message is queued again.");
    server.finish().await;
}

/// Without SMTP, mail is written as `.eml` files under the data folder, link included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_mail_is_written_to_the_outbox_folder() {
    let database = TestDatabase::sqlite();
    let outbox = database.data_dir().join("outbox");
    let server = TestServer::start(database, settings(None)).await;
    let browser = Browser::new(&server.root());
    register(&browser, "Fay Green", "fay@hearth.test").await;
    let mut files = Vec::new();
    for _ in 0..100 {
        files = std::fs::read_dir(&outbox)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "eml");
    let raw = std::fs::read(&files[0]).unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let text = message.body_text(0).unwrap().into_owned();
    let at = text.find("http").unwrap();
    let link = text[at..].split_whitespace().next().unwrap().to_owned();
    browser
        .get(&link)
        .await
        .expect(200, "your account is active");
    server.finish().await;
}

/// Sessions end after 30 idle minutes, and 12 hours after login however busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_time_out() {
    const START: i64 = 1_800_000_000_000;
    const MINUTE: i64 = 60_000;
    let clock = ManualClock::at(START);
    let server = TestServer::start_with_clock(
        TestDatabase::sqlite(),
        settings(None),
        Arc::new(clock.clone()),
    )
    .await;
    let browser = Browser::new(&server.root());
    assert_eq!(browser.login(ADMIN, ADMIN_PASSWORD).await.status, 303);
    clock.set(START + 29 * MINUTE);
    browser.get("/console").await.expect(200, "Signed in");
    clock.set(START + 60 * MINUTE);
    assert_eq!(
        browser.get("/console").await.location.as_deref(),
        Some("/console/login")
    );

    assert_eq!(browser.login(ADMIN, ADMIN_PASSWORD).await.status, 303);
    let login = START + 60 * MINUTE;
    let mut at = login;
    while at + 25 * MINUTE < login + 12 * 60 * MINUTE {
        at += 25 * MINUTE;
        clock.set(at);
        browser.get("/console").await.expect(200, "Signed in");
    }
    clock.set(login + 12 * 60 * MINUTE);
    assert_eq!(
        browser.get("/console").await.location.as_deref(),
        Some("/console/login")
    );
    server.finish().await;
}

/// The session cookie is HttpOnly and SameSite=Lax, Secure behind an https public URL; pages
/// are not cached, framed, or leaked through the Referer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_and_headers_protect_the_session() {
    for (public_url, secure) in [(None, false), (Some("https://hearth.example.org"), true)] {
        let overrides = Overrides {
            public_url: public_url.map(str::to_owned),
            ..settings(None)
        };
        let server = TestServer::start(TestDatabase::sqlite(), overrides).await;
        let response = reqwest::get(format!("{}/console/login", server.local_url()))
            .await
            .unwrap();
        let headers = response.headers();
        let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.starts_with("hearth_session="), "{cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let missing = reqwest::get(format!("{}/console/no-such-page", server.local_url()))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        assert!(
            missing
                .text()
                .await
                .unwrap()
                .contains("There is no console page")
        );
        server.finish().await;
    }
}

/// With `registration = invite`, the public form says so and a posted registration is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_only_sites_refuse_registration() {
    let smtp = MailServer::start();
    let overrides = Overrides {
        registration: Some("invite".into()),
        ..settings(Some(&smtp.url))
    };
    let server = TestServer::start(TestDatabase::sqlite(), overrides).await;
    let browser = Browser::new(&server.root());
    let form = browser.get("/console/register").await;
    form.expect(200, "Registration is by invitation only.");
    assert!(!form.body.contains("action=\"/console/register\""));
    assert!(
        !browser
            .get("/console/login")
            .await
            .body
            .contains("Register</a>")
    );
    browser
        .submit(
            "/console/login",
            "/console/register",
            &[
                ("name", "Hal"),
                ("email", "hal@hearth.test"),
                ("password", PASSWORD),
            ],
        )
        .await
        .expect(403, "Registration is by invitation only.");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(smtp.all().is_empty());
    server.finish().await;
}
