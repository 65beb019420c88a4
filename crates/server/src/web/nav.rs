//! The header every page shows a signed-in person: their name, the places they use most,
//! and signing out (a POST with the session's CSRF token). Resolved once per request by a
//! layer and read by `templates::page`, so no handler has to remember it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use super::session;
use crate::AppState;

/// What the header shows.
#[derive(Debug, Clone, Serialize)]
pub struct Nav {
    pub name: String,
    pub csrf_token: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub href: &'static str,
    pub text: &'static str,
}

tokio::task_local! {
    static SIGNED_IN: Option<Nav>;
}

/// The header of the request being served, if someone is fully signed in.
pub fn current() -> Option<Nav> {
    SIGNED_IN.try_with(Clone::clone).ok().flatten()
}

/// Resolves the header for the pages (not for their static files).
pub async fn layer(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/assets/") {
        return next.run(req).await;
    }
    if req.method() != axum::http::Method::GET {
        let found = session::current(&st, req.headers()).await;
        return SIGNED_IN.scope(nav_of(found), next.run(req)).await;
    }
    // A GET: the handler's own lookup of the session reuses this one.
    let headers = req.headers().clone();
    session::remembering(&st, &headers, |found| {
        SIGNED_IN.scope(nav_of(found), next.run(req))
    })
    .await
}

/// The header for a looked-up session.
fn nav_of(found: Result<Option<session::Current>, domain::types::StoreError>) -> Option<Nav> {
    match found {
        Ok(Some(cur)) if cur.is_full() => {
            let mut links = vec![Link {
                href: "/",
                text: "Home",
            }];
            let staff_with_children = cur
                .account
                .role
                .as_deref()
                .and_then(access::Role::from_code)
                .is_some_and(|r| r.sees_child_records());
            if staff_with_children {
                links.push(Link {
                    href: "/passports",
                    text: "Children in your care team",
                });
            }
            Some(Nav {
                name: cur.account.display_name.clone(),
                csrf_token: cur.session.csrf_token.clone(),
                links,
            })
        }
        _ => None,
    }
}
