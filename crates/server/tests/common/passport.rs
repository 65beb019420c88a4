//! The passport pages' shared world: the standard region (`Spec::standard`) with Mia's
//! school in her care team, and how the suites sign people in and pick form options.

use super::browser::{Browser, PASSWORD};
use super::fixture;
use passport_server::region::{self, Region, Spec};

pub struct World {
    pub store: std::sync::Arc<passport_server::Domain>,
    pub region: Region,
    pub mia: String,
}

pub async fn world(url: &str) -> World {
    let store =
        passport_server::Domain::open(domain::Settings::admin(url, "https://passport.test"))
            .await
            .unwrap();
    let mut spec = Spec::standard(PASSWORD);
    // Mia's school is in her care team (schools see allergies and medicines by default).
    spec.children[0].care_team.push("school".into());
    let region = region::seed(&store, &fixture(), &spec).await.unwrap();
    let mia = region.child("mia").to_owned();
    World { store, region, mia }
}

/// A member of staff of the world, signed in (password and TOTP).
pub async fn staff(base: &str, w: &World, email: &str) -> Browser {
    let mut b = Browser::new(base).unescaping_slashes();
    b.sign_in_staff(email, &w.region.staff(email).totp_secret)
        .await;
    b
}

/// A family member of the world, signed in.
pub async fn family(base: &str, email: &str) -> Browser {
    let mut b = Browser::new(base).unescaping_slashes();
    let p = b.sign_in(email, PASSWORD).await;
    assert_eq!(p.status, 303, "{}", p.body);
    b
}

/// The value a select offers for `label`.
pub fn option_value(body: &str, label: &str) -> String {
    let end = body
        .find(&format!(">{label}</option>"))
        .unwrap_or_else(|| panic!("no option {label}"));
    let start = body[..end].rfind("value=\"").unwrap() + 7;
    body[start..end].split('"').next().unwrap().to_owned()
}
