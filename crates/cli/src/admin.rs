//! `passport admin …`: organisations and sign-in accounts, from the command line.

use std::io::Read;

use access::{Role, Sector};
use clap::{Args, Subcommand};
use passport_server::web::directory::{self, NewFamily, NewOrganisation, NewStaff};
use passport_store::Store;

use crate::{DatabaseArgs, Error};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Add an organisation (a FHIR Organization).
    CreateOrg(CreateOrg),
    /// Add a staff or family account. Staff get a TOTP secret: the enrolment URI is printed.
    CreateUser(CreateUser),
    /// List organisations.
    ListOrgs(DatabaseArgs),
    /// List accounts.
    ListUsers(DatabaseArgs),
    /// Print a single-use password-reset link for an account (valid 24 hours).
    ResetLink(AccountArgs),
    /// Deactivate an account: it is signed out everywhere at once.
    DeactivateUser(AccountArgs),
    /// Reactivate an account.
    ActivateUser(AccountArgs),
    /// OAuth clients and signing keys (see admin_oauth.rs).
    #[command(flatten)]
    OAuth(crate::admin_oauth::OAuthAdmin),
}

#[derive(Args)]
pub struct CreateOrg {
    #[command(flatten)]
    database: DatabaseArgs,
    #[arg(long)]
    name: String,
    /// hospital-trust, gp-practice, community-health, social-care, education, leisure,
    /// emergency-services.
    #[arg(long, value_parser = parse_sector)]
    sector: Sector,
    /// NHS ODS code.
    #[arg(long)]
    ods: Option<String>,
    /// School URN (education).
    #[arg(long)]
    urn: Option<String>,
    #[arg(long)]
    region: String,
}

#[derive(Args)]
pub struct CreateUser {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The organisation (id, ODS code or URN); staff only.
    #[arg(long)]
    org: Option<String>,
    /// A staff role (clinician, nurse, school-staff, organisation-admin, …) or `family`.
    #[arg(long)]
    role: String,
    #[arg(long)]
    email: String,
    /// Their name as it should be shown. Default: the part of the email before the @.
    #[arg(long)]
    name: Option<String>,
    /// Read the password from standard input (one line). Without it, the account gets a
    /// random password and a reset link is printed for them to choose their own.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    base: BaseUrl,
}

#[derive(Args)]
pub struct AccountArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[arg(long)]
    email: String,
    #[command(flatten)]
    base: BaseUrl,
}

#[derive(Args)]
struct BaseUrl {
    /// The service's public URL (for links).
    #[arg(
        long,
        env = "PASSPORT_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    base_url: String,
}

fn parse_sector(s: &str) -> Result<Sector, String> {
    Sector::from_code(s).ok_or_else(|| {
        let all: Vec<_> = Sector::ALL.iter().map(|s| s.code()).collect();
        format!("unknown sector; one of {}", all.join(", "))
    })
}

async fn open(db: &DatabaseArgs) -> Result<Store, Error> {
    let store = Store::open(&db.url).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn run(cmd: AdminCommand) -> Result<(), Error> {
    match cmd {
        AdminCommand::OAuth(c) => crate::admin_oauth::run(c).await?,
        AdminCommand::CreateOrg(a) => {
            let store = open(&a.database).await?;
            let r = directory::create_organisation(
                &store,
                NewOrganisation {
                    name: a.name,
                    sector: a.sector,
                    ods: a.ods,
                    school_urn: a.urn,
                    region: a.region,
                },
            )
            .await;
            store.close().await;
            println!("created organisation {}", r?);
        }
        AdminCommand::CreateUser(a) => {
            let store = open(&a.database).await?;
            let r = create_user(&store, a).await;
            store.close().await;
            r?;
        }
        AdminCommand::ListOrgs(db) => {
            let store = open(&db).await?;
            let r = directory::list_organisations(&store).await;
            store.close().await;
            println!("id\tname\tsector\tods\turn\tregion");
            for o in r? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    o.id,
                    o.name,
                    o.sector.code(),
                    o.ods.unwrap_or_default(),
                    o.school_urn.unwrap_or_default(),
                    o.region
                );
            }
        }
        AdminCommand::ListUsers(db) => {
            let store = open(&db).await?;
            let r = store.list_accounts().await;
            store.close().await;
            println!("email\tkind\trole\torganisation\tactive\tname");
            for a in r? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    a.login,
                    a.kind.as_str(),
                    a.role.unwrap_or_default(),
                    a.organisation_id.unwrap_or_default(),
                    if a.active { "yes" } else { "no" },
                    a.display_name
                );
            }
        }
        AdminCommand::ResetLink(a) => {
            let store = open(&a.database).await?;
            let r = directory::issue_password_reset(
                &store,
                &a.email,
                &a.base.base_url,
                directory::RESET_LINK_SECS,
            )
            .await;
            store.close().await;
            println!("{}", r?);
        }
        AdminCommand::DeactivateUser(a) => {
            let store = open(&a.database).await?;
            let r = directory::set_active(&store, &a.email, false).await;
            store.close().await;
            r?;
            println!("deactivated {} and ended its sessions", a.email);
        }
        AdminCommand::ActivateUser(a) => {
            let store = open(&a.database).await?;
            let r = directory::set_active(&store, &a.email, true).await;
            store.close().await;
            r?;
            println!("activated {}", a.email);
        }
    }
    Ok(())
}

async fn create_user(store: &Store, a: CreateUser) -> Result<(), Error> {
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| a.email.split('@').next().unwrap_or_default().to_owned());
    let (password, chosen) = if a.password_stdin {
        let mut line = String::new();
        std::io::stdin().read_to_string(&mut line)?;
        (line.lines().next().unwrap_or_default().to_owned(), true)
    } else {
        (passport_server::web::auth::random_token(), false)
    };
    let created = if a.role == "family" {
        directory::create_family(
            store,
            NewFamily {
                email: a.email.clone(),
                name,
                password,
            },
        )
        .await?
    } else {
        let role = Role::from_code(&a.role).ok_or_else(|| {
            let all: Vec<_> = Role::ALL.iter().map(|r| r.code()).collect();
            format!(
                "unknown role {:?}; one of family, {}",
                a.role,
                all.join(", ")
            )
        })?;
        let org = a.org.clone().ok_or("staff accounts need --org")?;
        directory::create_staff(
            store,
            NewStaff {
                organisation: org,
                role,
                email: a.email.clone(),
                name,
                password,
            },
        )
        .await?
    };
    println!("created account {} for {}", created.account_id, a.email);
    if let Some(uri) = created.totp_uri {
        println!("TOTP enrolment (add to an authenticator app; shown once):\n{uri}");
    }
    if !chosen {
        let link = directory::issue_password_reset(
            store,
            &a.email,
            &a.base.base_url,
            directory::RESET_LINK_SECS,
        )
        .await?;
        println!("set-password link (single use, 24 hours):\n{link}");
    }
    Ok(())
}
