//! The messages accounts send, and the outbox that delivers them: a mail is a row in the
//! database before the request that asked for it returns; a background task sends due rows,
//! retrying with growing delays, and marks a mail failed after the last attempt so that an
//! administrator sees it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::mail::{Delivered, Email, Mailer};
use crate::storage::Storage;
use crate::storage::accounts::NewMail;

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A message with one action link, in both parts.
fn with_link(
    to: &str,
    subject: &str,
    greeting: &str,
    lines: &[&str],
    action: &str,
    link: &str,
) -> NewMail {
    let mut text = format!("{greeting}\n\n");
    let mut html = format!("<p>{}</p>\n", escape(greeting));
    for line in lines {
        text.push_str(line);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>\n", escape(line)));
    }
    text.push_str(&format!("{action}: {link}\n\n— Hearth\n"));
    html.push_str(&format!(
        "<p><a href=\"{}\">{}</a></p>\n<p>— Hearth</p>\n",
        escape(link),
        escape(action)
    ));
    NewMail {
        recipient: to.to_owned(),
        subject: subject.to_owned(),
        text_body: text,
        html_body: format!("<!doctype html><html><body>\n{html}</body></html>\n"),
        link: Some(link.to_owned()),
    }
}

/// Confirms a registration.
pub fn verification(to: &str, name: &str, link: &str) -> NewMail {
    with_link(
        to,
        "Confirm your email address for Hearth",
        &format!("Hello {name},"),
        &[
            "Please confirm your email address to finish creating your Hearth account.",
            "The link works once and expires in 24 hours. If you did not register, ignore this message.",
        ],
        "Confirm my email address",
        link,
    )
}

/// Invites a person an administrator added.
pub fn invitation(to: &str, name: &str, role: &str, link: &str) -> NewMail {
    with_link(
        to,
        "You are invited to Hearth",
        &format!("Hello {name},"),
        &[
            &format!("An administrator has invited you to Hearth as {role}."),
            "Follow the link to confirm your email address and choose a password. It works once and expires in 24 hours.",
        ],
        "Accept the invitation",
        link,
    )
}

/// A password reset.
pub fn reset(to: &str, name: &str, link: &str) -> NewMail {
    with_link(
        to,
        "Reset your Hearth password",
        &format!("Hello {name},"),
        &[
            "Someone asked to reset the password of your Hearth account.",
            "The link works once and expires in 1 hour. If it was not you, ignore this message: your password is unchanged.",
        ],
        "Choose a new password",
        link,
    )
}

/// Someone registered with an address that already has an account.
pub fn already_registered(to: &str, name: &str, link: &str) -> NewMail {
    with_link(
        to,
        "Your Hearth account",
        &format!("Hello {name},"),
        &[
            "Someone tried to register a new Hearth account with this email address, which already has one.",
            "If it was you, sign in, or reset your password if you forgot it. Otherwise ignore this message.",
        ],
        "Reset my password",
        link,
    )
}

/// Sending policy.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Attempts before a mail is marked failed.
    pub max_attempts: i32,
    /// Delay after the first failure; doubled after each further one, at most an hour.
    pub first_retry: Duration,
}

/// How long a claimed mail is left to its sender before another node may try it.
const LEASE_MS: i64 = 120_000;

/// Sends due mail until `stop` is dropped, waking on `wake` or every few seconds.
pub async fn deliver(
    storage: Storage,
    mailer: Arc<Mailer>,
    delivery: Delivery,
    wake: Arc<tokio::sync::Notify>,
    clock: SharedClock,
) {
    loop {
        match storage.claim_due_mail(20, LEASE_MS).await {
            Ok(batch) => {
                for mail in batch {
                    send_one(&storage, &mailer, delivery, clock.now_millis(), mail).await;
                }
            }
            Err(e) => tracing::warn!("mail outbox: {e}"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

async fn send_one(
    storage: &Storage,
    mailer: &Mailer,
    delivery: Delivery,
    now: i64,
    mail: crate::storage::accounts::OutboxRow,
) {
    let email = Email {
        to: &mail.recipient,
        subject: &mail.subject,
        text: &mail.text_body,
        html: &mail.html_body,
    };
    let attempts = mail.attempts + 1;
    let outcome = match mailer.send(&email).await {
        Ok(delivered) => {
            match (delivered, &mail.link) {
                (Delivered::File(path), Some(link)) => tracing::info!(
                    "mail to {} written to {}; its link: {link}",
                    mail.recipient,
                    path.display()
                ),
                (Delivered::File(path), None) => {
                    tracing::info!("mail to {} written to {}", mail.recipient, path.display());
                }
                (Delivered::Smtp, _) => tracing::info!("mail to {} sent", mail.recipient),
            }
            Ok(())
        }
        Err(error) => {
            let next = (attempts < delivery.max_attempts).then(|| {
                let factor = 1u32 << (attempts - 1).clamp(0, 16);
                let delay = delivery
                    .first_retry
                    .saturating_mul(factor)
                    .min(Duration::from_secs(3600));
                now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2)
            });
            match next {
                Some(_) => tracing::warn!(
                    "mail to {} not sent (attempt {attempts}): {error}; will retry",
                    mail.recipient
                ),
                None => tracing::error!(
                    "mail to {} failed after {attempts} attempts: {error}",
                    mail.recipient
                ),
            }
            Err((error, next))
        }
    };
    if let Err(e) = storage.mail_attempted(mail.id, attempts, outcome).await {
        tracing::warn!("mail outbox: cannot record the attempt: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_carry_the_link_and_html_is_escaped() {
        let mail = verification("a@b.org", "<Ann>", "http://h/console/verify?token=x&y");
        assert!(mail.text_body.contains("http://h/console/verify?token=x&y"));
        assert!(
            mail.html_body
                .contains("href=\"http://h/console/verify?token=x&amp;y\"")
        );
        assert!(mail.html_body.contains("&lt;Ann&gt;"));
        assert_eq!(
            mail.link.as_deref(),
            Some("http://h/console/verify?token=x&y")
        );
    }
}
