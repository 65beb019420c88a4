//! What is kept that is not a FHIR resource: accounts and sessions, password resets and
//! registrations, external identities, OAuth clients, codes, tokens and signing keys,
//! invitations and family links, break-glass grants (read and reviewed here; made only by
//! `crate::break_glass::open`), and the audit log (read only: the domain appends to it).
//! Each method is the store's own, reached through the domain so that no surface holds the
//! store — FHIR resources go through [`crate::Records`].

use std::sync::Arc;

use passport_store::accounts::*;
use passport_store::break_glass::*;
use passport_store::identities::*;
use passport_store::oauth::*;
use passport_store::onboarding::*;
use passport_store::{AuditEntry, AuditQuery, ChainHead, Store, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// See the module documentation.
pub struct Data {
    store: Arc<Store>,
}

impl Data {
    pub(crate) fn new(store: Arc<Store>) -> Data {
        Data { store }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for tests that look at what was stored (`testing` feature only).
    #[cfg(feature = "testing")]
    pub fn test_store(&self) -> &Store {
        &self.store
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }

    // ---- the audit log (read: appends go through the auditor and the write path)

    /// Audit entries matching `query` (the access log pages, `AuditEvent` searches).
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.store.list_audit(query).await
    }

    /// The chain's last entry.
    pub async fn audit_head(&self) -> Result<Option<ChainHead>> {
        self.store.audit_head().await
    }

    // ---- accounts

    /// Creates an account; `false` if its login is taken.
    pub async fn create_account(&self, account: &Account) -> Result<bool> {
        self.store.create_account(account).await
    }

    pub async fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        self.store.account_by_login(login).await
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>> {
        self.store.account(id).await
    }

    /// Every account, by login.
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        self.store.list_accounts().await
    }

    /// Activates or deactivates an account. Deactivating deletes all its sessions in the
    /// same transaction, so it is signed out everywhere at once. `false` if no such account.
    pub async fn set_account_active(&self, id: &str, active: bool) -> Result<bool> {
        self.store.set_account_active(id, active).await
    }

    /// Sets the security labels a member of staff is cleared to see (codes); `false` if no
    /// such account.
    pub async fn set_account_cleared(&self, id: &str, cleared: &[String]) -> Result<bool> {
        self.store.set_account_cleared(id, cleared).await
    }

    /// Records that the TOTP code of time step `step` was used by `account_id`: `true` the
    /// first time, `false` if that step (or a later one) was already used — a replayed
    /// code. One conditional UPDATE, so two concurrent uses cannot both succeed.
    pub async fn accept_totp_step(&self, account_id: &str, step: i64) -> Result<bool> {
        self.store.accept_totp_step(account_id, step).await
    }

    /// The throttle state of `login` (default when it never failed).
    pub async fn login_throttle(&self, login: &str) -> Result<Throttle> {
        self.store.login_throttle(login).await
    }

    /// Records a failed sign-in for `login` (read and update in one transaction); returns
    /// the new state.
    pub async fn record_login_failure(&self, login: &str, now_us: i64) -> Result<Throttle> {
        self.store.record_login_failure(login, now_us).await
    }

    /// Forgets failures of `login` (after a successful sign-in).
    pub async fn clear_login_failures(&self, login: &str) -> Result<()> {
        self.store.clear_login_failures(login).await
    }

    pub async fn create_session(&self, session: &Session) -> Result<()> {
        self.store.create_session(session).await
    }

    /// The session with this id hash, if it exists (expiry is the caller's to check), and
    /// its account if that still exists.
    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<(Session, Option<Account>)>> {
        self.store.session(id_hash).await
    }

    /// Marks the session as used at `now_us` (the idle timeout counts from here).
    pub async fn touch_session(&self, id_hash: &[u8], now_us: i64) -> Result<()> {
        self.store.touch_session(id_hash, now_us).await
    }

    pub async fn delete_session(&self, id_hash: &[u8]) -> Result<()> {
        self.store.delete_session(id_hash).await
    }

    /// Stores a password-reset token (its hash) for `account_id`, valid until `expires_us`.
    pub async fn create_password_reset(
        &self,
        token_hash: &[u8],
        account_id: &str,
        now_us: i64,
        expires_us: i64,
    ) -> Result<()> {
        self.store
            .create_password_reset(token_hash, account_id, now_us, expires_us)
            .await
    }

    /// Whether the reset token could be redeemed now: its account id, or why not.
    pub async fn check_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        self.store.check_password_reset(token_hash, now_us).await
    }

    /// Redeems a reset token: in ONE transaction checks it, marks it used, sets the new
    /// password hash, deletes the account's sessions and clears its throttle. Returns the
    /// account id, or why the token was refused (then nothing changed).
    pub async fn redeem_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
        password_hash: &str,
    ) -> Result<std::result::Result<String, ResetRefused>> {
        self.store
            .redeem_password_reset(token_hash, now_us, password_hash)
            .await
    }

    /// Stores a registration waiting for verification, and deletes those that expired more
    /// than [`REGISTRATION_KEEP_US`] ago.
    pub async fn create_registration(&self, r: &Registration) -> Result<()> {
        self.store.create_registration(r).await
    }

    /// Whether the registration with this token hash could be claimed at `now_us` (the
    /// verification page shows its button only then).
    pub async fn check_registration(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<(), RegistrationRefused>> {
        self.store.check_registration(token_hash, now_us).await
    }

    /// Claims a registration: in ONE transaction checks it is unused and unexpired, marks
    /// it used and blanks its personal columns. Returns what it held, or why not (then
    /// nothing changed). Two concurrent claims cannot both succeed.
    pub async fn claim_registration(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<std::result::Result<Registration, RegistrationRefused>> {
        self.store.claim_registration(token_hash, now_us).await
    }

    /// Deletes a registration (the server does, when the address already has an account:
    /// its link is never sent, so the row would only hold a password hash for nothing).
    pub async fn delete_registration(&self, token_hash: &[u8]) -> Result<()> {
        self.store.delete_registration(token_hash).await
    }

    // ---- identities

    /// Links an identity; `false` if that (provider, subject) is already linked.
    pub async fn link_external_identity(&self, id: &ExternalIdentity) -> Result<bool> {
        self.store.link_external_identity(id).await
    }

    pub async fn external_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentity>> {
        self.store.external_identity(provider, subject).await
    }

    /// Records a sign-in: the latest NHS number, identity level and time.
    pub async fn touch_external_identity(
        &self,
        provider: &str,
        subject: &str,
        nhs_number: Option<&str>,
        identity_level: Option<&str>,
        now_us: i64,
    ) -> Result<()> {
        self.store
            .touch_external_identity(provider, subject, nhs_number, identity_level, now_us)
            .await
    }

    /// Stores a sign-in in progress (and forgets expired ones).
    pub async fn oidc_insert_pending(&self, p: &OidcPending, now_us: i64) -> Result<()> {
        self.store.oidc_insert_pending(p, now_us).await
    }

    /// Takes (deletes and returns) the sign-in in progress with this state hash, if it has
    /// not expired. Single use: a second call gets `None`.
    pub async fn oidc_take_pending(
        &self,
        state_hash: &str,
        now_us: i64,
    ) -> Result<Option<OidcPending>> {
        self.store.oidc_take_pending(state_hash, now_us).await
    }

    pub async fn oidc_record_session(&self, o: &OidcSession) -> Result<()> {
        self.store.oidc_record_session(o).await
    }

    /// What an external sign-in established for this session, if it was one.
    pub async fn oidc_session(&self, id_hash: &[u8]) -> Result<Option<OidcSession>> {
        self.store.oidc_session(id_hash).await
    }

    // ---- oauth

    pub async fn oauth_insert_client(&self, c: &OAuthClient) -> Result<()> {
        self.store.oauth_insert_client(c).await
    }

    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        self.store.oauth_client(client_id).await
    }

    /// Every client, oldest first.
    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        self.store.oauth_clients().await
    }

    /// Every signing key, newest first.
    pub async fn oauth_signing_keys(&self) -> Result<Vec<SigningKey>> {
        self.store.oauth_signing_keys().await
    }

    /// Adds `key` as the current key, retiring (at `key.created_us`) the one it replaces, in
    /// one transaction; keys retired before `drop_retired_before` are deleted.
    pub async fn oauth_add_signing_key(
        &self,
        key: &SigningKey,
        drop_retired_before: i64,
    ) -> Result<()> {
        self.store
            .oauth_add_signing_key(key, drop_retired_before)
            .await
    }

    /// Records a client assertion's `jti`; `false` if this client already used it (a replay).
    pub async fn oauth_record_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_us: i64,
    ) -> Result<bool> {
        self.store
            .oauth_record_jti(client_id, jti, expires_us)
            .await
    }

    pub async fn oauth_insert_code(&self, code: &AuthCode) -> Result<()> {
        self.store.oauth_insert_code(code).await
    }

    /// Marks the code used (atomically): the first caller gets [`CodeUse::Fresh`].
    pub async fn oauth_consume_code(&self, code_hash: &str, now_us: i64) -> Result<CodeUse> {
        self.store.oauth_consume_code(code_hash, now_us).await
    }

    /// Records what a code's exchange issued (so a replay can revoke it).
    pub async fn oauth_attach_code_tokens(
        &self,
        code_hash: &str,
        family: Option<&str>,
        access_jti: &str,
        access_expires_us: i64,
    ) -> Result<()> {
        self.store
            .oauth_attach_code_tokens(code_hash, family, access_jti, access_expires_us)
            .await
    }

    /// Stores a refresh token. With `rotated_from`, only while that (used) token's family
    /// still exists, so a reuse detected in the meantime wins: `false` if nothing was stored.
    pub async fn oauth_insert_refresh(
        &self,
        token: &RefreshToken,
        rotated_from: Option<&str>,
    ) -> Result<bool> {
        self.store.oauth_insert_refresh(token, rotated_from).await
    }

    /// Uses a refresh token (atomically): marks it used, or — if it was used before —
    /// revokes its whole family (refresh tokens and the access tokens issued with them).
    pub async fn oauth_use_refresh(&self, token_hash: &str, now_us: i64) -> Result<RefreshUse> {
        self.store.oauth_use_refresh(token_hash, now_us).await
    }

    pub async fn oauth_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
        self.store.oauth_refresh_token(token_hash).await
    }

    /// Revokes a refresh-token family (and the unexpired access tokens issued with it).
    pub async fn oauth_revoke_family(&self, family: &str, now_us: i64) -> Result<()> {
        self.store.oauth_revoke_family(family, now_us).await
    }

    /// Revokes everything issued to one user (`subject`, their account id): every refresh
    /// token family (with the unexpired access tokens issued in it) and every unused
    /// authorisation code. For a deactivated account: at once, not at expiry.
    pub async fn oauth_revoke_subject(&self, subject: &str, now_us: i64) -> Result<()> {
        self.store.oauth_revoke_subject(subject, now_us).await
    }

    /// Activates or deactivates a client; deactivating also revokes every token and code
    /// issued to it. `false` if there is no such client.
    pub async fn oauth_set_client_active(
        &self,
        client_id: &str,
        active: bool,
        now_us: i64,
    ) -> Result<bool> {
        self.store
            .oauth_set_client_active(client_id, active, now_us)
            .await
    }

    /// Revokes an access token by `jti` until `expires_us`.
    pub async fn oauth_revoke_access(&self, jti: &str, expires_us: i64) -> Result<()> {
        self.store.oauth_revoke_access(jti, expires_us).await
    }

    pub async fn oauth_is_revoked(&self, jti: &str) -> Result<bool> {
        self.store.oauth_is_revoked(jti).await
    }

    pub async fn oauth_insert_launch(&self, l: &LaunchContext) -> Result<()> {
        self.store.oauth_insert_launch(l).await
    }

    /// The launch with this hash, whatever its state (to check an authorisation request
    /// before the user decides).
    pub async fn oauth_launch(&self, launch_hash: &str) -> Result<Option<LaunchContext>> {
        self.store.oauth_launch(launch_hash).await
    }

    /// Uses a launch (atomically): if it is unused and unexpired at `now_us`, marks it used
    /// and returns it; otherwise `None` (a second use, even racing, gets `None`).
    pub async fn oauth_use_launch(
        &self,
        launch_hash: &str,
        now_us: i64,
    ) -> Result<Option<LaunchContext>> {
        self.store.oauth_use_launch(launch_hash, now_us).await
    }

    /// Deletes expired jtis, codes, refresh tokens, revocations and launches.
    pub async fn oauth_purge(&self, now_us: i64) -> Result<()> {
        self.store.oauth_purge(now_us).await
    }

    // ---- onboarding

    /// Stores new invitations, all or nothing (one transaction).
    pub async fn create_invitations(&self, invitations: Vec<Invitation>) -> Result<()> {
        self.store.create_invitations(invitations).await
    }

    /// The invitation with this code hash, whatever its state.
    pub async fn invitation_by_code(&self, code_hash: &[u8]) -> Result<Option<Invitation>> {
        self.store.invitation_by_code(code_hash).await
    }

    /// Invitations of one child, newest first.
    pub async fn invitations_for(&self, patient_id: &str) -> Result<Vec<Invitation>> {
        self.store.invitations_for(patient_id).await
    }

    /// Redeems an invitation for `account_id`: checks and marks it used in ONE statement, so
    /// a code works once even when two people race. Returns the invitation (as it was
    /// before), or why it was refused (then nothing changed).
    pub async fn redeem_invitation(
        &self,
        code_hash: &[u8],
        account_id: &str,
        now_us: i64,
    ) -> Result<std::result::Result<Invitation, InvitationRefused>> {
        self.store
            .redeem_invitation(code_hash, account_id, now_us)
            .await
    }

    /// Gives back a redemption (the binding that followed it failed).
    pub async fn unredeem_invitation(&self, code_hash: &[u8]) -> Result<()> {
        self.store.unredeem_invitation(code_hash).await
    }

    /// Revokes an invitation; `false` if it was not open.
    pub async fn revoke_invitation(&self, id: &str, now_us: i64) -> Result<bool> {
        self.store.revoke_invitation(id, now_us).await
    }

    /// Records that a family link became active (idempotent). With `activity`, the link
    /// counts as family activity at `now_us` (a redemption); without, it does not (a
    /// professional confirmed a self-registration).
    pub async fn record_family_link(
        &self,
        patient_id: &str,
        person_id: &str,
        related_person_id: &str,
        now_us: i64,
        activity: bool,
    ) -> Result<()> {
        self.store
            .record_family_link(patient_id, person_id, related_person_id, now_us, activity)
            .await
    }

    /// Records family activity (a sign-in) of `person_id` on every passport they are linked to.
    pub async fn record_family_activity(&self, person_id: &str, now_us: i64) -> Result<()> {
        self.store.record_family_activity(person_id, now_us).await
    }

    /// The onboarding facts of every passport with an invitation or a family link.
    pub async fn passport_facts(&self, now_us: i64) -> Result<Vec<PassportFacts>> {
        self.store.passport_facts(now_us).await
    }

    /// Each passport's state at `now_us`.
    pub async fn passport_states(&self, now_us: i64) -> Result<Vec<(String, PassportState)>> {
        self.store.passport_states(now_us).await
    }

    /// How many passports are in each state (every state listed, in [`PassportState::ALL`]
    /// order): the commissioners' activation figures.
    pub async fn passport_state_counts(&self, now_us: i64) -> Result<Vec<(PassportState, u64)>> {
        self.store.passport_state_counts(now_us).await
    }

    // ---- break glass

    /// Every grant for one child, newest first.
    pub async fn break_glass_for_patient(&self, patient_id: &str) -> Result<Vec<BreakGlassRow>> {
        self.store.break_glass_for_patient(patient_id).await
    }

    /// The grants made by users of one organisation, newest first; with `only_unreviewed`,
    /// only those the privacy officer has not yet reviewed.
    pub async fn break_glass_for_organisation(
        &self,
        org_id: &str,
        only_unreviewed: bool,
    ) -> Result<Vec<BreakGlassRow>> {
        self.store
            .break_glass_for_organisation(org_id, only_unreviewed)
            .await
    }

    /// Marks a grant reviewed by `reviewer_account`; `false` if there is no such grant or
    /// it was already reviewed (the first review stands).
    pub async fn mark_break_glass_reviewed(
        &self,
        id: &str,
        reviewer_account: &str,
        now_us: i64,
    ) -> Result<bool> {
        self.store
            .mark_break_glass_reviewed(id, reviewer_account, now_us)
            .await
    }
}
