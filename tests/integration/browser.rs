//! Helpers for the console tests: a real SMTP server (mailin-embedded) that keeps what it
//! receives, parsed by a real MIME parser; and a cookie-keeping HTTP client that reads the CSRF
//! token out of each form as a browser would submit it.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::{self, Response as SmtpResponse};
use mailin_embedded::{Handler, Server, SslConfig};

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Envelope recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// The plain-text part, decoded.
    pub text: String,
    /// The HTML part, decoded.
    pub html: String,
}

impl Received {
    /// The first link to the console page `page` in the plain-text part.
    pub fn link(&self, page: &str) -> String {
        let marker = format!("/console/{page}?token=");
        let at = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {page} link in: {}", self.text));
        let start = self.text[..at].rfind("http").expect("link start");
        let end = self.text[at..]
            .find(char::is_whitespace)
            .map_or(self.text.len(), |e| at + e);
        self.text[start..end].to_owned()
    }
}

#[derive(Clone, Default)]
struct Collector {
    inbox: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(&mut self, _: &str, _: &str, _: bool, to: &[String]) -> SmtpResponse {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> SmtpResponse {
        let Some(message) = mail_parser::MessageParser::default().parse(&self.data) else {
            return response::INTERNAL_ERROR;
        };
        let received = Received {
            to: self.to.clone(),
            subject: message.subject().unwrap_or_default().to_owned(),
            text: message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            html: message
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
        };
        self.inbox.lock().unwrap().push(received);
        response::OK
    }
}

/// An SMTP server on a free local port, running until the test process ends.
pub struct MailServer {
    /// `smtp://127.0.0.1:PORT`.
    pub url: String,
    inbox: Arc<Mutex<Vec<Received>>>,
}

impl MailServer {
    /// Starts one.
    pub fn start() -> MailServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind smtp");
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let collector = Collector::default();
        let inbox = collector.inbox.clone();
        let mut server = Server::new(collector);
        server
            .with_name("test.smtp")
            .with_ssl(SslConfig::None)
            .expect("no TLS")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        MailServer { url, inbox }
    }

    /// Every message received so far.
    pub fn all(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    /// Messages to `to` so far.
    pub fn to(&self, to: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|m| {
                m.to.iter()
                    .any(|t| t.trim_matches(['<', '>']).eq_ignore_ascii_case(to))
            })
            .collect()
    }

    /// Waits (up to 20 s) until `to` has received `count` messages; returns the newest.
    pub async fn wait(&self, to: &str, count: usize) -> Received {
        for _ in 0..200 {
            let mails = self.to(to);
            if mails.len() >= count {
                return mails[count - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{to} did not receive mail #{count}; received: {:?}",
            self.all()
        );
    }
}

/// A page as a browser receives it.
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// The `Location` of a redirect.
    pub location: Option<String>,
    /// The HTML.
    pub body: String,
}

impl Page {
    /// The value of the first hidden CSRF field.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in: {}", self.body))
            + marker.len();
        let end = self.body[at..].find('"').unwrap();
        self.body[at..at + end].to_owned()
    }

    /// Asserts the status and that the body contains `text`.
    pub fn expect(&self, status: u16, text: &str) -> &Page {
        assert_eq!(
            self.status, status,
            "unexpected status; page: {}",
            self.body
        );
        assert!(
            self.body.contains(text),
            "'{text}' not on the page: {}",
            self.body
        );
        self
    }
}

/// A browser: keeps cookies, does not follow redirects (tests look at them).
pub struct Browser {
    client: reqwest::Client,
    root: String,
}

impl Browser {
    /// A new browser for the server at `root`.
    pub fn new(root: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            root: root.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.root)
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: response.text().await.unwrap(),
        }
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> Page {
        Browser::page(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// `POST` a form as is (no CSRF added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Browser::page(
            self.client
                .post(self.url(path))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Opens `form_page`, then posts `fields` to `action` with the page's CSRF token.
    pub async fn submit(&self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(action, &all).await
    }

    /// Signs in; returns the answer to the login form.
    pub async fn login(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/console/login",
            "/console/login",
            &[("email", email), ("password", password)],
        )
        .await
    }
}
