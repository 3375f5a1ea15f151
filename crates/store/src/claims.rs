//! Queries on account claims: the one-time link that lets the guest of an invited account
//! (made by a complimentary ticket) set its password. Only a hash of the token's verifier
//! is stored; `auth::claim` in the server makes, compares and spends tokens.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::account_claims;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = account_claims)]
pub struct ClaimRow {
    pub user_id: i64,
    pub selector: String,
    pub verifier_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
}

/// A fresh token's stored half: the selector and the verifier's hash, and when it expires.
#[derive(Clone, Debug)]
pub struct NewClaim {
    pub selector: String,
    pub verifier_hash: [u8; 32],
    pub expires_at: DateTime<Utc>,
}

/// The claim of an account just created as invited.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    claim: &NewClaim,
    issued_by: i64,
) -> QueryResult<()> {
    diesel::insert_into(account_claims::table)
        .values((
            account_claims::user_id.eq(user_id),
            account_claims::selector.eq(&claim.selector),
            account_claims::verifier_hash.eq(&claim.verifier_hash[..]),
            account_claims::issued_by.eq(issued_by),
            account_claims::expires_at.eq(claim.expires_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Replaces the token of an account still unclaimed (the old token stops working); false
/// when the account has no open claim (an ordinary account: nobody may take it over).
pub async fn renew(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    claim: &NewClaim,
    issued_by: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        account_claims::table
            .find(user_id)
            .filter(account_claims::claimed_at.is_null()),
    )
    .set((
        account_claims::selector.eq(&claim.selector),
        account_claims::verifier_hash.eq(&claim.verifier_hash[..]),
        account_claims::issued_by.eq(issued_by),
        account_claims::issued_at.eq(diesel::dsl::now),
        account_claims::expires_at.eq(claim.expires_at),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// The claim a token's selector names, unlocked (the first, cheap check).
pub async fn by_selector(conn: &mut AsyncPgConnection, selector: &str) -> QueryResult<Option<ClaimRow>> {
    account_claims::table
        .filter(account_claims::selector.eq(selector))
        .select(ClaimRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Closes the account's open claim: its password is set now, by the claim or otherwise
/// (`create-admin --reset-password`), so no token may set it again.
pub async fn close(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<usize> {
    diesel::update(
        account_claims::table
            .find(user_id)
            .filter(account_claims::claimed_at.is_null()),
    )
    .set(account_claims::claimed_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}
