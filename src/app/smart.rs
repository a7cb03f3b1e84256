//! The SMART authorization server wired into the server: its patient directory searches
//! through the FHIR layer.

use crate::auth::http::{Directory, Found};
use crate::fhir::ResourceId;
use crate::rest::RestState;
use crate::rest::interactions::search::parse_search;

/// Patients for the consent page's picker, found by the ordinary search.
pub struct RestDirectory(pub RestState);

impl Directory for RestDirectory {
    fn patients(&self, name: &str) -> Found<'_, Vec<(String, String)>> {
        let name = name.trim().to_owned();
        Box::pin(async move {
            let mut params = vec![
                ("_count".to_owned(), "50".to_owned()),
                ("_sort".to_owned(), "family,given".to_owned()),
            ];
            if !name.is_empty() {
                params.push(("name".to_owned(), name));
            }
            let query = parse_search(&self.0, vec!["Patient".into()], &params, false)
                .map_err(|e| format!("patient search: HTTP {}", e.status()))?;
            let page = self
                .0
                .storage
                .search(query)
                .await
                .map_err(|e| e.to_string())?;
            Ok(page
                .matches
                .iter()
                .map(|hit| {
                    let value: serde_json::Value =
                        serde_json::from_slice(&hit.content).unwrap_or_default();
                    (hit.id.clone(), patient_label(&value, &hit.id))
                })
                .collect())
        })
    }

    fn patient_exists(&self, id: &str) -> Found<'_, bool> {
        let id = id.to_owned();
        Box::pin(async move {
            let Ok(id) = ResourceId::parse(&id) else {
                return Ok(false);
            };
            Ok(self
                .0
                .current_value("Patient", &id)
                .await
                .map_err(|e| format!("HTTP {}", e.status()))?
                .is_some())
        })
    }
}

/// "Family, Given (born 1970-01-01) · id".
fn patient_label(patient: &serde_json::Value, id: &str) -> String {
    let name = &patient["name"][0];
    let family = name["family"].as_str().unwrap_or_default();
    let given: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut label = match (family.is_empty(), given.is_empty()) {
        (false, false) => format!("{family}, {}", given.join(" ")),
        (false, true) => family.to_owned(),
        (true, false) => given.join(" "),
        (true, true) => name["text"].as_str().unwrap_or("(no name)").to_owned(),
    };
    if let Some(born) = patient["birthDate"].as_str() {
        label.push_str(&format!(" (born {born})"));
    }
    label.push_str(&format!(" · {id}"));
    label
}

/// A `hearth token`, `hearth client`, `hearth keys` or `hearth launch` command.
#[derive(Debug, Clone)]
pub enum SmartCommand {
    /// Print an operator token.
    Token {
        /// Scopes.
        scope: String,
        /// Seconds.
        lifetime: i64,
    },
    /// Register a client.
    ClientAdd(crate::auth::clients::NewClient),
    /// List clients.
    ClientList,
    /// Disable or enable a client.
    ClientDisable {
        /// The client_id.
        id: String,
        /// Disable (true) or enable.
        disabled: bool,
    },
    /// Rotate the signing keys.
    KeysRotate,
    /// Issue an EHR launch value.
    Launch(crate::auth::grants::LaunchContext),
}

/// Runs a SMART command against the configured database; answers what to print.
pub async fn smart_command(
    config: &crate::config::Config,
    command: SmartCommand,
) -> Result<String, super::AppError> {
    use super::AppError;
    let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
    let calendar = super::calendar_settings(&config.triage)?;
    let storage = super::open_storage(config, clock.clone()).await?;
    let public_url = config.public_url(config.addr);
    let state = super::rest_state(storage, &public_url, clock.clone(), calendar).await?;
    let accounts = super::people::accounts(config, &state, &public_url, clock.clone())?;
    let auth = super::open_auth(&state, &accounts, &public_url, clock).await?;
    let failed = |e: String| AppError::Accounts(e);
    match command {
        SmartCommand::Token { scope, lifetime } => {
            if lifetime <= 0 || lifetime > 24 * 3600 {
                return Err(failed(
                    "--lifetime must be between 1 and 86400 seconds".into(),
                ));
            }
            let scopes = crate::auth::Scopes::parse(&scope);
            if scopes.resources.is_empty() {
                return Err(failed(format!(
                    "'{scope}' has no resource scope such as system/*.cruds"
                )));
            }
            auth.operator_token(&scopes.to_string(), lifetime)
                .map_err(|e| failed(e.to_string()))
        }
        SmartCommand::ClientAdd(new) => {
            let registered = auth.add_client(new).await.map_err(failed)?;
            Ok(serde_json::to_string(&registered).unwrap_or_default())
        }
        SmartCommand::ClientList => {
            let clients = auth.clients().await.map_err(|e| failed(e.to_string()))?;
            Ok(clients
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "client_id": c.id,
                        "name": c.name,
                        "kind": c.kind,
                        "status": c.status,
                        "redirect_uris": serde_json::from_str::<serde_json::Value>(&c.redirect_uris).unwrap_or_default(),
                        "scope": c.scope,
                        "jwks_url": c.jwks_url,
                    })
                    .to_string()
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        SmartCommand::ClientDisable { id, disabled } => {
            if auth
                .set_client_disabled(&id, disabled)
                .await
                .map_err(|e| failed(e.to_string()))?
            {
                Ok(serde_json::json!({"client_id": id, "status": if disabled { "disabled" } else { "active" }}).to_string())
            } else {
                Err(failed(format!("no client has the id '{id}'")))
            }
        }
        SmartCommand::KeysRotate => {
            auth.rotate_keys()
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok(auth.jwks().to_string())
        }
        SmartCommand::Launch(context) => {
            let launch = auth
                .issue_launch(&context)
                .await
                .map_err(|e| failed(e.description))?;
            Ok(
                serde_json::json!({"launch": launch, "iss": format!("{public_url}/fhir")})
                    .to_string(),
            )
        }
    }
}
