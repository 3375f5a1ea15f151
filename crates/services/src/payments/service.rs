//! The top-up lifecycle. Every change of a top-up happens in a transaction holding its row
//! (then its user's, `locks` order); calls to the provider happen outside transactions, so
//! a slow provider holds no lock and no database session.

use diesel_async::AsyncPgConnection;

use super::{
    Payments, TopUpStatus,
    provider::{PaymentStatus, ProviderError, ProviderKind, ProviderPayment},
    store::{self, NewTopUp, TopUpRow},
};
use crate::{
    auth::Actor,
    error::{AppError, AppResult, ErrorCode},
    in_doubt::{self, Writes},
    locks,
    points::{
        self,
        store::{Entry, LedgerRow},
    },
};

/// A top-up amount within the configured bound.
fn validate_amount(payments: &Payments, amount: i64) -> AppResult<()> {
    let max = payments.config.max_top_up;
    if !(1..=max).contains(&amount) {
        return Err(AppError::bad_input(
            "amount",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(())
}

/// Provider payment keys are short tokens of letters, digits, `-` and `_` (Toss's are up to
/// 200 characters); anything else never came from the provider.
fn validate_payment_key(key: &str) -> AppResult<&str> {
    if key.is_empty()
        || key.len() > 200
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AppError::bad_input("paymentKey", "is not a payment key"));
    }
    Ok(key)
}

fn new_order_id() -> String {
    format!("bo_{}", uuid::Uuid::new_v4().simple())
}

/// Starts a top-up (`startTopUp`, and `chargePoints` on the sandbox). The same key answers
/// the same top-up; another amount with it is a CONFLICT. Refused with BAD_USER_INPUT when
/// the balance, the points in paid tickets, the top-ups still pending and this one would
/// exceed `POINTS_MAX_BALANCE`, and on the sandbox above the daily cap. The sandbox
/// confirms at once; a real provider's top-up stays PENDING until it is paid.
pub async fn start(
    writes: Writes<'_>,
    payments: &Payments,
    user_id: i64,
    amount: i64,
    key: &str,
) -> AppResult<TopUpRow> {
    let provider = payments.provider()?;
    validate_amount(payments, amount)?;
    let key = points::service::validate_key(key, "idempotencyKey")?;
    let mut conn = writes.db.get().await?;
    for _ in 0..3 {
        let attempt = in_doubt::write(&mut conn, writes, async |conn| -> AppResult<TopUpRow> {
            if let Some(done) = store::by_key(conn, user_id, &key).await? {
                return replay(done, amount);
            }
            locks::users(conn, &[user_id]).await?;
            points::service::ensure_room(conn, &payments.config, user_id, amount).await?;
            let sandbox = provider.kind() == ProviderKind::Sandbox;
            if sandbox {
                let given = store::sandbox_sum_last_day(conn, user_id).await?;
                let cap = payments.config.sandbox_daily_limit;
                if given + amount > cap {
                    return Err(AppError::rule(
                        ErrorCode::LimitExceeded,
                        format!(
                            "the sandbox gives at most {cap} points per account per 24 hours; {} left",
                            (cap - given).max(0)
                        ),
                    ));
                }
            }
            let order_id = new_order_id();
            let row = store::insert(
                conn,
                &NewTopUp {
                    user_id,
                    order_id: &order_id,
                    amount,
                    provider: provider.kind().as_str(),
                    status: TopUpStatus::Pending,
                    idempotency_key: &key,
                },
            )
            .await?;
            if !sandbox {
                return Ok(row);
            }
            // The sandbox's "payment": confirmed now, in the same transaction.
            let payment = ProviderPayment {
                payment_key: format!("sandbox_{order_id}"),
                order_id,
                status: PaymentStatus::Done,
                total_amount: amount,
            };
            Ok(settle_locked(conn, row, &payment).await?.0)
        })
        .await;
        match attempt {
            // Two first uses of one key: the loser reads the winner's top-up.
            Err(e) if is_unique_violation(&e) => continue,
            other => return other,
        }
    }
    Err(AppError::Conflict(
        "the top-up could not be started; retry".into(),
    ))
}

fn replay(done: TopUpRow, amount: i64) -> AppResult<TopUpRow> {
    if done.amount == amount {
        Ok(done)
    } else {
        Err(AppError::Conflict(
            "this idempotency key was used for a different amount".into(),
        ))
    }
}

fn is_unique_violation(e: &AppError) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    matches!(e, AppError::Internal(cause)
        if matches!(cause.downcast_ref::<DieselError>(), Some(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))))
}

/// `chargePoints` on a sandbox server: a sandbox top-up (capped, labelled), answered as its
/// ledger entry. Elsewhere refused: money enters through `startTopUp`.
pub async fn charge_sandbox(
    writes: Writes<'_>,
    payments: &Payments,
    user_id: i64,
    amount: i64,
    key: &str,
) -> AppResult<LedgerRow> {
    if !payments.is_sandbox() {
        return Err(AppError::Forbidden(
            "chargePoints gives points only on a sandbox server; pay a top-up with startTopUp and confirmTopUp",
        ));
    }
    let top_up = start(writes, payments, user_id, amount, key).await?;
    let mut conn = writes.db.get().await?;
    points::store::credit_of(&mut conn, top_up.id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("sandbox top-up {} has no credit", top_up.id)))
}

/// The browser's confirmation (`confirmTopUp`): the widget's `paymentKey`, `orderId` and
/// `amount`. The amount must be the top-up's (a browser that changed it is refused and
/// nothing is asked of the provider); then the provider confirms, and the top-up is settled
/// by its answer. No answer in time leaves it PENDING (answered as such, not as an error):
/// a later confirm, the webhook or the reconciliation job settles it, once.
pub async fn confirm(
    writes: Writes<'_>,
    payments: &Payments,
    user_id: i64,
    order_id: &str,
    payment_key: &str,
    amount: i64,
) -> AppResult<TopUpRow> {
    let provider = payments.provider()?;
    let payment_key = validate_payment_key(payment_key)?;
    let mut conn = writes.db.get().await?;
    let top_up = store::by_order(&mut conn, order_id)
        .await?
        .filter(|t| t.user_id == user_id)
        .ok_or(AppError::NotFound("top-up"))?;
    if amount != top_up.amount {
        return Err(AppError::bad_input(
            "amount",
            "differs from the top-up's amount: the payment was not confirmed",
        ));
    }
    if top_up.provider != provider.kind().as_str() {
        return Err(AppError::Conflict(format!(
            "this top-up was made with the {} provider",
            top_up.provider
        )));
    }
    if top_up.status != TopUpStatus::Pending {
        return if top_up.payment_key.as_deref() == Some(payment_key) {
            Ok(top_up)
        } else {
            Err(AppError::Conflict(
                "this top-up was paid with another payment".into(),
            ))
        };
    }
    // Recorded first: if the provider then times out, the reconciliation job can look the
    // payment up by its key.
    let recorded = store::set_payment_key(&mut conn, top_up.id, payment_key).await;
    match recorded {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(AppError::Conflict(
                "this top-up is being paid with another payment".into(),
            ));
        }
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            return Err(AppError::Conflict(
                "this payment belongs to another top-up".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    drop(conn);
    let answer = provider
        .confirm(payment_key, &top_up.order_id, top_up.amount)
        .await;
    let answer = match answer {
        // Confirmed already (a replay, or the other instance of a race): the provider's
        // record says what happened.
        Err(ProviderError::Refused { code, .. }) if code == "ALREADY_PROCESSED_PAYMENT" => {
            provider.payment(payment_key).await
        }
        other => other,
    };
    let mut conn = writes.db.get().await?;
    match answer {
        Ok(payment) => Ok(settle(&mut conn, writes, payments, top_up.id, &payment).await?),
        Err(ProviderError::Unreachable(e)) => {
            tracing::warn!(top_up.id = top_up.id, error = %e, "payment provider did not answer a confirm; the top-up stays pending");
            Ok(store::by_id(&mut conn, top_up.id).await?.unwrap_or(top_up))
        }
        Err(ProviderError::NotFound) => {
            Err(fail(&mut conn, writes, top_up.id, "the provider knows no such payment").await?)
        }
        Err(ProviderError::Refused { code, message }) => {
            Err(fail(&mut conn, writes, top_up.id, &format!("{code}: {message}")).await?)
        }
    }
}

/// Marks a PENDING top-up FAILED (nothing was credited) and says why, as the error to answer.
async fn fail(conn: &mut AsyncPgConnection, writes: Writes<'_>, id: i64, why: &str) -> AppResult<AppError> {
    in_doubt::write(conn, writes, async |conn| -> AppResult<()> {
        if let Some(t) = locks::top_up(conn, id).await?
            && t.status == TopUpStatus::Pending
        {
            store::set_status(conn, id, TopUpStatus::Failed, Some(why)).await?;
        }
        Ok(())
    })
    .await?;
    Ok(AppError::Conflict(format!(
        "the payment provider refused the payment: {why}"
    )))
}

/// What settling changed, for the log and the tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    Credited,
    Failed,
    Cancelled { taken: i64, debt: i64 },
    Refunded,
    Unchanged,
}

/// Settles a top-up by the provider's record of its payment, holding the top-up's row:
/// idempotent, so the browser, the webhook and the job may all bring the same news.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    payments: &Payments,
    top_up_id: i64,
    payment: &ProviderPayment,
) -> AppResult<TopUpRow> {
    let row = in_doubt::write(conn, writes, async |conn| -> AppResult<TopUpRow> {
        let row = locks::top_up(conn, top_up_id).await?.ok_or(AppError::NotFound("top-up"))?;
        let (row, what) = settle_locked(conn, row, payment).await?;
        if what != Settled::Unchanged {
            tracing::info!(top_up.id = row.id, top_up.status = row.status.as_db(), settled = ?what, "top-up settled");
        }
        Ok(row)
    })
    .await?;
    if matches!(row.status, TopUpStatus::Cancelled) && row.debt_created > 0 {
        payments.debtors.mark(row.user_id);
    }
    Ok(row)
}

async fn settle_locked(
    conn: &mut AsyncPgConnection,
    row: TopUpRow,
    payment: &ProviderPayment,
) -> AppResult<(TopUpRow, Settled)> {
    if payment.order_id != row.order_id
        || row
            .payment_key
            .as_deref()
            .is_some_and(|k| k != payment.payment_key)
    {
        return Err(AppError::Conflict("the payment belongs to another order".into()));
    }
    use PaymentStatus as P;
    use TopUpStatus as T;
    match (row.status, payment.status) {
        (T::Pending | T::Failed, P::Done) => {
            if payment.total_amount != row.amount {
                // Never credit an amount the order did not ask for. The provider took
                // money we do not credit: an operator must give it back.
                tracing::error!(
                    top_up.id = row.id,
                    paid = payment.total_amount,
                    expected = row.amount,
                    "a payment of the wrong amount was confirmed at the provider: refund it by hand"
                );
                let r = store::set_status(
                    conn,
                    row.id,
                    T::Failed,
                    Some("paid amount differs from the order"),
                )
                .await?;
                return Ok((r, Settled::Failed));
            }
            store::set_payment_key(conn, row.id, &payment.payment_key)
                .await?
                .ok_or_else(|| AppError::Conflict("the payment belongs to another order".into()))?;
            locks::users(conn, &[row.user_id]).await?;
            let entry = Entry {
                user_id: row.user_id,
                kind: "top_up",
                amount: row.amount,
                reservation_id: None,
                idempotency_key: None,
                reason: None,
                actor_id: None,
                top_up_id: Some(row.id),
            };
            points::store::apply(conn, &entry)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            let r = store::set_status(conn, row.id, T::Confirmed, None).await?;
            boxoffice_outbox::append::top_up_confirmed(conn, row.id).await?;
            Ok((r, Settled::Credited))
        }
        (T::Pending, P::Aborted | P::Expired) => {
            let r = store::set_status(conn, row.id, T::Failed, Some("the payment was not completed")).await?;
            Ok((r, Settled::Failed))
        }
        (T::Pending | T::Failed, P::Canceled) => {
            let r = store::set_status(conn, row.id, T::Cancelled, Some("cancelled at the provider")).await?;
            Ok((r, Settled::Cancelled { taken: 0, debt: 0 }))
        }
        (T::Confirmed, P::Canceled) => {
            // Cancelled by the provider after we credited it (a chargeback, a dashboard
            // refund): the points come back out; what was already spent becomes debt.
            locks::users(conn, &[row.user_id]).await?;
            let (_, debt) = points::store::take_back(conn, row.user_id, row.amount, row.id).await?;
            if debt > 0 {
                store::add_debt_created(conn, row.id, debt).await?;
            }
            let r = store::set_status(
                conn,
                row.id,
                T::Cancelled,
                Some("cancelled at the provider after credit"),
            )
            .await?;
            Ok((
                r,
                Settled::Cancelled {
                    taken: row.amount - debt,
                    debt,
                },
            ))
        }
        (T::Refunding, P::Canceled) => {
            let r = store::set_status(conn, row.id, T::Refunded, None).await?;
            Ok((r, Settled::Refunded))
        }
        (_, P::PartialCanceled) => {
            // boxoffice never cancels part of a top-up; one cancelled in part from the
            // provider's dashboard is an operator's matter (an `adjustPoints` with a reason).
            tracing::warn!(
                top_up.id = row.id,
                "a top-up was cancelled in part at the provider: adjust the balance by hand"
            );
            Ok((row, Settled::Unchanged))
        }
        _ => Ok((row, Settled::Unchanged)),
    }
}

/// Gives a top-up back to the card (`refundTopUp`), at most once. Only a CONFIRMED top-up
/// whose points are all still in the balance (never spent): they leave the balance first,
/// then the provider is asked; if it refuses, they come back. If it does not answer, the
/// top-up stays REFUNDING and the reconciliation job asks again (same idempotency key).
pub async fn refund(
    writes: Writes<'_>,
    payments: &Payments,
    actor: Actor,
    top_up_id: i64,
) -> AppResult<TopUpRow> {
    let provider = payments.provider()?;
    let mut conn = writes.db.get().await?;
    let row = in_doubt::write(&mut conn, writes, async |conn| -> AppResult<TopUpRow> {
            let row = locks::top_up(conn, top_up_id)
                .await?
                .filter(|t| t.user_id == actor.id || actor.role == crate::auth::Role::Admin)
                .ok_or(AppError::NotFound("top-up"))?;
            match row.status {
                TopUpStatus::Confirmed => {}
                TopUpStatus::Refunding => return Ok(row),
                TopUpStatus::Refunded => return Err(AppError::Conflict("this top-up was already refunded".into())),
                _ => return Err(AppError::Conflict("only a confirmed top-up can be refunded".into())),
            }
            if row.provider != provider.kind().as_str() {
                return Err(AppError::Conflict(format!("this top-up was made with the {} provider", row.provider)));
            }
            locks::users(conn, &[row.user_id]).await?;
            let entry = Entry {
                user_id: row.user_id,
                kind: "top_up_refund",
                amount: -row.amount,
                reservation_id: None,
                idempotency_key: None,
                reason: Some("refunded to the card"),
                actor_id: (actor.id != row.user_id).then_some(actor.id),
                top_up_id: Some(row.id),
            };
            points::store::apply(conn, &entry).await?.ok_or_else(|| {
                AppError::rule(
                    ErrorCode::InsufficientPoints,
                    "some of this top-up's points were spent: only a top-up still whole in the balance goes back to the card",
                )
            })?;
            Ok(store::set_status(conn, row.id, TopUpStatus::Refunding, None).await?)
        })
        .await?;
    if row.status != TopUpStatus::Refunding {
        return Ok(row);
    }
    drop(conn);
    finish_refund(writes, payments, row).await
}

/// Asks the provider to cancel a REFUNDING top-up's payment and records the answer.
pub(super) async fn finish_refund(
    writes: Writes<'_>,
    payments: &Payments,
    row: TopUpRow,
) -> AppResult<TopUpRow> {
    let provider = payments.provider()?;
    let payment_key = row.payment_key.clone().unwrap_or_default();
    let answer = provider
        .cancel(
            &payment_key,
            "refund requested by the customer",
            &format!("refund-{}", row.order_id),
        )
        .await;
    let mut conn = writes.db.get().await?;
    match answer {
        Ok(p) if p.status == PaymentStatus::Canceled => {
            in_doubt::write(&mut conn, writes, async |conn| -> AppResult<TopUpRow> {
                let r = locks::top_up(conn, row.id)
                    .await?
                    .ok_or(AppError::NotFound("top-up"))?;
                if r.status != TopUpStatus::Refunding {
                    return Ok(r);
                }
                Ok(store::set_status(conn, row.id, TopUpStatus::Refunded, None).await?)
            })
            .await
        }
        Ok(_) | Err(ProviderError::Unreachable(_)) => {
            tracing::warn!(
                top_up.id = row.id,
                "payment provider did not settle a refund; it will be asked again"
            );
            store::touch(&mut conn, row.id).await?;
            Ok(store::by_id(&mut conn, row.id).await?.unwrap_or(row))
        }
        Err(e @ (ProviderError::Refused { .. } | ProviderError::NotFound)) => {
            // A definite no: the points go back into the balance, the top-up stays confirmed.
            let why = e.to_string();
            in_doubt::write(&mut conn, writes, async |conn| -> AppResult<()> {
                let Some(r) = locks::top_up(conn, row.id).await? else {
                    return Ok(());
                };
                if r.status != TopUpStatus::Refunding {
                    return Ok(());
                }
                locks::users(conn, &[r.user_id]).await?;
                let entry = Entry {
                    user_id: r.user_id,
                    kind: "top_up_refund",
                    amount: r.amount,
                    reservation_id: None,
                    idempotency_key: None,
                    reason: Some("the provider refused the refund"),
                    actor_id: None,
                    top_up_id: Some(r.id),
                };
                points::store::apply(conn, &entry)
                    .await?
                    .ok_or(AppError::NotFound("user"))?;
                store::set_status(conn, r.id, TopUpStatus::Confirmed, Some(&why)).await?;
                Ok(())
            })
            .await?;
            Err(AppError::Conflict(why))
        }
    }
}

/// Looks a top-up's payment up at the provider and settles it by the answer: what the
/// reconciliation job and the webhook do. `Ok(None)`: the provider had no answer.
pub async fn reconcile_one(
    writes: Writes<'_>,
    payments: &Payments,
    row: TopUpRow,
) -> AppResult<Option<TopUpRow>> {
    let provider = payments.provider()?;
    if row.status == TopUpStatus::Refunding {
        return finish_refund(writes, payments, row).await.map(Some);
    }
    let answer = match &row.payment_key {
        Some(k) => provider.payment(k).await,
        None => provider.payment_of_order(&row.order_id).await,
    };
    let mut conn = writes.db.get().await?;
    match answer {
        Ok(p) => Ok(Some(settle(&mut conn, writes, payments, row.id, &p).await?)),
        Err(ProviderError::NotFound) => {
            let age = chrono::Utc::now() - row.created_at;
            if age.to_std().unwrap_or_default() >= payments.config.pending_expiry {
                let _ = fail(&mut conn, writes, row.id, "never paid").await?;
                return Ok(store::by_id(&mut conn, row.id).await?);
            }
            store::touch(&mut conn, row.id).await?;
            Ok(Some(row))
        }
        Err(e) => {
            tracing::warn!(top_up.id = row.id, error = %e, "payment provider: no answer while reconciling");
            store::touch(&mut conn, row.id).await?;
            Ok(None)
        }
    }
}
