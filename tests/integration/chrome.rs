//! A real headless Chromium driven through WebDriver (chromedriver + fantoccini), for the
//! console's end-to-end tests. When chromedriver is not installed the tests are skipped with a
//! printed reason, unless `HEARTH_REQUIRE_BROWSER` is set (CI sets it), where that is a failure.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A chromedriver process; each `browser()` is a separate Chromium with its own profile.
pub struct Driver {
    child: Child,
    url: String,
    /// The browsers' profiles; every Chromium of this driver runs with one under it, so all
    /// of them can be found and stopped, even after a failed test.
    profiles: tempfile::TempDir,
    browsers: std::sync::atomic::AtomicUsize,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.profiles.path())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

impl Driver {
    /// Starts chromedriver, or `None` (printing why) when there is none and none is required.
    pub async fn start() -> Option<Driver> {
        let Some(driver) = find("chromedriver") else {
            if std::env::var_os("HEARTH_REQUIRE_BROWSER").is_some() {
                panic!(
                    "HEARTH_REQUIRE_BROWSER is set but chromedriver is not installed (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!(
                "skipping the browser test: chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Driver {
                    child,
                    url,
                    profiles: tempfile::tempdir().expect("profile folder"),
                    browsers: std::sync::atomic::AtomicUsize::new(0),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromedriver did not start on port {port}");
    }

    /// A new headless Chromium.
    pub async fn browser(&self) -> Browser {
        let binary = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|p| find(p))
            .expect("chromium is installed");
        let n = self
            .browsers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = self.profiles.path().join(format!("browser-{n}"));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    "--disable-dev-shm-usage", "--window-size=1280,1100",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        Browser { client }
    }
}

/// One browser.
pub struct Browser {
    pub client: Client,
}

impl Browser {
    /// Opens `url` and waits for the page.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("page opens");
    }

    /// The element matching `css`, waiting up to 10 s for it.
    pub async fn el(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Every element matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<fantoccini::elements::Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
    }

    /// Types `text` into the field `css` (cleared first).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.el(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) {
        self.el(css).await.click().await.expect("click");
    }

    /// Clicks `css` and waits for the new page it loads.
    pub async fn submit(&self, css: &str) {
        self.js("window.hearthOldPage = true; return true").await;
        self.click(css).await;
        self.until(
            15,
            "return window.hearthOldPage === undefined && document.readyState === 'complete'",
            &format!("the page after clicking {css}"),
        )
        .await;
    }

    /// The text of `css`.
    pub async fn text(&self, css: &str) -> String {
        self.el(css).await.text().await.expect("text")
    }

    /// The `<h1>` of the page.
    pub async fn heading(&self) -> String {
        self.text("h1").await
    }

    /// Runs a script; its return value.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits (up to `seconds`) until `script` returns true.
    pub async fn until(&self, seconds: u64, script: &str, what: &str) {
        for _ in 0..seconds * 10 {
            if self.js(script).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self.client.current_url().await.map(|u| u.to_string());
        let main = self
            .js("const m = document.querySelector('main'); return m ? m.innerText : document.body.innerText")
            .await;
        self.screenshot("failure").await;
        panic!("timed out waiting for {what}; the page is {url:?}: {main}");
    }

    /// Saves a screenshot under `target/screenshots/`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot saved");
    }

    /// Signs in on the console.
    pub async fn sign_in(&self, root: &str, email: &str, password: &str) {
        self.open(&format!("{root}/console/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("form button[type=submit]").await;
        self.el("#board").await;
    }

    /// Ends the browser.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
