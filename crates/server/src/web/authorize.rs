//! The SMART App Launch 2 authorisation endpoint and launching apps from Passport. Pages,
//! so their routes are merged into the pages' router (security headers, CSRF, sessions):
//!
//! | route | what |
//! |---|---|
//! | `GET /oauth/authorize` (or `POST` with the same parameters) | checks the request, asks the signed-in user to choose a child (standalone `launch/patient`) and to allow the app |
//! | `POST /oauth/authorize` with `step` | the picker and approval forms (CSRF-protected); "Allow" issues the code |
//! | `GET /launch`, `POST /launch` | EHR launch with Passport as the launching system: open an app with a child's record |
//!
//! Errors follow RFC 6749 §4.1.2.1: a request whose client or redirect URI is wrong gets an
//! error page and never a redirect (it could send the user anywhere); every other error goes
//! back to the registered redirect URI with `error`, `error_description` and `state`.
//!
//! Who may be chosen as the patient is [`children_visible_to`], the one answer used by the
//! picker, the approval and `/launch`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::types::StoreError;
use domain::types::accounts::{Account, AccountKind};
use domain::types::oauth::{LaunchContext, OAuthClient};
use serde_json::{Value, json};

use super::session::{self, Current};
use super::templates::{
    FieldError, csrf_refused, field_error, long_date, message, page, see_other,
};
use super::{Effect, Route};
use super::{PageError, auth, csp_with_form_targets};
use crate::AppState;
use crate::oauth::{CodeRequest, jwt, token};

/// How long a launch value works (SMART: short-lived; it is used within seconds).
pub const LAUNCH_SECS: i64 = 5 * 60;

/// The authorisation-request parameters this endpoint reads (and carries through its
/// forms as hidden fields).
const PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "launch",
];

pub(super) fn routes() -> Vec<Route> {
    vec![
        // "Allow" lets an app act for the signed-in person.
        Route::form(
            "/oauth/authorize",
            authorize_get,
            Effect::Account,
            authorize_post,
        ),
        Route::form("/launch", launch_page, Effect::Account, launch),
    ]
}

/// Why a handler stopped early: a response to send (an error page, a redirect), or the
/// database failed (the pages' 500, logged without personal data).
enum Stop {
    // Boxed: a Response is large, and this travels in every Err.
    Respond(Box<Response>),
    Store(StoreError),
}

impl Stop {
    fn respond(r: Response) -> Stop {
        Stop::Respond(Box::new(r))
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

fn finish(r: Result<Response, Stop>) -> Response {
    match r {
        Ok(r) => r,
        Err(Stop::Respond(r)) => *r,
        Err(Stop::Store(e)) => PageError::from(e).into_response(),
    }
}

type Params = HashMap<String, String>;

/// Parses a query string or form body. A repeated parameter is refused (RFC 6749 §3.1).
fn parse(raw: &[u8]) -> Result<Params, String> {
    let mut out = Params::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(out)
}

fn get<'a>(p: &'a Params, name: &str) -> &'a str {
    p.get(name).map(String::as_str).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Who may be chosen

/// The children `account` may see, as `(patient id, name to show)`, sorted by name. A
/// family member: the children their Person links to through an active `RelatedPerson`
/// (docs/DATA-MODEL.md, "Family links"; a pending self-registration is not active). Staff:
/// the children whose active CareTeam includes their organisation, Practitioner or
/// PractitionerRole (`onboarding::care_team_patients`).
pub async fn children_visible_to(
    st: &AppState,
    account: &Account,
) -> Result<Vec<(String, String)>, StoreError> {
    let ids: Vec<String> = match account.kind {
        AccountKind::Family => active_family_links(st, account).await?,
        AccountKind::Staff => super::onboarding::care_team_patients(&st.domain, account)
            .await?
            .into_iter()
            .collect(),
    };
    let mut out = Vec::new();
    for id in ids {
        if out.iter().any(|(i, _)| *i == id) {
            continue;
        }
        if let Some(p) = st
            .domain
            .records()
            .read("Patient", &id)
            .await?
            .filter(|s| !s.deleted)
        {
            let v: Value = serde_json::from_slice(&p.body).unwrap_or_default();
            out.push((id, display_name(&v)));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

async fn active_family_links(st: &AppState, account: &Account) -> Result<Vec<String>, StoreError> {
    match &account.person_id {
        Some(person) => super::onboarding::linked_patients(&st.domain, person, true).await,
        None => Ok(Vec::new()),
    }
}

/// "Mia Jones (born 27 March 2019)": the date tells apart children with the same name.
fn display_name(patient: &Value) -> String {
    let n = &patient["name"][0];
    let name = match n["text"].as_str() {
        Some(t) => t.to_owned(),
        None => {
            let given: Vec<&str> = n["given"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut s = given.join(" ");
            if let Some(f) = n["family"].as_str() {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(f);
            }
            s
        }
    };
    let name = if name.trim().is_empty() {
        "A child with no name recorded".to_owned()
    } else {
        name
    };
    match patient["birthDate"].as_str().and_then(long_date) {
        Some(d) => format!("{name} (born {d})"),
        None => name,
    }
}

/// The family P9 rule (web/oidc.rs): a family member signed in through a provider without
/// a verified identity sees no child, so no child can be chosen either.
async fn visible(
    st: &AppState,
    headers: &HeaderMap,
    cur: &Current,
) -> Result<Vec<(String, String)>, StoreError> {
    if cur.account.kind == AccountKind::Family
        && !super::oidc::family_data_allowed(st, headers).await?
    {
        return Ok(Vec::new());
    }
    children_visible_to(st, &cur.account).await
}

/// The user's FHIR resource for `fhirUser` (see `verify::TokenClaims::subject`).
fn fhir_user(account: &Account) -> Option<String> {
    match account.kind {
        AccountKind::Staff => account
            .practitioner_id
            .as_ref()
            .map(|p| format!("Practitioner/{p}")),
        AccountKind::Family => account.person_id.as_ref().map(|p| format!("Person/{p}")),
    }
}

// ---------------------------------------------------------------------------------------
// The authorisation request

/// A request that passed every check that does not depend on who is signed in.
struct Checked {
    client: OAuthClient,
    redirect_uri: String,
    state: String,
    scope: String,
    code_challenge: String,
    /// EHR launch: the launch context and its hash.
    launch: Option<LaunchContext>,
    /// Standalone launch asking for a patient (`launch/patient` without `launch`).
    pick_patient: bool,
}

/// The error page for a request that must not be redirected (bad client or redirect URI).
fn error_page(why: &str) -> Stop {
    Stop::respond(error_response(why))
}

fn error_response(why: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "This app cannot use Passport",
        &[
            why,
            "You have not been signed in to the app and nothing has been shared with it. Tell the app's makers about this problem.",
        ],
        Some(("/", "Go to the Passport home page")),
    )
}

/// A 303 to `redirect_uri` with `params` added to its query.
fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(params);
            see_other(u.as_str())
        }
        // Registered URIs are checked at registration; an old malformed one is not followed.
        Err(_) => error_response("The app's registered address is not valid."),
    }
}

/// An error sent back to the app (RFC 6749 §4.1.2.1).
fn redirect_error(redirect_uri: &str, state: &str, error: &str, description: &str) -> Stop {
    let mut params = vec![("error", error), ("error_description", description)];
    if !state.is_empty() {
        params.push(("state", state));
    }
    Stop::respond(redirect_with(redirect_uri, &params))
}

/// Checks the request in RFC 6749's order: the client and redirect URI first (an error
/// page), then everything else (an error redirect).
async fn check(st: &AppState, p: &Params) -> Result<Checked, Stop> {
    let client_id = get(p, "client_id");
    if client_id.is_empty() {
        return Err(error_page("The app did not say who it is (client_id)."));
    }
    let Some(client) = st
        .domain
        .data()
        .oauth_client(client_id)
        .await?
        .filter(|c| c.active)
    else {
        return Err(error_page("The app is not registered with Passport."));
    };
    let redirect_uri = get(p, "redirect_uri");
    if redirect_uri.is_empty() || !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(error_page(
            "The app asked to return to an address that is not registered for it (redirect_uri).",
        ));
    }
    let state = get(p, "state");
    let fail = |error: &str, description: &str| {
        Err(redirect_error(redirect_uri, state, error, description))
    };
    if get(p, "response_type") != "code" {
        return fail("unsupported_response_type", "response_type must be code");
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return fail(
            "unauthorized_client",
            "this client may not use the authorization_code grant",
        );
    }
    if state.is_empty() {
        return fail("invalid_request", "state is required");
    }
    if get(p, "code_challenge_method") != "S256" {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge_method must be S256",
        );
    }
    let code_challenge = get(p, "code_challenge");
    if code_challenge.len() != 43 || jwt::unb64(code_challenge).is_none() {
        return fail(
            "invalid_request",
            "code_challenge must be an S256 PKCE challenge (43 base64url characters)",
        );
    }
    let issuer = crate::oauth::issuer(st);
    if get(p, "aud") != issuer {
        return fail(
            "invalid_request",
            &format!("aud must be this server's FHIR base URL, {issuer}"),
        );
    }
    let scope = get(p, "scope");
    if let Err(e) = token::check_scope(scope, &client.scope, token::Context::User) {
        return fail(e.error, &e.description);
    }
    let scopes = access::Scopes::parse(scope).unwrap_or_default();
    let launch_value = get(p, "launch");
    let launch = if launch_value.is_empty() {
        if scopes.launch {
            return fail(
                "invalid_request",
                "the launch scope needs the launch parameter of an EHR launch",
            );
        }
        None
    } else {
        if !scopes.launch {
            return fail(
                "invalid_scope",
                "an EHR launch (the launch parameter) needs the launch scope",
            );
        }
        let now = crate::clock::now_us();
        match st
            .domain
            .data()
            .oauth_launch(&jwt::sha256_hex(launch_value))
            .await?
        {
            Some(l)
                if l.used_us.is_none() && l.expires_us > now && l.client_id == client.client_id =>
            {
                Some(l)
            }
            _ => {
                return fail(
                    "invalid_request",
                    "the launch is unknown, has expired or has already been used",
                );
            }
        }
    };
    let pick_patient = launch.is_none() && scopes.launch_patient;
    let patient_scopes = scopes
        .resources
        .iter()
        .any(|r| r.context == access::ScopeContext::Patient);
    if patient_scopes && launch.is_none() && !pick_patient {
        return fail(
            "invalid_scope",
            "patient/ scopes need a patient: ask for launch/patient, or use an EHR launch",
        );
    }
    Ok(Checked {
        client,
        redirect_uri: redirect_uri.to_owned(),
        state: state.to_owned(),
        scope: scope.to_owned(),
        code_challenge: code_challenge.to_owned(),
        launch,
        pick_patient,
    })
}

/// The signed-in user, or a redirect to sign in and come back to this request.
async fn signed_in(st: &AppState, headers: &HeaderMap, p: &Params) -> Result<Current, Stop> {
    match session::current(st, headers).await? {
        Some(cur) if cur.is_full() => Ok(cur),
        _ => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for name in PARAMS {
                if let Some(v) = p.get(name) {
                    q.append_pair(name, v);
                }
            }
            let back = format!("/oauth/authorize?{}", q.finish());
            let to = format!(
                "/sign-in?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &back)
                    .finish()
            );
            Err(Stop::respond(see_other(&to)))
        }
    }
}

/// The whole request checked, the user signed in, and an EHR launch theirs.
async fn check_signed_in(
    st: &AppState,
    headers: &HeaderMap,
    p: &Params,
) -> Result<(Checked, Current), Stop> {
    let c = check(st, p).await?;
    let cur = signed_in(st, headers, p).await?;
    if let Some(l) = &c.launch
        && l.account_id != cur.account.id
    {
        // The same words as an unknown launch: another account's launches are not revealed.
        return Err(redirect_error(
            &c.redirect_uri,
            &c.state,
            "invalid_request",
            "the launch is unknown, has expired or has already been used",
        ));
    }
    Ok((c, cur))
}

/// The request's parameters as hidden form fields.
fn hidden(p: &Params) -> Vec<Value> {
    PARAMS
        .iter()
        .filter_map(|n| p.get(*n).map(|v| json!({ "name": n, "value": v })))
        .collect()
}

/// An origin for `form-action`.
fn origin_of(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

/// A page whose forms may end in a redirect to `redirect_uri`.
fn page_to(redirect_uri: &str, status: StatusCode, name: &str, ctx: Value) -> Response {
    let mut resp = page(status, name, ctx);
    let origin = origin_of(redirect_uri);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        csp_with_form_targets(origin.as_deref()),
    );
    resp
}

fn picker(
    c: &Checked,
    cur: &Current,
    p: &Params,
    children: &[(String, String)],
    errors: Vec<FieldError>,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let options: Vec<Value> = children
        .iter()
        .map(|(id, name)| json!({ "code": id, "label": name }))
        .collect();
    page_to(
        &c.redirect_uri,
        status,
        "authorize_pick.html",
        json!({ "app": c.client.name, "children": options, "errors": errors,
                "hidden": hidden(p), "csrf_token": cur.session.csrf_token }),
    )
}

fn approval(c: &Checked, cur: &Current, p: &Params, child: Option<(&str, &str)>) -> Response {
    let mut fields = hidden(p);
    if c.pick_patient
        && let Some((id, _)) = child
    {
        fields.push(json!({ "name": "patient", "value": id }));
    }
    page_to(
        &c.redirect_uri,
        StatusCode::OK,
        "authorize_approve.html",
        json!({ "app": c.client.name, "name": cur.account.display_name,
                "child": child.map(|(_, name)| name),
                "scopes": describe_scopes(&c.scope, child.is_some()),
                "hidden": fields, "csrf_token": cur.session.csrf_token }),
    )
}

/// `GET /oauth/authorize`.
async fn authorize_get(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    finish(
        async {
            let p = parse(query.unwrap_or_default().as_bytes())
                .map_err(|name| error_page(&format!("The app sent {name} more than once.")))?;
            show(&st, &headers, &p).await
        }
        .await,
    )
}

/// The first page of a request: the picker (standalone `launch/patient`) or the approval.
async fn show(st: &AppState, headers: &HeaderMap, p: &Params) -> Result<Response, Stop> {
    let (c, cur) = check_signed_in(st, headers, p).await?;
    if let Some(l) = &c.launch {
        let name = patient_name(st, &l.patient_id).await?;
        return Ok(approval(&c, &cur, p, Some((&l.patient_id, &name))));
    }
    if c.pick_patient {
        let children = visible(st, headers, &cur).await?;
        return Ok(picker(&c, &cur, p, &children, Vec::new()));
    }
    Ok(approval(&c, &cur, p, None))
}

async fn patient_name(st: &AppState, id: &str) -> Result<String, StoreError> {
    Ok(
        match st
            .domain
            .records()
            .read("Patient", id)
            .await?
            .filter(|s| !s.deleted)
        {
            Some(s) => display_name(&serde_json::from_slice(&s.body).unwrap_or_default()),
            None => "a child".to_owned(),
        },
    )
}

/// `POST /oauth/authorize`: without `step`, an authorisation request sent by POST (SMART
/// `authorize-post`); with `step`, the picker or approval form.
async fn authorize_post(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish(
        async {
            let p = parse(&body)
                .map_err(|name| error_page(&format!("The form sent {name} more than once.")))?;
            match p.get("step").map(String::as_str) {
                None => show(&st, &headers, &p).await,
                Some(step) => decide(&st, &headers, &p, step).await,
            }
        }
        .await,
    )
}

async fn decide(
    st: &AppState,
    headers: &HeaderMap,
    p: &Params,
    step: &str,
) -> Result<Response, Stop> {
    let (c, cur) = check_signed_in(st, headers, p).await?;
    if !auth::same(&cur.session.csrf_token, get(p, "csrf_token")) {
        return Ok(csrf_refused(Some(("/", "Go to the Passport home page"))));
    }
    let deny = || {
        Ok(redirect_with(
            &c.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user did not allow access"),
                ("state", &c.state),
            ],
        ))
    };
    match (step, get(p, "decision")) {
        ("pick", _) => {
            let children = visible(st, headers, &cur).await?;
            match children.iter().find(|(id, _)| id == get(p, "patient")) {
                Some((id, name)) if c.pick_patient => Ok(approval(&c, &cur, p, Some((id, name)))),
                _ => Ok(picker(
                    &c,
                    &cur,
                    p,
                    &children,
                    vec![field_error("patient", "Select the child this is for")],
                )),
            }
        }
        ("decide", "deny") => {
            if let Some(l) = &c.launch {
                // A refused launch is finished: it cannot be used again.
                st.domain
                    .data()
                    .oauth_use_launch(&l.launch_hash, crate::clock::now_us())
                    .await?;
            }
            deny()
        }
        ("decide", "allow") => {
            let patient = if let Some(l) = &c.launch {
                // Used once: of two racing approvals only one gets the launch.
                match st
                    .domain
                    .data()
                    .oauth_use_launch(&l.launch_hash, crate::clock::now_us())
                    .await?
                {
                    Some(l) => Some(l.patient_id),
                    None => {
                        return Err(redirect_error(
                            &c.redirect_uri,
                            &c.state,
                            "invalid_request",
                            "the launch is unknown, has expired or has already been used",
                        ));
                    }
                }
            } else if c.pick_patient {
                // Checked again: the form could have been changed.
                let children = visible(st, headers, &cur).await?;
                match children.iter().find(|(id, _)| id == get(p, "patient")) {
                    Some((id, _)) => Some(id.clone()),
                    None => {
                        return Ok(picker(
                            &c,
                            &cur,
                            p,
                            &children,
                            vec![field_error("patient", "Select the child this is for")],
                        ));
                    }
                }
            } else {
                None
            };
            let req = CodeRequest {
                client_id: c.client.client_id.clone(),
                redirect_uri: c.redirect_uri.clone(),
                scope: c.scope.clone(),
                code_challenge: c.code_challenge.clone(),
                subject: cur.account.id.clone(),
                fhir_user: fhir_user(&cur.account),
                patient,
            };
            match crate::oauth::issue_authorization_code(st, &req).await {
                Ok(code) => Ok(redirect_with(
                    &c.redirect_uri,
                    &[("code", &code), ("state", &c.state)],
                )),
                Err(e) => Err(redirect_error(
                    &c.redirect_uri,
                    &c.state,
                    e.error,
                    &e.description,
                )),
            }
        }
        _ => Err(error_page("The form was not one Passport sent.")),
    }
}

/// The scope in plain words, for the approval page.
fn describe_scopes(scope: &str, has_child: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for word in scope.split_ascii_whitespace() {
        match word {
            "openid" | "fhirUser" | "profile" => {
                push("know who you are: your name and whether you are staff or family".into())
            }
            "launch" | "launch/patient" => {
                push("know which child's record it is being used with".into())
            }
            "offline_access" => {
                push("keep access without asking you again, even when you are not using it".into())
            }
            "online_access" => push("keep access while you are using it".into()),
            _ => {
                let Ok(s) = access::Scopes::parse(word) else {
                    continue;
                };
                for r in &s.resources {
                    push(describe_resource_scope(r, has_child));
                }
            }
        }
    }
    out
}

fn describe_resource_scope(r: &access::ResourceScope, has_child: bool) -> String {
    use access::Permissions as P;
    let mut verbs = Vec::new();
    if r.permissions.contains(P::READ) || r.permissions.contains(P::SEARCH) {
        verbs.push("see");
    }
    if r.permissions.contains(P::CREATE) {
        verbs.push("add to");
    }
    if r.permissions.contains(P::UPDATE) {
        verbs.push("change");
    }
    if r.permissions.contains(P::DELETE) {
        verbs.push("delete");
    }
    let verbs = match verbs.as_slice() {
        [] => "use".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let what = match &r.resource_type {
        None => "everything".to_owned(),
        Some(t) => format!("{} records", type_words(t)),
    };
    let whose = match r.context {
        access::ScopeContext::Patient if has_child => "in this child's passport",
        access::ScopeContext::Patient => "in the chosen child's passport",
        _ => "in the passports you can see",
    };
    format!("{verbs} {what} {whose}")
}

/// A FHIR type name in words: `AllergyIntolerance` → "allergy intolerance".
fn type_words(t: &str) -> String {
    let mut s = String::new();
    for (i, ch) in t.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            s.push(' ');
        }
        s.push(ch.to_ascii_lowercase());
    }
    s
}

// ---------------------------------------------------------------------------------------
// EHR launch from Passport

/// Clients that can be opened from Passport: active, with a launch URI and the
/// authorization_code grant.
async fn launchable(st: &AppState) -> Result<Vec<OAuthClient>, StoreError> {
    Ok(st
        .domain
        .data()
        .oauth_clients()
        .await?
        .into_iter()
        .filter(|c| {
            c.active
                && c.launch_uri.is_some()
                && c.grant_types.iter().any(|g| g == "authorization_code")
        })
        .collect())
}

async fn signed_in_page(st: &AppState, headers: &HeaderMap) -> Result<Current, Stop> {
    match session::current(st, headers).await? {
        Some(cur) if cur.is_full() => Ok(cur),
        Some(_) => Err(Stop::respond(see_other("/sign-in/code"))),
        None => Err(Stop::respond(see_other("/sign-in"))),
    }
}

fn cannot_open() -> Stop {
    Stop::respond(message(
        StatusCode::NOT_FOUND,
        "You cannot open this child's record",
        &["The child's record was not found, or you do not have access to it."],
        Some(("/launch", "Choose a child")),
    ))
}

/// `GET /launch[?patient=ID]`: the children to choose from, or the apps to open with one.
async fn launch_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    finish(
        async {
            let cur = signed_in_page(&st, &headers).await?;
            let q = parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
            let children = visible(&st, &headers, &cur).await?;
            let patient = get(&q, "patient");
            if patient.is_empty() {
                let list: Vec<Value> = children
                    .iter()
                    .map(|(id, name)| json!({ "code": id, "label": name }))
                    .collect();
                return Ok(page(
                    StatusCode::OK,
                    "launch.html",
                    json!({ "children": list, "csrf_token": cur.session.csrf_token }),
                ));
            }
            let Some((id, name)) = children.iter().find(|(id, _)| id == patient) else {
                return Err(cannot_open());
            };
            let apps = launchable(&st).await?;
            let origins: Vec<String> = apps
                .iter()
                .filter_map(|a| a.launch_uri.as_deref().and_then(origin_of))
                .collect();
            let list: Vec<Value> = apps
                .iter()
                .map(|a| json!({ "client_id": a.client_id, "name": a.name }))
                .collect();
            let mut resp = page(
                StatusCode::OK,
                "launch.html",
                json!({ "child": name, "patient": id, "apps": list,
                        "csrf_token": cur.session.csrf_token }),
            );
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                csp_with_form_targets(origins.iter().map(String::as_str)),
            );
            Ok(resp)
        }
        .await,
    )
}

/// `POST /launch` (`client_id`, `patient`): records the launch and opens the app at
/// `<launch_uri>?iss=<FHIR base>&launch=<value>`.
async fn launch(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    finish(
        async {
            let cur = signed_in_page(&st, &headers).await?;
            let f: Params = form_urlencoded::parse(&body).into_owned().collect();
            if !auth::same(&cur.session.csrf_token, get(&f, "csrf_token")) {
                return Ok(csrf_refused(Some(("/launch", "Choose a child again"))));
            }
            let client = launchable(&st)
                .await?
                .into_iter()
                .find(|c| c.client_id == get(&f, "client_id"));
            let Some(client) = client else {
                return Ok(message(
                    StatusCode::BAD_REQUEST,
                    "This app cannot be opened from Passport",
                    &["The app is not registered to be opened from Passport, or it has been switched off."],
                    Some(("/launch", "Choose a child")),
                ));
            };
            let patient = get(&f, "patient");
            let children = visible(&st, &headers, &cur).await?;
            if !children.iter().any(|(id, _)| id == patient) {
                return Err(cannot_open());
            }
            let value = jwt::random_token();
            st.domain.data()
                .oauth_insert_launch(&LaunchContext {
                    launch_hash: jwt::sha256_hex(&value),
                    account_id: cur.account.id.clone(),
                    patient_id: patient.to_owned(),
                    client_id: client.client_id.clone(),
                    expires_us: crate::clock::now_us() + LAUNCH_SECS * 1_000_000,
                    used_us: None,
                })
                .await?;
            let launch_uri = client.launch_uri.as_deref().unwrap_or_default();
            let iss = crate::oauth::issuer(&st);
            Ok(redirect_with(launch_uri, &[("iss", &iss), ("launch", &value)]))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_in_plain_words() {
        let words = describe_scopes(
            "openid fhirUser launch/patient patient/Observation.rs patient/*.cruds offline_access",
            true,
        );
        assert_eq!(
            words,
            vec![
                "know who you are: your name and whether you are staff or family",
                "know which child's record it is being used with",
                "see observation records in this child's passport",
                "see, add to, change and delete everything in this child's passport",
                "keep access without asking you again, even when you are not using it",
            ]
        );
    }

    #[test]
    fn names_and_dates() {
        let p = json!({ "name": [{ "given": ["Mia", "Rose"], "family": "Jones" }], "birthDate": "2019-03-27" });
        assert_eq!(display_name(&p), "Mia Rose Jones (born 27 March 2019)");
        assert_eq!(display_name(&json!({})), "A child with no name recorded");
        assert_eq!(long_date("2019-13-01"), None);
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert_eq!(parse(b"a=1&b=2&a=3"), Err("a".to_owned()));
        assert!(parse(b"a=1&b=2").is_ok());
    }
}
