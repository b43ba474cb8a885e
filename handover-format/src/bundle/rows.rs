//! The rows of a bundle's CSV files and the policy, parsed field by field into wallet-core's
//! types: every field's syntax, nothing across rows (that is [`super::Bundle::verify`]'s).
//! Version 2 adds columns after version 1's, and two files.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use wallet_core::program::{CATEGORIES_MAX, CATEGORY_LEN_MAX, VALID_DAYS_MAX};
use wallet_core::{
    AllowanceRules, Amount, BusinessDate, GrantId, HistoryKind, MerchantId, Month, Policy, ProgramBudget, ProgramId,
    TxId, Validity, WalletId, Won,
};

use super::Version;

/// The longest program name read, in characters (as `POST /v1/admin/programs` allows).
pub const PROGRAM_NAME_CHARS_MAX: usize = 200;

pub const CITIZENS_HEADER: &[&str] = &[
    "citizen_id",
    "login",
    "password_hash",
    "wallet_id",
    "balance",
    "month",
    "charged_this_month",
    "cashback_eligible_spent_this_month",
    "created_at",
];
pub const MERCHANTS_HEADER: &[&str] =
    &["merchant_id", "login", "password_hash", "name", "business_number", "bank_account", "category", "receivable"];
pub const TRANSACTIONS_HEADER: &[&str] =
    &["tx_id", "at", "kind", "wallet_id", "merchant_id", "amount", "cashback", "related_tx_id"];

/// Version 2's citizens.csv: version 1's columns, then the purse and the carried references.
pub const CITIZENS_HEADER_V2: &[&str] = &[
    "citizen_id",
    "login",
    "password_hash",
    "wallet_id",
    "balance",
    "month",
    "charged_this_month",
    "cashback_eligible_spent_this_month",
    "created_at",
    "bonus",
    "bonus_quota_used_this_month",
    "identity_verified_at",
    "identity_ref",
    "bank_link_ref",
    "bank_account_masked",
];
/// Version 2's merchants.csv: version 1's columns, then `annual_revenue,carried_in`.
pub const MERCHANTS_HEADER_V2: &[&str] = &[
    "merchant_id",
    "login",
    "password_hash",
    "name",
    "business_number",
    "bank_account",
    "category",
    "receivable",
    "annual_revenue",
    "carried_in",
];
/// Version 2's transactions.csv: version 1's columns, then `counterparty_wallet_id`.
pub const TRANSACTIONS_HEADER_V2: &[&str] = &[
    "tx_id",
    "at",
    "kind",
    "wallet_id",
    "merchant_id",
    "amount",
    "cashback",
    "related_tx_id",
    "counterparty_wallet_id",
];
/// programs.csv (version 2).
pub const PROGRAMS_HEADER: &[&str] = &["program_id", "kind", "name", "definition", "budget"];
/// allowances.csv (version 2).
pub const ALLOWANCES_HEADER: &[&str] = &["grant_id", "program_id", "wallet_id", "amount", "granted_at", "expires_at"];

impl Version {
    pub fn citizens_header(self) -> &'static [&'static str] {
        match self {
            Version::V1 => CITIZENS_HEADER,
            Version::V2 => CITIZENS_HEADER_V2,
        }
    }

    pub fn merchants_header(self) -> &'static [&'static str] {
        match self {
            Version::V1 => MERCHANTS_HEADER,
            Version::V2 => MERCHANTS_HEADER_V2,
        }
    }

    pub fn transactions_header(self) -> &'static [&'static str] {
        match self {
            Version::V1 => TRANSACTIONS_HEADER,
            Version::V2 => TRANSACTIONS_HEADER_V2,
        }
    }
}

/// One citizen row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenRow {
    pub citizen_id: String,
    pub login: String,
    pub password_hash: String,
    pub wallet_id: WalletId,
    /// `own + bonus` (allowances are in allowances.csv).
    pub balance: Won,
    pub month: Month,
    pub charged_this_month: Won,
    pub cashback_eligible_spent_this_month: Won,
    pub created_at: DateTime<FixedOffset>,
    /// The columns of version 2; `None` in a version 1 bundle.
    pub v2: Option<CitizenV2>,
}

/// The columns version 2 adds to a citizen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenV2 {
    /// The bonus part of `balance`: `0 <= bonus <= balance`.
    pub bonus: Won,
    /// Charged won of `month` that used the charge bonus quota.
    pub bonus_quota_used_this_month: Won,
    pub identity_verified_at: Option<DateTime<FixedOffset>>,
    /// Opaque references of the identity-verification and open-banking providers, kept as
    /// they are and shown to nobody but the city's admins.
    pub identity_ref: Option<String>,
    pub bank_link_ref: Option<String>,
    pub bank_account_masked: Option<String>,
}

impl CitizenRow {
    /// The bonus purse: version 1 has none (its balance is all own money).
    pub fn bonus(&self) -> Won {
        self.v2.as_ref().map_or(Won::ZERO, |v2| v2.bonus)
    }
}

/// One merchant row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantRow {
    pub merchant_id: MerchantId,
    pub login: String,
    pub password_hash: String,
    pub name: String,
    pub business_number: String,
    pub bank_account: String,
    pub category: Option<String>,
    pub receivable: Won,
    /// The columns of version 2; `None` in a version 1 bundle.
    pub v2: Option<MerchantV2>,
}

/// The columns version 2 adds to a merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantV2 {
    /// Whole won; `None` when unknown.
    pub annual_revenue: Option<Won>,
    /// The negative `net_payable` carried into the merchant's next close (zero or negative).
    pub carried_in: Won,
}

/// One history row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRow {
    pub tx_id: TxId,
    pub at: DateTime<FixedOffset>,
    pub kind: HistoryKind,
    pub wallet_id: Option<WalletId>,
    pub merchant_id: Option<MerchantId>,
    pub amount: Won,
    pub cashback: Won,
    pub related_tx_id: Option<TxId>,
    /// The other wallet of a gift (version 2).
    pub counterparty_wallet_id: Option<WalletId>,
}

/// One program row (version 2): an allowance program, its rules as created and its budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRow {
    pub program_id: ProgramId,
    pub name: String,
    pub rules: AllowanceRules,
    pub budget: ProgramBudget,
}

/// One allowance row (version 2): an unexpired grant with money left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowanceRow {
    pub grant_id: GrantId,
    pub program_id: ProgramId,
    pub wallet_id: WalletId,
    /// What is left of the grant.
    pub amount: Amount,
    pub granted_at: DateTime<FixedOffset>,
    pub expires_at: DateTime<FixedOffset>,
}

fn text_field(name: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{name} is empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{name} contains a control character"));
    }
    Ok(value.to_owned())
}

/// A text that may be empty (`None`), otherwise as [`text_field`].
fn optional_text(name: &str, value: &str) -> Result<Option<String>, String> {
    (!value.is_empty()).then(|| text_field(name, value)).transpose()
}

pub(super) fn amount_field(name: &str, value: &str) -> Result<Won, String> {
    storable(name, Won::parse_signed(value).map_err(|error| format!("{name}: {error}"))?)
}

/// The database keeps money in 64-bit integers: a figure beyond them is refused here, naming
/// it, rather than at import as a failed write. (`Won::parse_signed` reads up to 20 characters,
/// which reach 10^20.)
fn storable(name: &str, won: Won) -> Result<Won, String> {
    if won.to_i64().is_some() {
        Ok(won)
    } else {
        Err(format!("{name} {won} is beyond the largest amount this system stores ({} won)", i64::MAX))
    }
}

/// `sum + won`, if the result is storable.
pub(super) fn add_storable(sum: Won, won: Won) -> Option<Won> {
    sum.checked_add(won).ok().filter(|total| total.to_i64().is_some())
}

pub(super) fn non_negative(name: &str, value: &str) -> Result<Won, String> {
    let won = amount_field(name, value)?;
    if won.is_negative() {
        return Err(format!("{name} is {won}; it cannot be negative"));
    }
    Ok(won)
}

fn time_field(name: &str, value: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(value)
        .map_err(|error| format!("{name} {value:?} is not RFC 3339 with an offset: {error}"))
}

/// A PHC string of a scheme the login path verifies, or empty (the citizen sets a new password).
fn password_hash_field(value: &str) -> Result<String, String> {
    const SCHEMES: [&str; 8] =
        ["$argon2id$", "$argon2i$", "$argon2d$", "$2a$", "$2b$", "$2y$", "$scrypt$", "$pbkdf2-sha256$"];
    if value.is_empty() || SCHEMES.iter().any(|scheme| value.starts_with(scheme)) {
        Ok(value.to_owned())
    } else {
        Err("password_hash is not a PHC string of argon2, bcrypt, scrypt or pbkdf2-sha256 (or empty)".to_owned())
    }
}

/// Checks a row has one field per column of `header` (`verify` has checked it before, and a
/// caller streaming a file of its own may not have).
fn field_count(fields: &[&str], header: &[&str]) -> Result<(), String> {
    if fields.len() == header.len() {
        Ok(())
    } else {
        Err(format!("it has {} fields; {} are expected", fields.len(), header.len()))
    }
}

/// Parses one row of a version 1 `citizens.csv`, its fields in [`CITIZENS_HEADER`]'s order:
/// every field's syntax, nothing across rows. Public for readers that stream a bundle
/// (loadgen's delta).
pub fn parse_citizen(fields: &[&str]) -> Result<CitizenRow, String> {
    parse_citizen_in(Version::V1, fields)
}

/// Parses one row of `citizens.csv` of `version`, as [`parse_citizen`].
pub fn parse_citizen_in(version: Version, fields: &[&str]) -> Result<CitizenRow, String> {
    field_count(fields, version.citizens_header())?;
    let balance = non_negative("balance", fields[4])?;
    let v2 = match version {
        Version::V1 => None,
        Version::V2 => Some(CitizenV2 {
            bonus: non_negative("bonus", fields[9])?,
            bonus_quota_used_this_month: non_negative("bonus_quota_used_this_month", fields[10])?,
            identity_verified_at: (!fields[11].is_empty())
                .then(|| time_field("identity_verified_at", fields[11]))
                .transpose()?,
            identity_ref: optional_text("identity_ref", fields[12])?,
            bank_link_ref: optional_text("bank_link_ref", fields[13])?,
            bank_account_masked: optional_text("bank_account_masked", fields[14])?,
        }),
    };
    if let Some(v2) = &v2 {
        if v2.bonus > balance {
            return Err(format!("bonus {} is more than balance {balance}; balance is own + bonus", v2.bonus));
        }
    }
    Ok(CitizenRow {
        citizen_id: WalletId::parse(fields[0])
            .map(|_| fields[0].to_owned())
            .map_err(|error| format!("citizen_id: {error}"))?,
        login: text_field("login", fields[1])?,
        password_hash: password_hash_field(fields[2])?,
        wallet_id: WalletId::parse(fields[3]).map_err(|error| format!("wallet_id: {error}"))?,
        balance,
        month: Month::parse(fields[5]).map_err(|error| format!("month: {error}"))?,
        charged_this_month: non_negative("charged_this_month", fields[6])?,
        cashback_eligible_spent_this_month: non_negative("cashback_eligible_spent_this_month", fields[7])?,
        created_at: time_field("created_at", fields[8])?,
        v2,
    })
}

/// Parses one row of a version 1 `merchants.csv`, as [`parse_citizen`].
pub fn parse_merchant(fields: &[&str]) -> Result<MerchantRow, String> {
    parse_merchant_in(Version::V1, fields)
}

/// Parses one row of `merchants.csv` of `version`, as [`parse_citizen`].
pub fn parse_merchant_in(version: Version, fields: &[&str]) -> Result<MerchantRow, String> {
    field_count(fields, version.merchants_header())?;
    let v2 = match version {
        Version::V1 => None,
        Version::V2 => {
            let carried_in = amount_field("carried_in", fields[9])?;
            if carried_in > Won::ZERO {
                return Err(format!("carried_in is {carried_in}; it is a negative net carried, or 0"));
            }
            let annual_revenue =
                (!fields[8].is_empty()).then(|| non_negative("annual_revenue", fields[8])).transpose()?;
            Some(MerchantV2 { annual_revenue, carried_in })
        }
    };
    Ok(MerchantRow {
        merchant_id: MerchantId::parse(fields[0]).map_err(|error| format!("merchant_id: {error}"))?,
        login: text_field("login", fields[1])?,
        password_hash: password_hash_field(fields[2])?,
        name: text_field("name", fields[3])?,
        business_number: text_field("business_number", fields[4])?,
        bank_account: text_field("bank_account", fields[5])?,
        category: optional_text("category", fields[6])?,
        receivable: amount_field("receivable", fields[7])?,
        v2,
    })
}

/// The history kinds of `version`: API.md's, and from version 2 those of the programs.
fn history_kind(version: Version, value: &str) -> Result<HistoryKind, String> {
    let mut kinds = vec![
        HistoryKind::Charge,
        HistoryKind::Payment,
        HistoryKind::Cashback,
        HistoryKind::Refund,
        HistoryKind::CashbackReversal,
        HistoryKind::GiftIn,
        HistoryKind::GiftOut,
        HistoryKind::MigratedOpeningBalance,
    ];
    if version >= Version::V2 {
        kinds.extend([HistoryKind::AllowanceGranted, HistoryKind::AllowanceExpired]);
    }
    kinds.iter().copied().find(|kind| kind.as_str() == value).ok_or_else(|| {
        let names: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        format!("kind {value:?} is unknown; it is one of {}", names.join(", "))
    })
}

/// Parses one row of a version 1 `transactions.csv`, as [`parse_citizen`].
pub fn parse_transaction(fields: &[&str]) -> Result<TransactionRow, String> {
    parse_transaction_in(Version::V1, fields)
}

/// Parses one row of `transactions.csv` of `version`, as [`parse_citizen`].
pub fn parse_transaction_in(version: Version, fields: &[&str]) -> Result<TransactionRow, String> {
    field_count(fields, version.transactions_header())?;
    let optional_wallet = |value: &str| (!value.is_empty()).then(|| WalletId::parse(value)).transpose();
    let counterparty = match version {
        Version::V1 => None,
        Version::V2 => optional_wallet(fields[8]).map_err(|error| format!("counterparty_wallet_id: {error}"))?,
    };
    let row = TransactionRow {
        tx_id: TxId::parse(fields[0]).map_err(|error| format!("tx_id: {error}"))?,
        at: time_field("at", fields[1])?,
        kind: history_kind(version, fields[2])?,
        wallet_id: optional_wallet(fields[3]).map_err(|error| format!("wallet_id: {error}"))?,
        merchant_id: (!fields[4].is_empty())
            .then(|| MerchantId::parse(fields[4]))
            .transpose()
            .map_err(|error| format!("merchant_id: {error}"))?,
        amount: amount_field("amount", fields[5])?,
        cashback: if fields[6].is_empty() { Won::ZERO } else { non_negative("cashback", fields[6])? },
        related_tx_id: (!fields[7].is_empty())
            .then(|| TxId::parse(fields[7]))
            .transpose()
            .map_err(|error| format!("related_tx_id: {error}"))?,
        counterparty_wallet_id: counterparty,
    };
    if row.wallet_id.is_none() && row.merchant_id.is_none() {
        return Err("a transaction names neither a wallet_id nor a merchant_id".to_owned());
    }
    if row.kind == HistoryKind::Refund && row.related_tx_id.is_none() {
        return Err("a refund must name its payment in related_tx_id".to_owned());
    }
    let is_gift = matches!(row.kind, HistoryKind::GiftIn | HistoryKind::GiftOut);
    if row.counterparty_wallet_id.is_some() && !is_gift {
        return Err(format!("counterparty_wallet_id is for gift_in and gift_out only, not {}", row.kind.as_str()));
    }
    Ok(row)
}

/// A program's definition as created (`POST /v1/admin/programs`'s body). Only allowance
/// programs are read: charge bonus programs are not built here yet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    kind: Option<String>,
    name: Option<String>,
    valid_days: Option<u32>,
    expires_on: Option<String>,
    #[serde(default)]
    merchant_categories: Vec<String>,
    #[serde(default)]
    excluded_merchant_categories: Vec<String>,
    merchant_annual_revenue_max: Option<String>,
}

/// A program's budget as `GET /v1/admin/programs/{id}` shows it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    funded: String,
    granted: String,
    spent: String,
    returned: String,
    outstanding: String,
    remaining: String,
}

/// Parses one row of `programs.csv`, as [`parse_citizen`].
pub fn parse_program(fields: &[&str]) -> Result<ProgramRow, String> {
    field_count(fields, PROGRAMS_HEADER)?;
    let kind = fields[1];
    match kind {
        "allowance" => {}
        "charge_bonus" => {
            return Err("kind charge_bonus: charge bonus programs are not built in this system yet, so it cannot \
                        take them over; hand over the bundle without them or wait for the release that has them"
                .to_owned())
        }
        _ => return Err(format!("kind {kind:?} is unknown; it is allowance or charge_bonus")),
    }
    let name = text_field("name", fields[2])?;
    if name.chars().count() > PROGRAM_NAME_CHARS_MAX {
        return Err(format!("name has more than {PROGRAM_NAME_CHARS_MAX} characters"));
    }
    let definition: RawDefinition =
        serde_json::from_str(fields[3]).map_err(|error| format!("definition is not a program's JSON: {error}"))?;
    if definition.kind.as_ref().is_some_and(|inner| inner != kind) {
        return Err(format!(
            "definition's kind {:?} is not the row's kind {kind:?}",
            definition.kind.unwrap_or_default()
        ));
    }
    if definition.name.as_ref().is_some_and(|inner| *inner != name) {
        return Err("definition's name is not the row's name".to_owned());
    }
    Ok(ProgramRow {
        program_id: ProgramId::parse(fields[0]).map_err(|error| format!("program_id: {error}"))?,
        name,
        rules: allowance_rules(definition)?,
        budget: program_budget(fields[4])?,
    })
}

/// The rules of a definition, bounded as at creation (an `expires_on` in the past is kept: the
/// program may still have a budget).
fn allowance_rules(definition: RawDefinition) -> Result<AllowanceRules, String> {
    let validity = match (definition.valid_days, definition.expires_on) {
        (Some(days), None) if (1..=VALID_DAYS_MAX).contains(&days) => Validity::Days(days),
        (Some(_), None) => return Err(format!("definition's valid_days must be from 1 to {VALID_DAYS_MAX}")),
        (None, Some(date)) => {
            Validity::Until(BusinessDate::parse(&date).map_err(|error| format!("definition's expires_on: {error}"))?)
        }
        _ => return Err("definition gives neither or both of valid_days and expires_on".to_owned()),
    };
    for (field, list) in [
        ("merchant_categories", &definition.merchant_categories),
        ("excluded_merchant_categories", &definition.excluded_merchant_categories),
    ] {
        let bad = |category: &String| {
            category.is_empty() || category.chars().count() > CATEGORY_LEN_MAX || category.chars().any(char::is_control)
        };
        if list.len() > CATEGORIES_MAX || list.iter().any(bad) {
            return Err(format!(
                "definition's {field} holds at most {CATEGORIES_MAX} categories, each of 1 to {CATEGORY_LEN_MAX} \
                 characters"
            ));
        }
    }
    let revenue_max = definition
        .merchant_annual_revenue_max
        .map(|text| non_negative("definition's merchant_annual_revenue_max", &text))
        .transpose()?;
    Ok(AllowanceRules {
        validity,
        merchant_categories: definition.merchant_categories,
        excluded_merchant_categories: definition.excluded_merchant_categories,
        merchant_annual_revenue_max: revenue_max,
    })
}

/// A budget whose derived figures are what PROGRAMS.md's identities make them.
fn program_budget(text: &str) -> Result<ProgramBudget, String> {
    let raw: RawBudget =
        serde_json::from_str(text).map_err(|error| format!("budget is not a program budget's JSON: {error}"))?;
    let figure = |name: &str, value: &str| non_negative(&format!("budget's {name}"), value);
    let budget = ProgramBudget {
        funded: figure("funded", &raw.funded)?,
        granted: figure("granted", &raw.granted)?,
        spent: figure("spent", &raw.spent)?,
        returned: figure("returned", &raw.returned)?,
    };
    let (outstanding, remaining) = (figure("outstanding", &raw.outstanding)?, figure("remaining", &raw.remaining)?);
    // remaining = funded − granted + returned; outstanding = granted − spent − returned.
    let remaining_derived =
        budget.funded.checked_sub(budget.granted).and_then(|left| left.checked_add(budget.returned));
    let outstanding_derived =
        budget.granted.checked_sub(budget.spent).and_then(|left| left.checked_sub(budget.returned));
    if remaining_derived.ok() != Some(remaining) {
        return Err(format!("budget's remaining {remaining} is not funded − granted + returned"));
    }
    if outstanding_derived.ok() != Some(outstanding) {
        return Err(format!("budget's outstanding {outstanding} is not granted − spent − returned"));
    }
    Ok(budget)
}

/// Parses one row of `allowances.csv`, as [`parse_citizen`].
pub fn parse_allowance(fields: &[&str]) -> Result<AllowanceRow, String> {
    field_count(fields, ALLOWANCES_HEADER)?;
    let amount = non_negative("amount", fields[3])?;
    let amount = Amount::try_from(amount)
        .map_err(|error| format!("amount: {error}; allowances.csv holds only grants with money left"))?;
    let row = AllowanceRow {
        grant_id: GrantId::parse(fields[0]).map_err(|error| format!("grant_id: {error}"))?,
        program_id: ProgramId::parse(fields[1]).map_err(|error| format!("program_id: {error}"))?,
        wallet_id: WalletId::parse(fields[2]).map_err(|error| format!("wallet_id: {error}"))?,
        amount,
        granted_at: time_field("granted_at", fields[4])?,
        expires_at: time_field("expires_at", fields[5])?,
    };
    if row.expires_at <= row.granted_at {
        return Err(format!("expires_at {} is not after granted_at {}", fields[5], fields[4]));
    }
    Ok(row)
}

/// Parses `policy.json`: the policy as `GET /v1/admin/policy` shows it, every figure storable.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let policy: Policy = serde_json::from_str(text).map_err(|error| format!("not the policy's JSON: {error}"))?;
    let policy = policy.validate().map_err(|error| error.to_string())?;
    for (name, won) in [
        ("cashback_monthly_spend_cap", policy.cashback_monthly_spend_cap),
        ("monthly_charge_limit", policy.monthly_charge_limit),
        ("holding_limit", policy.holding_limit),
    ] {
        storable(name, won)?;
    }
    Ok(policy)
}
