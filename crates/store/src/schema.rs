//! Diesel table definitions, matching migrations/ (a test compares the two).

pub mod sql_types {
    /// PostgreSQL `tsvector`; only ever written by the database (a generated column).
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector"))]
    pub struct Tsvector;
}

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        role -> Text,
        points -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        points_debt -> Int8,
        locked_at -> Nullable<Timestamptz>,
        locked_reason -> Nullable<Text>,
        tokens_valid_after -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        family_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    account_claims (user_id) {
        user_id -> Int8,
        selector -> Text,
        verifier_hash -> Bytea,
        issued_by -> Nullable<Int8>,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        claimed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        actor_id -> Nullable<Int8>,
        action -> Text,
        target_type -> Text,
        target_id -> Nullable<Int8>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Tsvector;

    concerts (id) {
        id -> Int8,
        host_id -> Int8,
        title -> Text,
        artist -> Text,
        description -> Text,
        venue -> Text,
        category -> Text,
        poster_url -> Nullable<Text>,
        status -> Text,
        cancel_reason -> Nullable<Text>,
        search_text -> Nullable<Text>,
        search_doc -> Nullable<Tsvector>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedules (id) {
        id -> Int8,
        concert_id -> Int8,
        starts_at -> Timestamptz,
        sales_open_at -> Timestamptz,
        sales_close_at -> Timestamptz,
        per_user_limit -> Int4,
        hold_seconds -> Int4,
        queue_enabled -> Bool,
        admit_per_second -> Int4,
        max_active -> Int4,
        admission_seconds -> Int4,
        status -> Text,
        capacity -> Int4,
        booked_count -> Int4,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        limit_lowered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    seat_grades (id) {
        id -> Int8,
        schedule_id -> Nullable<Int8>,
        name -> Text,
        price -> Int8,
        color -> Text,
        position -> Int4,
    }
}

diesel::table! {
    seats (id) {
        id -> Int8,
        schedule_id -> Nullable<Int8>,
        grade_id -> Int8,
        section -> Text,
        row_label -> Text,
        number -> Int4,
        status -> Text,
        reservation_id -> Nullable<Int8>,
        block_reason -> Nullable<Text>,
    }
}

diesel::table! {
    reservations (id) {
        id -> Int8,
        schedule_id -> Int8,
        user_id -> Int8,
        status -> Text,
        seat_count -> Int4,
        total_price -> Int8,
        idempotency_key -> Nullable<Text>,
        expires_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        request_hash -> Nullable<Int8>,
        complimentary -> Bool,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    reservation_seats (reservation_id, seat_id) {
        reservation_id -> Int8,
        seat_id -> Int8,
        grade_name -> Text,
        price -> Int8,
    }
}

diesel::table! {
    point_ledger (id) {
        id -> Int8,
        user_id -> Int8,
        kind -> Text,
        amount -> Int8,
        balance_after -> Int8,
        reservation_id -> Nullable<Int8>,
        idempotency_key -> Nullable<Text>,
        reason -> Nullable<Text>,
        actor_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        top_up_id -> Nullable<Int8>,
    }
}

diesel::table! {
    top_ups (id) {
        id -> Int8,
        user_id -> Int8,
        order_id -> Text,
        amount -> Int8,
        provider -> Text,
        status -> Text,
        idempotency_key -> Text,
        payment_key -> Nullable<Text>,
        failure -> Nullable<Text>,
        debt_created -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    waitlist_entries (id) {
        id -> Int8,
        schedule_id -> Int8,
        user_id -> Int8,
        seat_count -> Int4,
        grade -> Nullable<Text>,
        status -> Text,
        reservation_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        event_id -> Uuid,
        event_type -> Text,
        subject -> Text,
        concert_id -> Nullable<Int8>,
        data -> Jsonb,
        created_at -> Timestamptz,
        relayed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    relay_leases (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Int8,
        delivery_id -> Int8,
        attempted_at -> Timestamptz,
        status_code -> Nullable<Int4>,
        latency_ms -> Int8,
        outcome -> Text,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Int8,
        webhook_id -> Int8,
        outbox_id -> Int8,
        subject -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Int8,
        owner_id -> Int8,
        concert_id -> Nullable<Int8>,
        url -> Text,
        event_types -> Array<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamptz>,
        disabled_at -> Nullable<Timestamptz>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ticket_keys (key_id) {
        key_id -> Int4,
        public_key -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tickets (id) {
        id -> Int8,
        reservation_id -> Int8,
        schedule_id -> Int8,
        seat_id -> Int8,
        key_id -> Int4,
        issued_at -> Timestamptz,
        code -> Text,
        status -> Text,
        checked_in_at -> Nullable<Timestamptz>,
        gate -> Nullable<Text>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    scanners (id) {
        id -> Int8,
        schedule_id -> Int8,
        name -> Text,
        token_hash -> Bytea,
        created_by -> Int8,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    check_ins (id) {
        id -> Int8,
        schedule_id -> Int8,
        scanner_id -> Int8,
        nonce -> Text,
        code_hash -> Bytea,
        ticket_id -> Nullable<Int8>,
        gate -> Text,
        scanned_at -> Timestamptz,
        offline -> Bool,
        status -> Text,
        first_check_in_at -> Nullable<Timestamptz>,
        first_gate -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notices (id) {
        id -> Int8,
        user_id -> Int8,
        kind -> Text,
        subject -> Text,
        message -> Text,
        created_at -> Timestamptz,
        read_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// The witnesses of writes whose COMMIT may go unanswered (services' `in_doubt::write`).
    write_marks (txid, at) {
        txid -> Int8,
        at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(account_claims -> users (user_id));
diesel::joinable!(audit_log -> users (actor_id));
diesel::joinable!(concerts -> users (host_id));
diesel::joinable!(schedules -> concerts (concert_id));
diesel::joinable!(seat_grades -> schedules (schedule_id));
diesel::joinable!(seats -> schedules (schedule_id));
diesel::joinable!(seats -> seat_grades (grade_id));
diesel::joinable!(reservations -> schedules (schedule_id));
diesel::joinable!(reservations -> users (user_id));
diesel::joinable!(reservation_seats -> reservations (reservation_id));
diesel::joinable!(reservation_seats -> seats (seat_id));
diesel::joinable!(point_ledger -> reservations (reservation_id));
diesel::joinable!(point_ledger -> top_ups (top_up_id));
diesel::joinable!(top_ups -> users (user_id));
diesel::joinable!(waitlist_entries -> schedules (schedule_id));
diesel::joinable!(waitlist_entries -> users (user_id));
diesel::joinable!(waitlist_entries -> reservations (reservation_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_tokens,
    account_claims,
    audit_log,
    concerts,
    schedules,
    seat_grades,
    seats,
    reservations,
    reservation_seats,
    point_ledger,
    top_ups,
    waitlist_entries,
);
