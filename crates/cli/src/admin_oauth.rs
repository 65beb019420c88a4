//! `passport admin create-client | list-clients | rotate-keys`: OAuth clients and the
//! token-signing keys (flattened into `passport admin`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use passport_server::oauth;

use crate::{DatabaseArgs, Error};

#[derive(Subcommand)]
pub enum OAuthAdmin {
    /// Register an OAuth client; prints it as JSON (with `client_secret` when one is issued:
    /// it is shown only this once).
    CreateClient(Box<CreateClientArgs>),
    /// List the registered OAuth clients as JSON.
    ListClients(DatabaseArgs),
    /// Make a new token-signing key current now (the old one stays published until its
    /// tokens expire).
    RotateKeys(DatabaseArgs),
}

#[derive(Args)]
pub struct CreateClientArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// A name for people (e.g. epr-sync).
    #[arg(long)]
    name: String,
    /// Grant type: authorization_code, client_credentials, refresh_token (repeatable).
    #[arg(long = "grant", required = true)]
    grants: Vec<String>,
    /// The widest scope the client may be granted, e.g. "system/*.rs".
    #[arg(long, default_value = "")]
    scope: String,
    /// Exact redirect URI (repeatable; needed for authorization_code).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A public client (browser or mobile app: no secret, PKCE only).
    #[arg(long)]
    public: bool,
    /// The client's public keys (a JWKS file) for private_key_jwt.
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// The URL of the client's JWKS (recorded; not fetched yet, so prefer --jwks-file).
    #[arg(long)]
    jwks_url: Option<String>,
    /// The organisation a client_credentials client acts for (Organization id, ODS code or
    /// school URN): it reaches the children whose care team includes that organisation.
    #[arg(long)]
    organisation: Option<String>,
    /// A trusted regional integration (bulk load, regional sync): reaches every child's
    /// record. Every access is audited. See docs/SECURITY.md, "Trusted regional systems".
    #[arg(long)]
    regional: bool,
    /// Security labels the client may see (repeatable), e.g. safeguarding.
    #[arg(long = "cleared")]
    cleared: Vec<String>,
    /// Where Passport opens the app for an EHR launch from a child's passport
    /// (`?iss=…&launch=…` is added); needs the authorization_code grant.
    #[arg(long)]
    launch_uri: Option<String>,
}

pub async fn run(cmd: OAuthAdmin) -> Result<(), Error> {
    let url = match &cmd {
        OAuthAdmin::CreateClient(a) => a.database.url.clone(),
        OAuthAdmin::ListClients(d) | OAuthAdmin::RotateKeys(d) => d.url.clone(),
    };
    let store = domain::Domain::open(domain::Settings::admin(&url, "")).await?;
    let result = run_on(&store, cmd).await;
    store.close().await;
    result
}

async fn run_on(store: &domain::Domain, cmd: OAuthAdmin) -> Result<(), Error> {
    match cmd {
        OAuthAdmin::CreateClient(a) => {
            let jwks = match &a.jwks_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read {}: {e}", p.display()))?,
                ),
                None => None,
            };
            let organisation_id = match &a.organisation {
                Some(key) => Some(
                    passport_server::web::directory::find_organisation(store, key)
                        .await
                        .map_err(|e| e.to_string())?
                        .id,
                ),
                None => None,
            };
            let spec = oauth::ClientSpec {
                organisation_id,
                regional: a.regional,
                cleared: a.cleared,
                name: a.name,
                grant_types: a.grants,
                redirect_uris: a.redirect_uris,
                public: a.public,
                scope: a.scope,
                jwks,
                jwks_url: a.jwks_url,
                launch_uri: a.launch_uri,
            };
            let created = oauth::create_client(store.data(), spec).await?;
            println!("{:#}", created.to_json());
        }
        OAuthAdmin::ListClients(_) => {
            let clients = store
                .data()
                .oauth_clients()
                .await?
                .iter()
                .map(oauth::clients::client_json)
                .collect();
            println!("{:#}", oauth::clients::json_array(clients));
        }
        OAuthAdmin::RotateKeys(_) => {
            let kid = oauth::rotate_keys_now(store.data(), &oauth::OAuthConfig::default()).await?;
            println!("new signing key: {kid}");
        }
    }
    Ok(())
}
