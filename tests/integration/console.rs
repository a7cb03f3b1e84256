//! The console end to end in a real headless Chromium, on SQLite and PostgreSQL: sign in,
//! create a patient and an echo request on each pathway, see the strips in deadline order,
//! extend a deadline, complete and undo, watch a second browser update live, read the
//! dashboard, filter the requests and export CSV, upload and view an image, register a SMART
//! app and launch it for the patient. Screenshots of the board and dashboard go to
//! `target/screenshots/`.

use serde_json::{Value, json};

use crate::chrome::{Browser, Driver};
use crate::support::{TestDatabase, TestServer};
use hearth::config::Overrides;

const ADMIN: &str = "admin@hearth.test";
const PASSWORD: &str = "Console-test-1";

fn overrides() -> Overrides {
    Overrides {
        admin_email: Some(ADMIN.into()),
        admin_password: Some(PASSWORD.into()),
        argon2_memory_kib: Some(1024),
        argon2_iterations: Some(1),
        ..Overrides::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = TestServer::start(TestDatabase::sqlite(), overrides()).await;
    end_to_end(&server, &driver, "sqlite").await;
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(database) = TestDatabase::postgres() else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = TestServer::start(database, overrides()).await;
    end_to_end(&server, &driver, "postgres").await;
    server.finish().await;
}

/// The ids of the strips of a patient, per lane.
async fn strips_of(browser: &Browser, name: &str) -> Value {
    browser
        .js(&format!(
            r#"const out = {{}};
            for (const lane of ["purple", "red", "amber", "none"]) {{
              out[lane] = [...document.querySelectorAll(".lane-" + lane + " .strip")]
                .filter(s => s.querySelector(".strip-name").textContent.trim() === {name})
                .map(s => s.dataset.id);
            }}
            return out;"#,
            name = json!(name)
        ))
        .await
}

/// A small real PNG (`width` × `height`, red).
fn png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend(data);
        out.extend(&crc_input);
        out.extend(crc32(&crc_input).to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffff_u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1_u32, 0_u32);
        for byte in bytes {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
    let row: Vec<u8> = std::iter::once(0)
        .chain(std::iter::repeat_n([200, 30, 30], width as usize).flatten())
        .collect();
    let raw: Vec<u8> = std::iter::repeat_n(row, height as usize)
        .flatten()
        .collect();
    // A zlib stream of stored (uncompressed) blocks.
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    zlib.extend(adler32(&raw).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

async fn end_to_end(server: &TestServer, driver: &Driver, backend: &str) {
    let root = server.root();
    let a = driver.browser().await;
    a.sign_in(&root, ADMIN, PASSWORD).await;
    assert_eq!(a.heading().await, "Strip board");

    // A patient: only a name is required; a birth year alone is allowed.
    a.open(&format!("{root}/console/patients/new")).await;
    a.fill("#name", "Grace Hopper").await;
    a.fill("#mrn", "MRN-7").await;
    a.fill("#birth", "19O6").await;
    a.submit("main form button[type=submit]").await;
    assert!(a.text("#birth-error").await.contains("Enter a year"));
    assert_eq!(
        a.el("#name").await.prop("value").await.unwrap().as_deref(),
        Some("Grace Hopper"),
        "what was typed is kept"
    );
    a.fill("#birth", "1906").await;
    a.submit("main form button[type=submit]").await;
    assert_eq!(a.text(".notice").await, "Patient saved.");
    assert_eq!(a.heading().await, "Grace Hopper");
    let url = a.client.current_url().await.unwrap();
    let patient = url
        .path()
        .rsplit('/')
        .next()
        .expect("patient id")
        .to_owned();
    let stored =
        crate::support::json_with_status(server.get(&format!("Patient/{patient}")).await, 200)
            .await;
    assert_eq!(stored["birthDate"], "1906");
    assert_eq!(stored["name"][0]["family"], "Hopper");

    // The triage desk refuses a request without a question, keeping the rest.
    a.open(&format!("{root}/console/triage?find=MRN-7")).await;
    a.click(&format!("input[name=patient][value='{patient}']"))
        .await;
    a.click("label.purple input").await;
    a.submit("#desk button[type=submit]").await;
    assert!(
        a.text("#question-error")
            .await
            .contains("clinical question")
    );
    assert_eq!(
        a.js(&format!(
            "return document.querySelector(\"input[name=patient][value='{patient}']\").checked && document.querySelector('label.purple input').checked"
        ))
        .await,
        json!(true)
    );

    // One request on each pathway.
    for (pathway, question) in [
        ("amber", "Murmur, ?aortic stenosis"),
        ("purple", "Hypotension after MI"),
        ("red", "New breathlessness, LV function?"),
        ("green", "Routine follow-up, seen last month"),
    ] {
        a.open(&format!("{root}/console/triage?find=MRN-7")).await;
        a.click(&format!("input[name=patient][value='{patient}']"))
            .await;
        a.fill("#question", question).await;
        a.click(&format!("label.{pathway} input")).await;
        let expected = if pathway == "green" {
            "no deadline"
        } else {
            "Deadline if triaged now"
        };
        a.until(
            10,
            &format!(
                "return document.getElementById('deadline-preview').textContent.includes({})",
                json!(expected)
            ),
            "the deadline preview",
        )
        .await;
        let sentence = a.el("#sentence").await.prop("value").await.unwrap();
        assert!(
            sentence.is_some_and(|s| !s.is_empty()),
            "a {pathway} sentence is offered"
        );
        a.click("[data-copy=sentence]").await;
        a.until(
            5,
            "return document.querySelector('[data-copy=sentence]').textContent !== 'Copy the sentence'",
            "the copy button to answer",
        )
        .await;
        a.submit("#desk button[type=submit]").await;
        assert!(
            a.text(".notice").await.contains("echo request created"),
            "{pathway}"
        );
    }

    // The strips: one per pending pathway, none for GREEN, each lane in deadline order.
    let strips = strips_of(&a, "Grace Hopper").await;
    for lane in ["purple", "red", "amber"] {
        assert_eq!(
            strips[lane].as_array().unwrap().len(),
            1,
            "{lane}: {strips}"
        );
    }
    assert_eq!(strips["none"], json!([]));
    let ordered = a
        .js(r#"return [...document.querySelectorAll(".lane")].every(lane => {
              const times = [...lane.querySelectorAll(".strip time")].map(t => Date.parse(t.getAttribute("datetime")));
              return times.every((t, i) => i === 0 || times[i - 1] <= t);
            })"#)
        .await;
    assert_eq!(ordered, json!(true), "strips are in deadline order");
    let deadline = |lane: &str| {
        let id = strips[lane][0].as_str().unwrap().to_owned();
        let b = &a;
        async move {
            b.js(&format!(
                "return document.querySelector('.strip[data-id=\"{id}\"] time').getAttribute('datetime')"
            ))
            .await
        }
    };
    let (purple_at, red_at, amber_at) = (
        deadline("purple").await,
        deadline("red").await,
        deadline("amber").await,
    );
    assert!(purple_at.as_str() < red_at.as_str() && red_at.as_str() < amber_at.as_str());
    let red = strips["red"][0].as_str().unwrap().to_owned();
    let amber = strips["amber"][0].as_str().unwrap().to_owned();

    // A second browser watches the board.
    let b = driver.browser().await;
    b.sign_in(&root, ADMIN, PASSWORD).await;
    b.js("window.hearthMarker = 42; return true").await;
    b.until(
        10,
        "return document.getElementById('live').textContent === 'Live'",
        "the live feed",
    )
    .await;

    // Extend the AMBER deadline: a reason is required.
    a.open(&format!("{root}/console/requests/{amber}/extend"))
        .await;
    a.fill("#hours", "4").await;
    a.submit("main form button[type=submit]").await;
    assert!(a.text("#reason-error").await.contains("reason"));
    assert_eq!(
        a.el("#hours").await.prop("value").await.unwrap().as_deref(),
        Some("4")
    );
    a.fill("#reason", "Patient in theatre").await;
    a.submit("main form button[type=submit]").await;
    assert!(a.text(".notice").await.contains("deadline extended"));
    let extended = a
        .js(&format!(
            "return document.querySelector('.strip[data-id=\"{amber}\"] time').getAttribute('datetime')"
        ))
        .await;
    assert_ne!(extended, amber_at);
    b.until(
        15,
        &format!(
            "const t = document.querySelector('.strip[data-id=\"{amber}\"] time'); return window.hearthMarker === 42 && t !== null && t.getAttribute('datetime') === {}",
            extended
        ),
        "the second browser to show the new deadline without a reload",
    )
    .await;

    // Complete RED, then undo.
    a.submit(&format!(".strip[data-id='{red}'] button.done"))
        .await;
    assert!(a.text(".notice").await.contains("marked as done"));
    assert_eq!(strips_of(&a, "Grace Hopper").await["red"], json!([]));
    a.el(&format!(".lane-done .done-row[data-id='{red}']"))
        .await;
    b.until(
        15,
        &format!("return window.hearthMarker === 42 && document.querySelector('.lane-red .strip[data-id=\"{red}\"]') === null && document.querySelector('.done-row[data-id=\"{red}\"]') !== null"),
        "the second browser to see RED done",
    )
    .await;
    a.submit(&format!(".done-row[data-id='{red}'] button"))
        .await;
    assert!(a.text(".notice").await.contains("back on the board"));
    assert_eq!(strips_of(&a, "Grace Hopper").await["red"], json!([red]));
    let stored = crate::support::json_with_status(
        server.get(&format!("ServiceRequest/{red}/_history")).await,
        200,
    )
    .await;
    assert_eq!(
        stored["entry"].as_array().map(Vec::len),
        Some(3),
        "created, completed, undone: three versions"
    );
    b.until(
        15,
        &format!("return window.hearthMarker === 42 && document.querySelector('.lane-red .strip[data-id=\"{red}\"]') !== null"),
        "the second browser to see RED back",
    )
    .await;
    a.screenshot(&format!("board-{backend}")).await;
    b.close().await;

    // The dashboard.
    a.open(&format!("{root}/console/dashboard")).await;
    assert_eq!(a.heading().await, "Dashboard");
    let days = a
        .js("return document.querySelectorAll('#trend g[data-date]').length")
        .await;
    assert_eq!(days, json!(15));
    let received_today = a
        .js("const g = [...document.querySelectorAll('#trend g[data-date]')]; return Number(g[g.length - 1].dataset.received)")
        .await;
    assert_eq!(received_today, json!(4));
    assert_eq!(a.text(".card-purple strong").await, "1");
    a.screenshot(&format!("dashboard-{backend}")).await;
    a.submit("a[href='/console/dashboard?days=30']").await;
    a.until(
        10,
        "return document.querySelectorAll('#trend g[data-date]').length === 30",
        "the 30-day chart",
    )
    .await;

    // The requests table and its CSV.
    a.open(&format!("{root}/console/requests?pathway=amber&q=MRN-7"))
        .await;
    assert_eq!(a.text("#total").await, "1 request");
    a.el(&format!("#requests tr[data-id='{amber}']")).await;
    let csv = a
        .js("return fetch(document.getElementById('csv').href, {credentials: 'same-origin'}).then(r => r.text())")
        .await;
    let csv = csv.as_str().expect("CSV text");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,patient,mrn,ward"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with(&format!("{amber},Grace Hopper,MRN-7")),
        "{csv}"
    );
    assert!(
        lines[1].contains("Patient in theatre") || lines[1].contains(",1,"),
        "{csv}"
    );

    // Upload and view an image; a file that only claims to be one is refused.
    let folder = tempfile::tempdir().expect("temp dir");
    let image = folder.path().join("chest.png");
    std::fs::write(&image, png(64, 48)).expect("image written");
    let fake = folder.path().join("fake.png");
    std::fs::write(&fake, b"MZ\x90\x00 this is a program, not a picture").expect("written");
    a.open(&format!("{root}/console/patients/{patient}")).await;
    a.click("details.upload summary").await;
    a.el("#file")
        .await
        .send_keys(fake.to_str().unwrap())
        .await
        .expect("file chosen");
    a.submit("details.upload button[type=submit]").await;
    assert!(a.text(".error").await.contains("is not a PNG"));
    a.click("details.upload summary").await;
    let open = a
        .js("return document.querySelector('details.upload').open")
        .await;
    if open != json!(true) {
        a.click("details.upload summary").await;
    }
    a.el("#file")
        .await
        .send_keys(image.to_str().unwrap())
        .await
        .expect("file chosen");
    a.fill("#title", "Chest X-ray").await;
    a.submit("details.upload button[type=submit]").await;
    assert_eq!(a.text(".notice").await, "Image uploaded.");
    a.until(
        10,
        "const i = document.querySelector('.timeline img'); return i !== null && i.complete && i.naturalWidth === 64",
        "the image to show",
    )
    .await;

    // Register a confidential SMART app: its secret is shown once.
    a.open(&format!("{root}/console/admin/apps")).await;
    a.fill("#app-name", "Growth Chart").await;
    a.click("input[name=kind][value=confidential]").await;
    a.fill("#redirect-uris", "https://growth.example.org/callback")
        .await;
    a.fill("#launch-url", &format!("{root}/healthz")).await;
    a.submit("form[action='/console/admin/apps'] button[type=submit]")
        .await;
    let secret = a.text("#client-secret").await;
    assert!(secret.len() >= 40, "{secret}");
    let client_id = a.text("#client-id").await;
    a.open(&format!("{root}/console/admin/apps")).await;
    assert!(a.all("#client-secret").await.is_empty(), "shown only once");
    assert!(a.text("#apps").await.contains("Growth Chart"));

    // Launch it for the patient (EHR launch).
    a.open(&format!("{root}/console/patients/{patient}")).await;
    a.el(&format!(
        "select[name=client_id] option[value='{client_id}']"
    ))
    .await;
    a.submit("form[action='/console/launch'] button[type=submit]")
        .await;
    let landed = a.client.current_url().await.unwrap();
    assert_eq!(landed.path(), "/healthz");
    let query: std::collections::HashMap<String, String> =
        landed.query_pairs().into_owned().collect();
    assert_eq!(query["iss"], server.base);
    let context = server
        .auth()
        .launch_context(&query["launch"])
        .await
        .expect("launch lookup")
        .expect("a current launch");
    assert_eq!(context.patient.as_deref(), Some(patient.as_str()));

    a.close().await;
}
