//! The provider's HTTP callback: `POST /payments/toss/webhook` (Toss's
//! `PAYMENT_STATUS_CHANGED` event: `{ eventType, createdAt, data: Payment }`).
//!
//! Toss does not sign payment-status webhooks (only some other event types carry a
//! signature), so the body is never believed: it only says which order to look at. The
//! server then reads the payment from Toss's API with its secret key and settles the
//! top-up by that answer. A forged webhook can at most make us ask Toss about an order.
//! Unknown orders, payments Toss does not know, and payments of another order are refused
//! (404, 400); a Toss that does not answer gets 503, so it sends the event again.

use axum::{Json, Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    provider::{ProviderError, ProviderKind},
    service, store,
};
use crate::{error::AppError, state::AppState};

pub const PATH: &str = "/payments/toss/webhook";

pub fn router<S: Clone + Send + Sync + 'static>(state: AppState) -> Router<S> {
    Router::new().route(PATH, post(toss)).with_state(state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_type: String,
    #[serde(default)]
    data: Option<EventPayment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventPayment {
    payment_key: Option<String>,
    order_id: Option<String>,
}

fn answer(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "message": message })))
}

async fn toss(State(state): State<AppState>, body: Bytes) -> (StatusCode, Json<Value>) {
    let Ok(event) = serde_json::from_slice::<Event>(&body) else {
        return answer(StatusCode::BAD_REQUEST, "not a webhook event");
    };
    if event.event_type != "PAYMENT_STATUS_CHANGED" {
        return answer(StatusCode::OK, "ignored: not a payment status event");
    }
    let payments = &state.payments;
    let Ok(provider) = payments.provider() else {
        return answer(StatusCode::NOT_FOUND, "this server takes no Toss payments");
    };
    if provider.kind() != ProviderKind::Toss {
        return answer(StatusCode::NOT_FOUND, "this server takes no Toss payments");
    }
    let Some(EventPayment {
        payment_key: Some(payment_key),
        order_id: Some(order_id),
    }) = event.data
    else {
        return answer(StatusCode::BAD_REQUEST, "the event names no payment");
    };
    let top_up = match state.db.get().await {
        Ok(mut conn) => store::by_order(&mut conn, &order_id).await,
        Err(_) => return answer(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let top_up = match top_up {
        Ok(Some(t)) if t.provider == "toss" => t,
        Ok(_) => {
            tracing::warn!(order.id = %order_id, "payment webhook for an unknown order refused");
            return answer(StatusCode::NOT_FOUND, "unknown order");
        }
        Err(_) => return answer(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    // The provider's own record, never the body's claims.
    let payment = match provider.payment(&payment_key).await {
        Ok(p) => p,
        Err(ProviderError::Unreachable(e)) => {
            tracing::warn!(top_up.id = top_up.id, error = %e, "payment webhook: the provider did not answer the look-up");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
        Err(ProviderError::NotFound | ProviderError::Refused { .. }) => {
            tracing::warn!(
                top_up.id = top_up.id,
                "payment webhook for a payment the provider does not know: refused"
            );
            return answer(StatusCode::BAD_REQUEST, "unknown payment");
        }
    };
    if payment.order_id != top_up.order_id {
        tracing::warn!(
            top_up.id = top_up.id,
            "payment webhook naming another order's payment: refused"
        );
        return answer(StatusCode::BAD_REQUEST, "the payment belongs to another order");
    }
    let settled = match state.db.get().await {
        Ok(mut conn) => service::settle(&mut conn, state.writes(), payments, top_up.id, &payment).await,
        Err(e) => Err(e.into()),
    };
    match settled {
        Ok(t) => (StatusCode::OK, Json(json!({ "status": t.status.as_db() }))),
        Err(AppError::Conflict(m)) => answer(StatusCode::BAD_REQUEST, &m),
        Err(e) => {
            tracing::warn!(top_up.id = top_up.id, error = %e, "payment webhook could not be settled");
            answer(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}
