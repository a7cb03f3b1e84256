//! Outgoing mail, the only module that names lettre: SMTP from `HEARTH_SMTP_URL`
//! (`smtp://` plain, `smtp://…?tls=required` STARTTLS, `smtps://` implicit TLS, credentials in
//! the URL), or, when SMTP is not configured, one `.eml` file per message under
//! `{data-dir}/outbox/`. Every message has a plain-text and an HTML part.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One message.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    /// The address.
    pub to: &'a str,
    /// Subject line.
    pub subject: &'a str,
    /// Plain-text part.
    pub text: &'a str,
    /// HTML part.
    pub html: &'a str,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// Sends mail. Cheap to share behind an `Arc`.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted by the SMTP server.
    Smtp,
    /// Written to this file.
    File(PathBuf),
}

impl Mailer {
    /// A mailer for `smtp_url`, or writing files into `outbox_dir` when there is none. `from`
    /// is a mailbox such as `Hearth <hearth@example.org>`.
    pub fn new(smtp_url: Option<&str>, from: &str, outbox_dir: PathBuf) -> Result<Mailer, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("'{from}' is not a mail address: {e}"))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("cannot use the SMTP URL: {e}"))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&outbox_dir)
                    .map_err(|e| format!("cannot create {}: {e}", outbox_dir.display()))?;
                Transport::Files(AsyncFileTransport::new(&outbox_dir), outbox_dir)
            }
        };
        Ok(Mailer { from, transport })
    }

    /// Whether messages go to files rather than a server.
    pub fn writes_files(&self) -> bool {
        matches!(self.transport, Transport::Files(..))
    }

    /// Checks that an address can be written to a message.
    pub fn valid_address(address: &str) -> bool {
        address.parse::<Mailbox>().is_ok()
    }

    /// Sends one message.
    pub async fn send(&self, email: &Email<'_>) -> Result<Delivered, String> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| format!("'{}' is not a mail address: {e}", email.to))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .multipart(MultiPart::alternative_plain_html(
                email.text.to_owned(),
                email.html.to_owned(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| Delivered::Smtp)
                .map_err(|e| format!("SMTP: {e}")),
            Transport::Files(files, dir) => files
                .send(message)
                .await
                .map(|id| Delivered::File(dir.join(format!("{id}.eml"))))
                .map_err(|e| format!("cannot write the message file: {e}")),
        }
    }
}
