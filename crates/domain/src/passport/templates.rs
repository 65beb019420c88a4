//! Published templates. The shipped Questionnaires (`crates/templates`) are published into
//! the store through `Records` — by the regional admin from `/admin/templates` (preview,
//! then publish), or as the operator the first time a form of one is used — and a newer
//! shipped version becomes a new version of the stored Questionnaire only when the
//! regional admin publishes it. Every answer keeps the version it was given against
//! (`QuestionnaireResponse.questionnaire` is `url|version`), and the stored Questionnaire's
//! history keeps every version it could name.

use passport_store::StoreError;
use serde_json::Value;

use crate::Domain;
use crate::records::{Agent, new_version};

/// A shipped template (as compiled into the binary).
pub fn shipped(id: &str) -> Option<Value> {
    templates::questionnaire(id)
}

/// The published version of a template: the stored Questionnaire, or the shipped one if
/// it has not been published yet.
pub async fn published(d: &Domain, id: &str) -> Result<Value, StoreError> {
    if let Some(s) = d
        .records()
        .read("Questionnaire", id)
        .await?
        .filter(|s| !s.deleted)
        && let Ok(v) = serde_json::from_slice::<Value>(&s.body)
    {
        return Ok(v);
    }
    // The ids the passport asks for are its own forms', each a shipped template (tested).
    Ok(shipped(id).unwrap_or(Value::Null))
}

/// One template's state: the version shipped with this release and the one published.
#[derive(Debug, Clone, serde::Serialize)]
pub struct State {
    pub id: String,
    pub title: String,
    pub shipped_version: String,
    pub published_version: Option<String>,
}

/// Every shipped template and what is published of it.
pub async fn states(d: &Domain) -> Result<Vec<State>, StoreError> {
    let mut out = Vec::new();
    for q in templates::questionnaires() {
        let id = q["id"].as_str().unwrap_or_default().to_owned();
        let published = d
            .records()
            .read("Questionnaire", &id)
            .await?
            .filter(|s| !s.deleted)
            .and_then(|s| serde_json::from_slice::<Value>(&s.body).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned));
        out.push(State {
            title: q["title"].as_str().unwrap_or(&id).to_owned(),
            shipped_version: q["version"].as_str().unwrap_or_default().to_owned(),
            published_version: published,
            id,
        });
    }
    Ok(out)
}

/// Publishes the shipped version of template `id` (a new version of the stored
/// Questionnaire) unless that version is already published. Returns whether it wrote.
pub async fn publish(d: &Domain, by: &Agent, id: &str) -> Result<bool, PublishError> {
    let Some(q) = shipped(id) else {
        return Err(PublishError::Unknown(id.to_owned()));
    };
    let current = d
        .records()
        .read("Questionnaire", id)
        .await?
        .filter(|s| !s.deleted);
    if let Some(c) = &current
        && serde_json::from_slice::<Value>(&c.body).is_ok_and(|v| v["version"] == q["version"])
    {
        return Ok(false);
    }
    let write = new_version(q, current.as_ref())
        .map_err(|e| PublishError::Invalid(format!("template {id}: {}", e.0)))?;
    match d.records().write(by, write).await {
        Ok(_) => Ok(true),
        // Another server published it at the same moment.
        Err(StoreError::VersionConflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Why a template was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("there is no template {0}")]
    Unknown(String),
    /// A shipped template the validator refuses: a defect of the release.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The published template `id`, publishing the shipped version first if nothing is
/// published yet (so every answer names a Questionnaire version that is stored).
pub async fn in_use(d: &Domain, id: &str) -> Result<Value, PublishError> {
    if d.records()
        .read("Questionnaire", id)
        .await?
        .filter(|s| !s.deleted)
        .is_none()
    {
        publish(d, &Agent::operator("template published on first use"), id).await?;
    }
    Ok(published(d, id).await?)
}
