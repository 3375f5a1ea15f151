//! Money that is real (C17, I10): top-ups through Toss Payments' protocol (a local
//! stand-in, `toss_fake`), the sandbox and its cap, refunds to the card, cancellations
//! after credit, bounds that keep every amount within a GraphQL `Int`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    common::{Session, TestApp, code, layout},
    toss_fake::FakeToss,
};

const START: &str = "mutation($a: Int!, $k: String!) { startTopUp(amount: $a, idempotencyKey: $k) { id amount status orderId orderName provider sandbox } }";
const CONFIRM: &str = "mutation($p: String!, $o: String!, $a: Int!) { confirmTopUp(paymentKey: $p, orderId: $o, amount: $a) { id status amount failure } }";
const REFUND: &str = "mutation($t: ID!) { refundTopUp(topUpId: $t) { id status } }";
const CHARGE: &str = "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { id kind amount balanceAfter topUpId } }";
const WALLET: &str =
    "{ wallet { points debt inTickets provider sandbox sandboxDailyLimit sandboxRemaining clientKey } }";
const HOLD: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id totalPrice } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }";

async fn toss_app(fake: &FakeToss, extra: &[(&str, &str)]) -> TestApp {
    let cfg = fake.config();
    let mut vars: Vec<(&str, &str)> = cfg.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend_from_slice(extra);
    TestApp::spawn_with(&vars).await
}

async fn points(app: &TestApp, who: &Session) -> i64 {
    app.ok(Some(&who.access), "{ me { points } }", json!({})).await["me"]["points"]
        .as_i64()
        .unwrap()
}

async fn start(app: &TestApp, who: &Session, amount: i64, key: &str) -> Value {
    app.ok(Some(&who.access), START, json!({ "a": amount, "k": key }))
        .await["startTopUp"]
        .clone()
}

async fn confirm(app: &TestApp, who: &Session, key: &str, order: &str, amount: i64) -> Value {
    app.gql(
        Some(&who.access),
        CONFIRM,
        json!({ "p": key, "o": order, "a": amount }),
    )
    .await
}

async fn credits(app: &TestApp, top_up: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM point_ledger WHERE kind = 'top_up' AND top_up_id = {top_up}"
    ))
    .await
}

async fn assert_money(app: &TestApp) {
    app.assert_invariants().await;
    let money = app.violations_of(boxoffice::invariants::MONEY).await;
    assert!(money.is_empty(), "{money:?}");
}

#[tokio::test]
async fn a_top_up_is_credited_once_only_when_the_provider_confirms_its_amount() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = start(&app, &fan, 10_000, "t1").await;
    assert_eq!(t["status"], "PENDING");
    assert_eq!(t["provider"], "TOSS");
    assert_eq!(t["sandbox"], false);
    let order = t["orderId"].as_str().unwrap();
    // Same key: the same top-up; another amount with it: a mistake.
    assert_eq!(start(&app, &fan, 10_000, "t1").await["id"], t["id"]);
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), START, json!({ "a": 5, "k": "t1" }))
                .await
        ),
        "CONFLICT"
    );
    assert_eq!(points(&app, &fan).await, 0, "nothing credited while pending");

    // The browser changed the amount it reports: refused before the provider is asked.
    let key = fake.authorize(order, 10_000);
    let body = confirm(&app, &fan, &key, order, 100).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(fake.confirms.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(points(&app, &fan).await, 0);

    // Another fan cannot confirm it.
    let other = app.sign_up("other@example.com").await;
    assert_eq!(
        code(&confirm(&app, &other, &key, order, 10_000).await),
        "NOT_FOUND"
    );

    let body = confirm(&app, &fan, &key, order, 10_000).await;
    assert_eq!(body["data"]["confirmTopUp"]["status"], "CONFIRMED", "{body}");
    assert_eq!(points(&app, &fan).await, 10_000);
    // Replayed: answered, never credited again.
    for _ in 0..3 {
        let again = confirm(&app, &fan, &key, order, 10_000).await;
        assert_eq!(again["data"]["confirmTopUp"]["status"], "CONFIRMED", "{again}");
    }
    assert_eq!(points(&app, &fan).await, 10_000);
    assert_eq!(credits(&app, t["id"].as_str().unwrap()).await, 1);
    let history = app
        .ok(
            Some(&fan.access),
            "{ pointHistory(first: 5) { nodes { kind amount topUpId description } } }",
            json!({}),
        )
        .await;
    let entry = &history["pointHistory"]["nodes"][0];
    assert_eq!(entry["kind"], "TOP_UP");
    assert_eq!(entry["topUpId"], t["id"]);
    assert!(
        entry["description"].as_str().unwrap().starts_with("Top-up"),
        "{entry}"
    );
    assert_money(&app).await;
}

#[tokio::test]
async fn a_payment_of_another_amount_at_the_provider_is_refused_and_nothing_credited() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = start(&app, &fan, 50_000, "t").await;
    let order = t["orderId"].as_str().unwrap();
    // The widget was tampered with: the card was charged 100, the browser claims 50,000.
    let key = fake.authorize(order, 100);
    let body = confirm(&app, &fan, &key, order, 50_000).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(points(&app, &fan).await, 0);
    assert_eq!(fake.captures.load(std::sync::atomic::Ordering::Relaxed), 0);
    let status = app
        .count(&format!(
            "SELECT count(*) AS n FROM top_ups WHERE id = {} AND status = 'failed'",
            t["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 1);
    assert_money(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_raced_from_two_instances_credits_once() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let cfg = fake.config();
    let vars: Vec<(&str, &str)> = cfg.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = app.second_instance(&vars).await;
    let fan = app.sign_up("fan@example.com").await;
    for round in 0..5 {
        let t = start(&app, &fan, 1_000, &format!("r{round}")).await;
        let order = t["orderId"].as_str().unwrap().to_owned();
        let key = fake.authorize(&order, 1_000);
        let calls = (0..6).map(|i| {
            let (app, key, order, fan) = (
                if i % 2 == 0 { &app } else { &second },
                key.clone(),
                order.clone(),
                fan.clone(),
            );
            async move { confirm(app, &fan, &key, &order, 1_000).await }
        });
        for body in futures_util::future::join_all(calls).await {
            assert_eq!(body["data"]["confirmTopUp"]["status"], "CONFIRMED", "{body}");
        }
        assert_eq!(credits(&app, t["id"].as_str().unwrap()).await, 1);
    }
    assert_eq!(points(&app, &fan).await, 5_000);
    assert_money(&app).await;
}

#[tokio::test]
async fn a_provider_timeout_leaves_the_top_up_pending_until_a_confirm_the_webhook_or_the_job_settles_it() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[("PAYMENT_TIMEOUT_MS", "300")]).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut settled = Vec::new();
    for (i, how) in ["confirm", "webhook", "job"].into_iter().enumerate() {
        let t = start(&app, &fan, 1_000, how).await;
        let order = t["orderId"].as_str().unwrap().to_owned();
        let key = fake.authorize(&order, 1_000);
        // Toss takes the money, but its answer comes after our timeout.
        fake.set_confirm_delay(Some(Duration::from_millis(1_500)));
        let body = confirm(&app, &fan, &key, &order, 1_000).await;
        fake.set_confirm_delay(None);
        assert_eq!(body["data"]["confirmTopUp"]["status"], "PENDING", "{body}");
        assert_eq!(fake.payment(&key).unwrap().status, "DONE");
        assert_eq!(
            points(&app, &fan).await,
            1_000 * i as i64,
            "nothing credited while pending"
        );
        match how {
            "confirm" => {
                let again = confirm(&app, &fan, &key, &order, 1_000).await;
                assert_eq!(again["data"]["confirmTopUp"]["status"], "CONFIRMED", "{again}");
            }
            "webhook" => assert_eq!(fake.webhook(&app.url(""), &key, &order, "DONE").await, 200),
            _ => {
                let n = boxoffice::payments::reconcile::run_once(
                    app.state.writes(),
                    &app.state.payments,
                    Duration::ZERO,
                )
                .await
                .unwrap();
                assert!(n >= 1);
            }
        }
        assert_eq!(
            points(&app, &fan).await,
            1_000 * (i as i64 + 1),
            "settled by {how}"
        );
        settled.push((t["id"].as_str().unwrap().to_owned(), key, order));
    }
    // Every way again, for every top-up: still credited once each.
    for (_, key, order) in &settled {
        confirm(&app, &fan, key, order, 1_000).await;
        assert_eq!(fake.webhook(&app.url(""), key, order, "DONE").await, 200);
    }
    boxoffice::payments::reconcile::run_once(app.state.writes(), &app.state.payments, Duration::ZERO)
        .await
        .unwrap();
    for (id, _, _) in &settled {
        assert_eq!(credits(&app, id).await, 1);
    }
    assert_eq!(points(&app, &fan).await, 3_000);
    assert_money(&app).await;
}

#[tokio::test]
async fn webhooks_for_unknown_orders_or_payments_the_provider_does_not_know_are_refused() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = start(&app, &fan, 7_000, "t").await;
    let order = t["orderId"].as_str().unwrap().to_owned();
    // Unknown order.
    assert_eq!(
        fake.webhook(&app.url(""), "tpk_nothing", "bo_unknownorder", "DONE")
            .await,
        404
    );
    // Toss's payment-status webhooks are unsigned: a forged one claiming DONE for our
    // order, with a payment key Toss does not know, is checked against Toss and refused.
    assert_eq!(
        fake.webhook(&app.url(""), "tpk_forged", &order, "DONE").await,
        400
    );
    // A real payment of another order, named for this one.
    let other = start(&app, &fan, 7_000, "other").await;
    let other_key = fake.authorize(other["orderId"].as_str().unwrap(), 7_000);
    assert_eq!(fake.webhook(&app.url(""), &other_key, &order, "DONE").await, 400);
    // A webhook claiming DONE for a payment Toss says is not done changes nothing.
    let key = fake.authorize(&order, 7_000);
    assert_eq!(fake.webhook(&app.url(""), &key, &order, "DONE").await, 200);
    let not_json = app
        .http
        .post(app.url("/payments/toss/webhook"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(points(&app, &fan).await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM top_ups WHERE status <> 'pending'")
            .await,
        0
    );
    assert_money(&app).await;
}

#[tokio::test]
async fn a_payment_cancelled_by_the_provider_after_credit_takes_the_points_back_and_leaves_a_debt_that_blocks_holds()
 {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let show = app.show(layout(1, 10), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = start(&app, &fan, 1_000, "t").await;
    let order = t["orderId"].as_str().unwrap().to_owned();
    let key = fake.authorize(&order, 1_000);
    confirm(&app, &fan, &key, &order, 1_000).await;
    // Spend 150 of it on a seat.
    let r = app
        .ok(
            Some(&fan.access),
            HOLD,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await;
    let rid = r["reserveSeats"]["id"].as_str().unwrap().to_owned();
    app.ok(Some(&fan.access), PAY, json!({ "r": rid, "k": "p" }))
        .await;
    assert_eq!(points(&app, &fan).await, 850);

    // A chargeback: the provider cancels the payment, and says so.
    fake.cancel_from_dashboard(&key);
    assert_eq!(fake.webhook(&app.url(""), &key, &order, "CANCELED").await, 200);
    assert_eq!(
        fake.webhook(&app.url(""), &key, &order, "CANCELED").await,
        200,
        "a repeat is harmless"
    );
    let w = app.ok(Some(&fan.access), WALLET, json!({})).await;
    assert_eq!(w["wallet"]["points"], 0);
    assert_eq!(w["wallet"]["debt"], 150, "the 150 spent are owed");
    let body = app
        .gql(
            Some(&fan.access),
            HOLD,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } }),
        )
        .await;
    assert_eq!(
        code(&body),
        "INSUFFICIENT_POINTS",
        "an account in debt takes no new holds"
    );
    // Another instance learns of the debt within a second (it keeps the set of debtors).
    let cfg = fake.config();
    let vars: Vec<(&str, &str)> = cfg.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = app.second_instance(&vars).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let body = second
        .gql(
            Some(&fan.access),
            HOLD,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } }),
        )
        .await;
    assert_eq!(code(&body), "INSUFFICIENT_POINTS", "{body}");
    assert_money(&app).await;

    // The next top-up pays the debt first.
    let t2 = start(&app, &fan, 1_000, "t2").await;
    let order2 = t2["orderId"].as_str().unwrap().to_owned();
    let key2 = fake.authorize(&order2, 1_000);
    confirm(&app, &fan, &key2, &order2, 1_000).await;
    let w = app.ok(Some(&fan.access), WALLET, json!({})).await;
    assert_eq!(w["wallet"]["points"], 850);
    assert_eq!(w["wallet"]["debt"], 0);
    app.ok(
        Some(&fan.access),
        HOLD,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } }),
    )
    .await;
    assert_money(&app).await;
}

#[tokio::test]
async fn an_unspent_top_up_goes_back_to_the_card_at_most_once() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[("PAYMENT_TIMEOUT_MS", "300")]).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut paid = Vec::new();
    for k in ["a", "b", "c"] {
        let t = start(&app, &fan, 500, k).await;
        let order = t["orderId"].as_str().unwrap().to_owned();
        let key = fake.authorize(&order, 500);
        confirm(&app, &fan, &key, &order, 500).await;
        paid.push((t["id"].as_str().unwrap().to_owned(), key));
    }
    let (a, a_key) = &paid[0];
    let r = app.ok(Some(&fan.access), REFUND, json!({ "t": a })).await;
    assert_eq!(r["refundTopUp"]["status"], "REFUNDED");
    assert_eq!(fake.payment(a_key).unwrap().status, "CANCELED");
    assert_eq!(points(&app, &fan).await, 1_000);
    assert_eq!(
        code(&app.gql(Some(&fan.access), REFUND, json!({ "t": a })).await),
        "CONFLICT"
    );
    let other = app.sign_up("other@example.com").await;
    assert_eq!(
        code(
            &app.gql(Some(&other.access), REFUND, json!({ "t": paid[1].0 }))
                .await
        ),
        "NOT_FOUND"
    );

    // The provider does not answer in time: REFUNDING (points already out), then the job.
    let (b, b_key) = &paid[1];
    fake.set_cancel_delay(Some(Duration::from_millis(1_000)));
    let r = app.ok(Some(&fan.access), REFUND, json!({ "t": b })).await;
    fake.set_cancel_delay(None);
    assert_eq!(r["refundTopUp"]["status"], "REFUNDING");
    assert_eq!(points(&app, &fan).await, 500);
    boxoffice::payments::reconcile::run_once(app.state.writes(), &app.state.payments, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(fake.payment(b_key).unwrap().status, "CANCELED");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM top_ups WHERE id = {b} AND status = 'refunded'"
        ))
        .await,
        1
    );

    // Spent in part: it cannot go back whole.
    app.ok(
        Some(&app.user_with_role("root@example.com", "admin").await.access),
        "mutation($u: ID!) { adjustPoints(userId: $u, amount: -1, reason: \"spent\") { id } }",
        json!({ "u": fan.id.to_string() }),
    )
    .await;
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), REFUND, json!({ "t": paid[2].0 }))
                .await
        ),
        "INSUFFICIENT_POINTS"
    );
    assert_eq!(points(&app, &fan).await, 499);
    assert_money(&app).await;
}

#[tokio::test]
async fn the_sandbox_is_capped_and_labelled_and_prod_without_a_provider_refuses_top_ups() {
    // The abuse of 2026-12: one user minting points as fast as the API answers. With the
    // default configuration (the sandbox in dev) the day's cap is all there is.
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    let mut refused = 0;
    for i in 0..120 {
        let body = app
            .gql(
                Some(&fan.access),
                CHARGE,
                json!({ "a": 10_000, "k": format!("k{i}") }),
            )
            .await;
        if body["errors"].is_null() {
            assert!(body["data"]["chargePoints"]["topUpId"].is_string());
        } else {
            assert_eq!(code(&body), "LIMIT_EXCEEDED", "{body}");
            refused += 1;
        }
    }
    assert_eq!(refused, 20);
    for i in 0..5 {
        let body = app
            .gql(Some(&fan.access), START, json!({ "a": 1, "k": format!("s{i}") }))
            .await;
        assert_eq!(code(&body), "LIMIT_EXCEEDED");
    }
    assert_eq!(points(&app, &fan).await, 1_000_000);
    let w = app.ok(Some(&fan.access), WALLET, json!({})).await;
    assert_eq!(w["wallet"]["sandbox"], true);
    assert_eq!(w["wallet"]["provider"], "SANDBOX");
    assert_eq!(w["wallet"]["sandboxRemaining"], 0);
    let t = app
        .ok(
            Some(&app.sign_up("b@example.com").await.access),
            START,
            json!({ "a": 5, "k": "x" }),
        )
        .await;
    assert_eq!(t["startTopUp"]["status"], "CONFIRMED");
    assert_eq!(t["startTopUp"]["sandbox"], true);
    assert_money(&app).await;

    let prod = TestApp::spawn_with(&[("BOXOFFICE_ENV", "prod")]).await;
    let fan = prod.sign_up("fan@example.com").await;
    for body in [
        prod.gql(Some(&fan.access), CHARGE, json!({ "a": 10_000, "k": "k" }))
            .await,
        prod.gql(Some(&fan.access), START, json!({ "a": 10_000, "k": "k" }))
            .await,
    ] {
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
    }
    let w = prod.ok(Some(&fan.access), WALLET, json!({})).await;
    assert_eq!(w["wallet"]["provider"], Value::Null);
    assert_eq!(points(&prod, &fan).await, 0);
}

#[tokio::test]
async fn amounts_and_balances_stay_within_the_int_they_are_served_in() {
    let app = TestApp::spawn_with(&[("POINTS_MAX_BALANCE", "1000"), ("POINTS_MAX_TOP_UP", "600")]).await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    for amount in [0_i64, -1, 601, 2_147_483_648, 9_007_199_254_740_991] {
        let body = app
            .gql(
                Some(&fan.access),
                START,
                json!({ "a": amount, "k": format!("k{amount}") }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{amount}: {body}");
    }
    app.ok(Some(&fan.access), START, json!({ "a": 600, "k": "a" }))
        .await;
    // 600 + 600 > 1000.
    let body = app
        .gql(Some(&fan.access), START, json!({ "a": 600, "k": "b" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "amount");
    // Paid tickets count: they come back as points.
    let r = app
        .ok(
            Some(&fan.access),
            HOLD,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await;
    app.ok(
        Some(&fan.access),
        PAY,
        json!({ "r": r["reserveSeats"]["id"], "k": "p" }),
    )
    .await;
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), START, json!({ "a": 401, "k": "c" }))
                .await
        ),
        "BAD_USER_INPUT"
    );
    app.ok(Some(&fan.access), START, json!({ "a": 400, "k": "d" }))
        .await;
    // Admin grants are bounded the same way.
    let grant = "mutation($u: ID!, $a: Int!) { adjustPoints(userId: $u, amount: $a, reason: \"gift\") { balanceAfter } }";
    for a in [1_i64, 601, -601] {
        let body = app
            .gql(
                Some(&admin.access),
                grant,
                json!({ "u": fan.id.to_string(), "a": a }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{a}");
    }
    let me = app
        .ok(
            Some(&fan.access),
            "{ me { points } wallet { inTickets } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["points"], 850);
    assert_eq!(me["wallet"]["inTickets"], 150);
    assert_money(&app).await;
}

/// Many fans topping up at once through two instances, each top-up confirmed by several
/// browsers' calls, webhooks and the job racing: every captured payment credited once,
/// nothing else credited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_storm_over_two_instances_credits_every_captured_payment_exactly_once() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let cfg = fake.config();
    let vars: Vec<(&str, &str)> = cfg.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = app.second_instance(&vars).await;
    let fans = app.bulk_users(12).await;
    let tasks = fans.iter().enumerate().map(|(f, fan)| {
        let (app, second, fake) = (&app, &second, fake.clone());
        async move {
            let mut expected = 0;
            for n in 0..4 {
                let amount = 100 * (f as i64 + 1) + n;
                let t = start(app, fan, amount, &format!("s{n}")).await;
                let order = t["orderId"].as_str().unwrap().to_owned();
                // Every fourth fan tampers with the amount; the rest pay.
                let paid = if f % 4 == 3 { amount + 1 } else { amount };
                let key = fake.authorize(&order, paid);
                let racers = (0..4).map(|i| {
                    let (key, order, fake) = (key.clone(), order.clone(), fake.clone());
                    async move {
                        match i {
                            0 => drop(confirm(app, fan, &key, &order, amount).await),
                            1 => drop(confirm(second, fan, &key, &order, amount).await),
                            2 => drop(fake.webhook(&second.url(""), &key, &order, "DONE").await),
                            _ => drop(
                                boxoffice::payments::reconcile::run_once(
                                    app.state.writes(),
                                    &app.state.payments,
                                    Duration::ZERO,
                                )
                                .await,
                            ),
                        }
                    }
                });
                futures_util::future::join_all(racers).await;
                if paid == amount {
                    expected += amount;
                }
            }
            (fan.id, expected)
        }
    });
    for (id, expected) in futures_util::future::join_all(tasks).await {
        let got = app
            .count(&format!("SELECT points AS n FROM users WHERE id = {id}"))
            .await;
        assert_eq!(got, expected, "fan {id}");
    }
    let captured = fake.captures.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM point_ledger WHERE kind = 'top_up'")
            .await,
        i64::from(captured)
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM top_ups WHERE status = 'confirmed'")
            .await,
        36
    );
    assert_money(&app).await;
}

/// The negative control of I10: a credit written without a confirmed payment is seen.
#[tokio::test]
async fn the_money_invariants_see_a_credit_without_a_confirmed_payment() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = start(&app, &fan, 300, "t").await;
    assert!(app.violations_of(boxoffice::invariants::MONEY).await.is_empty());
    let id = t["id"].as_str().unwrap();
    app.count(&format!(
        "WITH u AS (UPDATE users SET points = points + 300 WHERE id = {} RETURNING points),
              l AS (INSERT INTO point_ledger (user_id, kind, amount, balance_after, top_up_id)
                    SELECT {}, 'top_up', 300, u.points, {id} FROM u RETURNING 1)
         SELECT count(*) AS n FROM l",
        fan.id, fan.id
    ))
    .await;
    let v = app.violations_of(boxoffice::invariants::MONEY).await;
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("pending"), "{v:?}");
}

/// Toss's payment window is a script from Toss: only the wallet page's policy allows it,
/// and the server names it (the app's own code names no other host).
#[tokio::test]
async fn only_the_wallet_page_may_load_the_providers_payment_window() {
    let fake = FakeToss::start().await;
    let app = toss_app(&fake, &[]).await;
    let fan = app.sign_up("fan@example.com").await;
    let w = app
        .ok(
            Some(&fan.access),
            "{ wallet { provider sandbox clientKey checkoutScript } }",
            json!({}),
        )
        .await;
    assert_eq!(w["wallet"]["clientKey"], "test_ck_boxoffice_fake");
    assert_eq!(
        w["wallet"]["checkoutScript"],
        "https://js.tosspayments.com/v2/standard"
    );
    let page = app.http.get(app.url("/wallet")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self' https://js.tosspayments.com;"),
        "{csp}"
    );
    let home = app.http.get(app.url("/")).send().await.unwrap();
    let csp = home.headers()["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("tosspayments"), "{csp}");
}

/// A balance is bounded, a concert's revenue is not: 24 seats at 100,000,000 points is
/// 2,400,000,000, past a 32-bit `Int`, so sales are served as `Long` and come back exact.
#[tokio::test]
async fn a_revenue_past_the_32_bit_int_is_served_exactly() {
    let app = TestApp::spawn_with(&[("POINTS_MAX_TOP_UP", "1000000000")]).await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let expensive = json!({
        "grades": [{ "name": "VIP", "price": 100_000_000, "color": "#FF0000" }],
        "sections": [{ "name": "Box", "rows": [{ "label": "A", "seats": 24, "grade": "VIP" }] }],
    });
    let show = app.show(expensive, 8).await;
    for f in 0..3 {
        let fan = app.sign_up(&format!("rich{f}@example.com")).await;
        app.ok(
            Some(&admin.access),
            "mutation($u: ID!) { adjustPoints(userId: $u, amount: 800000000, reason: \"test\") { id } }",
            json!({ "u": fan.id.to_string() }),
        )
        .await;
        let seats: Vec<_> = show.seats[f * 8..f * 8 + 8].to_vec();
        let r = app
            .ok(
                Some(&fan.access),
                HOLD,
                json!({ "i": { "scheduleId": show.schedule_id, "seatIds": seats } }),
            )
            .await;
        assert_eq!(r["reserveSeats"]["totalPrice"], 800_000_000);
        app.ok(
            Some(&fan.access),
            PAY,
            json!({ "r": r["reserveSeats"]["id"], "k": "p" }),
        )
        .await;
    }
    let sales = app
        .ok(
            Some(&show.host.access),
            "query($c: ID!) { concertSales(concertId: $c) { revenue schedules { revenue refunded } } }",
            json!({ "c": show.concert_id }),
        )
        .await;
    assert_eq!(sales["concertSales"]["revenue"].as_i64(), Some(2_400_000_000));
    assert_eq!(
        sales["concertSales"]["schedules"][0]["revenue"].as_i64(),
        Some(2_400_000_000)
    );
    let sdl = boxoffice::graphql::sdl();
    assert!(sdl.contains("revenue: Long!"), "sales are not served as Long");
    assert_money(&app).await;
}
