//! `passport admin …`: organisations and sign-in accounts, from the command line.

use std::io::Read;
use std::sync::Arc;

use access::{Role, Sector};
use clap::{Args, Subcommand};
use domain::{Agent, Domain, Settings, region};
use passport_server::web::directory::{self, NewFamily, NewOrganisation, NewStaff};
use passport_server::web::onboarding;

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
    /// Import a clinic list (CSV: nhs_number, given, family, birth_date[, parent_email]):
    /// creates (or finds by NHS Number) each child's passport and an invitation; prints a
    /// CSV of codes and links. A file with any bad row writes nothing.
    ImportClinicList(ImportClinicList),
    /// Build a region from a JSON spec (organisations, staff, families, children with their
    /// records; the shape of `domain::region::Spec`), every account with the password given
    /// on standard input; prints what was made as JSON (ids by key, staff TOTP secrets in
    /// base32). For tests, demonstrations and the benchmark's synthetic region.
    SeedRegion(SeedRegion),
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
    /// The region's own organisation (the one that runs the passport for the region): the
    /// only place for regional-admin and commissioner accounts.
    #[arg(long)]
    regional: bool,
    #[command(flatten)]
    base: BaseUrl,
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
    /// A security label this member of staff is cleared to see (repeatable): safeguarding,
    /// social-care, sexual-health, mental-health, restricted. Staff only.
    #[arg(long = "cleared")]
    cleared: Vec<String>,
    #[command(flatten)]
    base: BaseUrl,
}

#[derive(Args)]
pub struct ImportClinicList {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The clinic's organisation (id, ODS code or URN): new passports get a care team with it.
    #[arg(long)]
    org: String,
    /// The CSV file.
    #[arg(long)]
    csv: std::path::PathBuf,
    /// How long the invitations work, in days.
    #[arg(long, default_value_t = 14)]
    valid_days: i64,
    #[command(flatten)]
    base: BaseUrl,
}

#[derive(Args)]
pub struct SeedRegion {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The region, as JSON.
    #[arg(long)]
    spec: std::path::PathBuf,
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

/// The domain, as `passport admin` uses it: every change goes through its write path,
/// audited as the operator running `what`.
async fn open(db: &DatabaseArgs, base: &str) -> Result<Arc<Domain>, Error> {
    Ok(Domain::open(Settings::admin(&db.url, base)).await?)
}

fn operator(what: &str) -> Agent {
    Agent::operator(&format!("passport admin {what}"))
}

pub async fn run(cmd: AdminCommand) -> Result<(), Error> {
    match cmd {
        AdminCommand::OAuth(c) => crate::admin_oauth::run(c).await?,
        AdminCommand::ImportClinicList(a) => import_clinic_list(a).await?,
        AdminCommand::SeedRegion(a) => seed_region(a).await?,
        AdminCommand::CreateOrg(a) => {
            let store = open(&a.database, &a.base.base_url).await?;
            let by = operator("create-org");
            let org = NewOrganisation {
                name: a.name,
                sector: a.sector,
                ods: a.ods,
                school_urn: a.urn,
                region: a.region,
            };
            let r = if a.regional {
                directory::create_regional_organisation(&store, &by, org).await
            } else {
                directory::create_organisation(&store, &by, org).await
            };
            store.close().await;
            println!("created organisation {}", r?);
        }
        AdminCommand::CreateUser(a) => {
            let store = open(&a.database, &a.base.base_url).await?;
            let r = create_user(&store, a).await;
            store.close().await;
            r?;
        }
        AdminCommand::ListOrgs(db) => {
            let store = open(&db, "").await?;
            let r = directory::list_organisations(&store).await;
            store.close().await;
            println!("id\tname\tsector\tods\turn\tregion\tregional");
            for o in r? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    o.id,
                    o.name,
                    o.sector.code(),
                    o.ods.unwrap_or_default(),
                    o.school_urn.unwrap_or_default(),
                    o.region,
                    if o.regional { "yes" } else { "no" }
                );
            }
        }
        AdminCommand::ListUsers(db) => {
            let store = open(&db, "").await?;
            let r = store.data().list_accounts().await;
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
            let store = open(&a.database, &a.base.base_url).await?;
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
            let store = open(&a.database, &a.base.base_url).await?;
            let r = directory::set_active(&store, &a.email, false).await;
            store.close().await;
            r?;
            println!("deactivated {} and ended its sessions", a.email);
        }
        AdminCommand::ActivateUser(a) => {
            let store = open(&a.database, &a.base.base_url).await?;
            let r = directory::set_active(&store, &a.email, true).await;
            store.close().await;
            r?;
            println!("activated {}", a.email);
        }
    }
    Ok(())
}

async fn seed_region(a: SeedRegion) -> Result<(), Error> {
    let text = std::fs::read_to_string(&a.spec)
        .map_err(|e| format!("cannot read {}: {e}", a.spec.display()))?;
    let mut spec: region::Spec = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a region spec: {e}", a.spec.display()))?;
    let mut line = String::new();
    std::io::stdin().read_to_string(&mut line)?;
    spec.password = line.lines().next().unwrap_or_default().to_owned();
    let store = open(&a.database, &a.base.base_url).await?;
    let r = region::seed(&store, &operator("seed-region"), &spec).await;
    store.close().await;
    println!("{}", serde_json::to_string_pretty(&r?)?);
    Ok(())
}

async fn create_user(store: &Domain, a: CreateUser) -> Result<(), Error> {
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
    for code in &a.cleared {
        if access::SecurityLabel::from_code(code).is_none() || a.role == "family" {
            return Err(format!(
                "--cleared takes a security label of a member of staff (safeguarding, social-care, sexual-health, mental-health, restricted), not {code:?}"
            )
            .into());
        }
    }
    let created = if a.role == "family" {
        directory::create_family(
            store,
            &operator("create-user"),
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
            &operator("create-user"),
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
    if !a.cleared.is_empty() {
        store
            .data()
            .set_account_cleared(&created.account_id, &a.cleared)
            .await?;
    }
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

async fn import_clinic_list(a: ImportClinicList) -> Result<(), Error> {
    let csv = std::fs::read_to_string(&a.csv)
        .map_err(|e| format!("cannot read {}: {e}", a.csv.display()))?;
    if !(1..=365).contains(&a.valid_days) {
        return Err("--valid-days must be between 1 and 365".into());
    }
    let store = open(&a.database, &a.base.base_url).await?;
    let agent = operator("import-clinic-list");
    let r = onboarding::import_clinic_list(
        &store,
        &agent,
        &a.org,
        &csv,
        &a.base.base_url,
        a.valid_days * 24 * 3600,
    )
    .await;
    store.close().await;
    match r {
        Ok(rows) => {
            println!("nhs_number,patient_id,new_passport,parent_email,code,link");
            for r in rows {
                println!(
                    "{},{},{},{},{},{}",
                    r.nhs_number,
                    r.patient_id,
                    if r.created { "yes" } else { "no" },
                    r.parent_email,
                    r.code,
                    r.link
                );
            }
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            Err(format!(
                "{} problem(s) in {}; nothing was written",
                errors.len(),
                a.csv.display()
            )
            .into())
        }
    }
}
