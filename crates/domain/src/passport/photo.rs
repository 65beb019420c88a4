//! The child's photo, so that staff can tell they have the right child in an emergency:
//! one `DocumentReference` per child in the about-me section (type "Photo of the child",
//! `content.attachment` the image, `meta.tag` [`FORM_SYSTEM`]`|photo`), checked and cleaned
//! by [`crate::photo::clean`] (size limit, location metadata removed) before anything is
//! stored. A new photo is a new version of the same item: the earlier ones stay in its
//! history. Like every item, a family member's photo waits for review and a professional's
//! is checked by them; it is decided and audited like the rest of the passport.

use base64::Engine;
use serde_json::{Value, json};

use super::change::write_item;
use super::forms::FORM_SYSTEM;
use super::*;
use crate::Domain;
use crate::guard::Caller;

/// The form tag code that marks the child's photo.
pub const PHOTO_FORM: &str = "photo";

/// Whether an item is the child's photo.
pub fn is_photo(v: &Value) -> bool {
    v["resourceType"] == "DocumentReference"
        && v["meta"]["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["system"] == FORM_SYSTEM && t["code"] == PHOTO_FORM)
}

/// Stores `upload` as the child's photo (a new version of the current one, if any), as
/// `caller` may. Returns the item's id. A photo that is too large, not a JPEG or PNG, or
/// not whole is refused with the reason, and nothing is stored.
pub async fn set_photo(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    upload: &[u8],
) -> Result<String, Failed> {
    let photo = crate::photo::clean(upload).map_err(|e| Failed::Invalid(e.to_string()))?;
    let current_id = compartment(d, patient)
        .await?
        .into_iter()
        .find(|v| is_photo(v) && is_current(v))
        .and_then(|v| v["id"].as_str().map(str::to_owned));
    let current = match &current_id {
        Some(id) => Some(item(d, caller, patient, "DocumentReference", id).await?.0),
        None => None,
    };
    let id = current_id.unwrap_or_else(crate::onboarding::new_id);
    let now = crate::clock::now_us();
    let mut v = json!({
        "resourceType": "DocumentReference",
        "id": id,
        "meta": { "tag": [
            access::Section::AboutMe.tag(),
            { "system": FORM_SYSTEM, "code": PHOTO_FORM, "display": "Photo" },
        ] },
        "status": "current",
        "type": { "text": "Photo of the child" },
        "description": "Photo",
        "subject": { "reference": format!("Patient/{patient}") },
        "date": crate::clock::instant(now),
        "content": [{ "attachment": {
            "contentType": photo.content_type,
            "data": base64::engine::general_purpose::STANDARD.encode(&photo.bytes),
            "size": photo.bytes.len(),
            "title": "Photo",
        } }],
    });
    set_awaiting(&mut v, is_family(caller));
    write_item(d, caller, patient, v, current.as_ref()).await?;
    Ok(id)
}

/// The photo `id` of the child, as `caller` may see it: its media type and bytes.
pub async fn photo(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    id: &str,
) -> Result<(String, Vec<u8>), Failed> {
    let (_, v) = item(d, caller, patient, "DocumentReference", id).await?;
    if !is_photo(&v) {
        return Err(Failed::NotFound);
    }
    let attachment = &v["content"][0]["attachment"];
    let bytes = attachment["data"]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or(Failed::NotFound)?;
    let content_type = attachment["contentType"]
        .as_str()
        .filter(|t| matches!(*t, "image/jpeg" | "image/png"))
        .ok_or(Failed::NotFound)?;
    Ok((content_type.to_owned(), bytes))
}
