// @generated automatically by Diesel CLI.
//! Diesel's view of the tables of `migrations/`, one file for both backends. Written by
//! `scripts/print-schema`, never by hand: `diesel print-schema` on a SQLite database with every
//! migration of `migrations/sqlite` applied, then `schema.patch` (diesel.toml). The patch's one
//! change to SQLite's view: a `seq` key (`INTEGER PRIMARY KEY AUTOINCREMENT`, SQLite's 64-bit
//! rowid; `BIGSERIAL` on PostgreSQL) is `BigInt`, not `Integer`. The test `store::schema_check`
//! holds this file to both backends' migrations (migrations/README.md).

diesel::table! {
    allowances (grant_id) {
        grant_id -> Text,
        program_id -> Text,
        wallet_id -> Text,
        amount -> BigInt,
        outstanding -> BigInt,
        granted_at_ms -> BigInt,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at_ms -> BigInt,
        via -> Text,
        principal_id -> Nullable<Text>,
        login -> Nullable<Text>,
        action -> Text,
        detail -> Text,
        idempotency_key -> Nullable<Text>,
    }
}

diesel::table! {
    citizen_references (citizen_id) {
        citizen_id -> Text,
        identity_verified_at_ms -> Nullable<BigInt>,
        identity_ref -> Nullable<Text>,
        bank_link_ref -> Nullable<Text>,
        bank_account_masked -> Nullable<Text>,
    }
}

diesel::table! {
    daily_sales (business_date, merchant_id) {
        business_date -> Text,
        merchant_id -> Text,
        payments_count -> BigInt,
        payments_amount -> BigInt,
        refunds_count -> BigInt,
        refunds_amount -> BigInt,
    }
}

diesel::table! {
    handover_bundles (sequence) {
        sequence -> BigInt,
        kind -> Text,
        operator -> Text,
        as_of -> Text,
        manifest_sha256 -> Text,
        citizens -> BigInt,
        merchants -> BigInt,
        transactions -> BigInt,
        citizen_balance_sum -> BigInt,
        merchant_receivable_sum -> BigInt,
        cashback_budget_remaining -> BigInt,
        applied_at_ms -> BigInt,
    }
}

diesel::table! {
    handover_exports (sequence) {
        sequence -> BigInt,
        kind -> Text,
        history_seq -> BigInt,
        exported_at_ms -> BigInt,
        manifest_sha256 -> Text,
    }
}

diesel::table! {
    history (seq) {
        seq -> BigInt,
        item_id -> Text,
        wallet_id -> Text,
        kind -> Text,
        amount -> BigInt,
        balance_after -> BigInt,
        at_ms -> BigInt,
        counterparty -> Nullable<Text>,
        related_id -> Nullable<Text>,
        prev_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    idempotency (principal_id, idem_key) {
        principal_id -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status -> Integer,
        body -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    ledger_state (id) {
        id -> Integer,
        cashback_rate -> Text,
        cashback_monthly_spend_cap -> BigInt,
        monthly_charge_limit -> BigInt,
        holding_limit -> BigInt,
        merchant_fee_rate -> Text,
        budget_funded -> BigInt,
        budget_paid_out -> BigInt,
        budget_reversed -> BigInt,
        bank_clearing -> BigInt,
        settlement_payouts -> BigInt,
        fee_income -> BigInt,
        handover_opening -> BigInt,
    }
}

diesel::table! {
    login_failures (seq) {
        seq -> BigInt,
        server_id -> BigInt,
        login_key -> Nullable<BigInt>,
        address_key -> Nullable<BigInt>,
        failed_ms -> BigInt,
    }
}

diesel::table! {
    merchants (merchant_id) {
        merchant_id -> Text,
        name -> Text,
        business_number -> Text,
        bank_account -> Text,
        category -> Nullable<Text>,
        receivable -> BigInt,
        carried_negative -> BigInt,
        annual_revenue -> Nullable<BigInt>,
        suspended_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    password_resets (principal_id) {
        principal_id -> Text,
        code_hash -> Text,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    payment_allowances (payment_id, grant_id) {
        payment_id -> Text,
        grant_id -> Text,
        position -> Integer,
        paid -> BigInt,
        restored -> BigInt,
    }
}

diesel::table! {
    payment_codes (code) {
        code -> Text,
        wallet_id -> Text,
        expires_at_ms -> BigInt,
        used -> Bool,
    }
}

diesel::table! {
    payments (payment_id) {
        payment_id -> Text,
        merchant_id -> Text,
        wallet_id -> Text,
        amount -> BigInt,
        cashback -> BigInt,
        eligible -> BigInt,
        month -> Text,
        at_ms -> BigInt,
        refunded -> BigInt,
        cashback_reversed -> BigInt,
        eligible_returned -> BigInt,
        bonus_paid -> BigInt,
        own_restored -> BigInt,
        bonus_restored -> BigInt,
    }
}

diesel::table! {
    postings (seq) {
        seq -> BigInt,
        tx_id -> Text,
        tx_kind -> Text,
        account_kind -> Text,
        account_id -> Nullable<Text>,
        amount -> BigInt,
        at_ms -> BigInt,
    }
}

diesel::table! {
    principals (principal_id) {
        principal_id -> Text,
        login -> Text,
        role -> Text,
        password_hash -> Text,
        created_at_ms -> BigInt,
        changed_at_ms -> BigInt,
    }
}

diesel::table! {
    program_cohorts (program_id, cohort) {
        program_id -> Text,
        cohort -> Integer,
        share -> BigInt,
        paid_out -> BigInt,
    }
}

diesel::table! {
    programs (program_id) {
        program_id -> Text,
        kind -> Text,
        name -> Text,
        definition -> Text,
        created_at_ms -> BigInt,
        funded -> BigInt,
        granted -> BigInt,
        spent -> BigInt,
        returned -> BigInt,
        opens_at_ms -> Nullable<BigInt>,
        closes_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    session_slots (id) {
        id -> Integer,
        used -> BigInt,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        principal_id -> Text,
        role -> Text,
        created_at_ms -> BigInt,
        last_seen_ms -> BigInt,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    settlement_lines (business_date, merchant_id) {
        business_date -> Text,
        merchant_id -> Text,
        payments_count -> BigInt,
        payments_amount -> BigInt,
        refunds_count -> BigInt,
        refunds_amount -> BigInt,
        fee -> BigInt,
        carried_in -> BigInt,
        net_payable -> BigInt,
    }
}

diesel::table! {
    settlements (business_date) {
        business_date -> Text,
        tx_id -> Text,
        total_net_payable -> BigInt,
        total_fee -> BigInt,
        closed_at_ms -> BigInt,
    }
}

diesel::table! {
    test_clock (id) {
        id -> Integer,
        offset_us -> BigInt,
    }
}

diesel::table! {
    throttle_salt (id) {
        id -> Integer,
        salt -> Text,
    }
}

diesel::table! {
    waiting_tickets (seq) {
        seq -> BigInt,
        ticket -> Text,
        login -> Text,
        polled_ms -> BigInt,
    }
}

diesel::table! {
    wallets (wallet_id) {
        wallet_id -> Text,
        citizen_id -> Text,
        balance -> BigInt,
        month -> Text,
        charged -> BigInt,
        eligible_spent -> BigInt,
        cashback_earned -> BigInt,
        history_head -> Nullable<BigInt>,
        cashback_reversed -> BigInt,
        bonus -> BigInt,
        bonus_quota_used -> BigInt,
        locked_at_ms -> Nullable<BigInt>,
    }
}

diesel::joinable!(allowances -> programs (program_id));
diesel::joinable!(allowances -> wallets (wallet_id));
diesel::joinable!(citizen_references -> principals (citizen_id));
diesel::joinable!(daily_sales -> merchants (merchant_id));
diesel::joinable!(history -> wallets (wallet_id));
diesel::joinable!(merchants -> principals (merchant_id));
diesel::joinable!(password_resets -> principals (principal_id));
diesel::joinable!(payment_allowances -> allowances (grant_id));
diesel::joinable!(payment_allowances -> payments (payment_id));
diesel::joinable!(payment_codes -> wallets (wallet_id));
diesel::joinable!(payments -> merchants (merchant_id));
diesel::joinable!(payments -> wallets (wallet_id));
diesel::joinable!(program_cohorts -> programs (program_id));
diesel::joinable!(sessions -> principals (principal_id));
diesel::joinable!(settlement_lines -> merchants (merchant_id));
diesel::joinable!(settlement_lines -> settlements (business_date));
diesel::joinable!(wallets -> principals (citizen_id));

diesel::allow_tables_to_appear_in_same_query!(
    allowances,
    audit_log,
    citizen_references,
    daily_sales,
    handover_bundles,
    handover_exports,
    history,
    idempotency,
    ledger_state,
    login_failures,
    merchants,
    password_resets,
    payment_allowances,
    payment_codes,
    payments,
    postings,
    principals,
    program_cohorts,
    programs,
    session_slots,
    sessions,
    settlement_lines,
    settlements,
    test_clock,
    throttle_salt,
    waiting_tickets,
    wallets,
);
