//! `passport admin create-client | list-clients | rotate-keys` through the real binary.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_passport");

fn run(args: &[&str], env_db: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("PASSPORT_DATABASE_URL");
    if let Some(db) = env_db {
        cmd.env("PASSPORT_DATABASE_URL", db);
    }
    cmd.output().expect("run passport")
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn create_and_list_clients() {
    let dir = std::env::temp_dir().join(format!("passport-cli-oauth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/p.db", dir.display());
    let jwks_file = dir.join("key.jwks");
    std::fs::write(
        &jwks_file,
        r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"k1","x":"AAAA","y":"AAAA"}]}"#,
    )
    .unwrap();

    // A backend-services client: keys, no secret.
    let backend = json(&run(
        &[
            "admin",
            "create-client",
            "--database",
            &db,
            "--name",
            "epr-sync",
            "--grant",
            "client_credentials",
            "--scope",
            "system/*.rs",
            "--jwks-file",
            jwks_file.to_str().unwrap(),
        ],
        None,
    ));
    assert!(backend["client_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(backend.get("client_secret").is_none());
    assert_eq!(backend["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(backend["scope"], "system/*.rs");

    // A public app (database from the environment, like `serve`).
    let app = json(&run(
        &[
            "admin",
            "create-client",
            "--name",
            "family-app",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            "https://app.example/cb",
            "--public",
            "--scope",
            "openid fhirUser launch/patient offline_access patient/*.rs",
        ],
        Some(&db),
    ));
    assert!(app.get("client_secret").is_none());
    assert_eq!(app["redirect_uris"][0], "https://app.example/cb");
    assert_eq!(app["token_endpoint_auth_method"], "none");

    // A confidential app without keys gets a secret, shown once.
    let confidential = json(&run(
        &[
            "admin",
            "create-client",
            "--database",
            &db,
            "--name",
            "clinic-app",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://clinic.example/cb",
            "--scope",
            "openid user/*.rs",
        ],
        None,
    ));
    let secret = confidential["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43);

    let list = json(&run(&["admin", "list-clients", "--database", &db], None));
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            backend["client_id"].as_str().unwrap(),
            app["client_id"].as_str().unwrap(),
            confidential["client_id"].as_str().unwrap()
        ]
    );
    // The secret is never listed (nor its hash).
    let listed =
        String::from_utf8(run(&["admin", "list-clients", "--database", &db], None).stdout).unwrap();
    assert!(!listed.contains(secret));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("client_secret").is_none())
    );

    // Refusals: exit non-zero with a message.
    for bad in [
        vec!["--grant", "password", "--scope", "system/*.rs"],
        vec!["--grant", "authorization_code", "--scope", "openid"],
        vec![
            "--grant",
            "client_credentials",
            "--scope",
            "system/Patient.xyz",
        ],
        vec![
            "--grant",
            "client_credentials",
            "--scope",
            "system/*.rs",
            "--public",
        ],
        vec!["--grant", "client_credentials", "--scope", "patient/*.rs"],
    ] {
        let mut args = vec!["admin", "create-client", "--database", &db, "--name", "x"];
        args.extend(bad.iter().copied());
        let out = run(&args, None);
        assert!(!out.status.success(), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }

    let out = run(&["admin", "rotate-keys", "--database", &db], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("new signing key: "));
    let _ = std::fs::remove_dir_all(dir);
}
