//! `wallet-server serve --demo`: a small demo city seeded into an empty database, so that a person
//! can use the API at once (`docs/QUICKSTART.md` walks through one business day of it).
//!
//! Nothing here is a second way of doing things. Principals are made as `admin create`, the
//! registration endpoint and the merchant endpoint make them; every won moves through the
//! [`Writer`] as a `wallet_core` [`Command`], exactly as the API's requests do (postings, history,
//! audit rows and all); and the trial balance is taken at the end. The history is dated one day
//! before the server's clock (a writer of its own, on [`Clock::earlier_by`]), so that an admin
//! can close yesterday and download its settlement file at once, as on any morning.
//!
//! A database holding any principal or ledger transaction is refused before anything is written:
//! the demo's well-known passwords must never land beside real accounts.

use diesel::prelude::*;
use serde_json::json;
use wallet_core::{Amount, Command, MerchantId, Month, PaymentCode, Policy, TrialBalance, TxId, WalletId};

use crate::api::new_tx_id;
use crate::auth::PasswordPool;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{self, audit, DatabaseUrl, DbConn, DbPool, StoreError, StoreResult};
use crate::writer::{Answer, WriteOp, Writer};

/// The password of every demo account: well known, and printed at start.
pub const PASSWORD: &str = "demo-password";
/// The city admin's login.
pub const ADMIN_LOGIN: &str = "city-admin";
/// The citizens' logins.
pub const CITIZEN_LOGINS: [&str; 3] = ["minji.kim", "junho.park", "seoyeon.lee"];
/// What the city puts into the cashback budget.
const BUDGET_TOP_UP_WON: i64 = 1_000_000;

/// A demo shop: its login and what the settlement file shows of it.
pub struct Shop {
    pub login: &'static str,
    pub name: &'static str,
    /// Ten digits with a valid check digit, as a real registration number has.
    pub business_number: &'static str,
    pub bank_account: &'static str,
    pub category: &'static str,
}

/// The two merchants: a bakery and a kimbap shop.
pub const SHOPS: [Shop; 2] = [
    Shop {
        login: "bakery.jung",
        name: "정가네 빵집",
        business_number: "314-27-12343",
        bank_account: "NH농협 301-0427-1234-51",
        category: "bakery",
    },
    Shop {
        login: "kimbap.haneul",
        name: "하늘김밥",
        business_number: "211-07-45678",
        bank_account: "KB국민 612301-04-187254",
        category: "restaurant",
    },
];

/// One step of the demo's history. Citizens and shops are indexes into [`CITIZEN_LOGINS`] and
/// [`SHOPS`]; a refund names the payment by its index among the `Pay` steps.
enum Step {
    Charge { citizen: usize, won: i64 },
    Pay { citizen: usize, shop: usize, won: i64 },
    Refund { payment: usize, won: i64 },
    Gift { from: usize, to: usize, won: i64 },
}

/// The demo's history, in order: charges, payments that earn cashback, a partial refund (which
/// reverses part of its cashback) and a gift.
const HISTORY: [Step; 9] = [
    Step::Charge { citizen: 0, won: 100_000 },
    Step::Charge { citizen: 1, won: 50_000 },
    Step::Charge { citizen: 2, won: 30_000 },
    Step::Pay { citizen: 0, shop: 0, won: 12_000 },
    Step::Pay { citizen: 1, shop: 1, won: 8_000 },
    Step::Pay { citizen: 2, shop: 1, won: 6_500 },
    Step::Pay { citizen: 0, shop: 1, won: 4_500 },
    Step::Refund { payment: 0, won: 4_000 },
    Step::Gift { from: 1, to: 2, won: 10_000 },
];

/// The accounts made, as the writer's commands name them.
struct City {
    admin: String,
    /// (citizen id, wallet) in the order of [`CITIZEN_LOGINS`].
    citizens: Vec<(String, WalletId)>,
    shops: Vec<MerchantId>,
}

/// Seeds the demo city into the empty database of `config` through `writer`, checks that the books
/// balance, and prints the logins. Refuses, changing nothing, when the database holds data.
pub fn seed(pool: &DbPool, clock: &Clock, config: &Config) -> Result<(), String> {
    let mut connection = pool.get().map_err(|error| format!("cannot connect to the database: {error}"))?;
    refuse_unless_empty(&mut connection, &config.database)?;
    // A port already taken is found now, before seeding, not after: a second start with --demo
    // would be refused.
    std::net::TcpListener::bind(&config.bind).map_err(|error| format!("cannot listen on {}: {error}", config.bind))?;
    let passwords = PasswordPool::new(config.argon2, 1 + SHOPS.len() + CITIZEN_LOGINS.len());
    // Its own writer, a day behind; its thread ends when it is dropped at the end of this function.
    let yesterday = std::sync::Arc::new(clock.earlier_by(chrono::Duration::days(1)));
    let batching = crate::writer::Batching { size_max: 1, wait: std::time::Duration::ZERO };
    let writer = &Writer::start(pool.clone(), yesterday, HISTORY.len() + 2, batching, config.idempotency_retention);
    actix_web::rt::System::new().block_on(async {
        let city = create_accounts(&mut connection, &passwords, clock).await?;
        let admin_op = |command| submit(writer, &city.admin, WriteOp::Ledger(command));
        admin_op(Command::SetPolicy { policy: Policy::default() }).await?;
        let top_up = Amount::from_i64(BUDGET_TOP_UP_WON).expect("the demo's top-up is a valid amount");
        admin_op(Command::TopUpBudget { id: new_tx_id(), amount: top_up }).await?;
        let mut payments = Vec::new();
        for step in &HISTORY {
            if let Some(payment) = make_history(writer, &city, step, &payments).await? {
                payments.push(payment);
            }
        }
        Ok::<_, String>(())
    })?;
    check_books(&mut connection)?;
    announce(config);
    Ok(())
}

/// `Err` with the reason when the database holds any principal or any ledger transaction.
fn refuse_unless_empty(connection: &mut DbConn, database: &DatabaseUrl) -> Result<(), String> {
    let (users, transactions) = existing_data(connection).map_err(|error| error.to_string())?;
    let what = match (users, transactions) {
        (0, false) => return Ok(()),
        (users, false) => users_text(users),
        (0, true) => "ledger transactions".to_owned(),
        (users, true) => format!("{} and ledger transactions", users_text(users)),
    };
    Err(format!(
        "the database at {} already has data ({what}); --demo only seeds an empty database, so that its \
         well-known passwords never sit beside real accounts: start without --demo, or point \
         WALLET_DATABASE_URL at a new file",
        shown(database)
    ))
}

fn users_text(users: i64) -> String {
    if users == 1 {
        "1 user".to_owned()
    } else {
        format!("{users} users")
    }
}

/// How many principals there are, and whether any posting is. The one query outside `store/`:
/// read-only, in diesel's typed DSL, for this one check of an empty database.
fn existing_data(connection: &mut DbConn) -> StoreResult<(i64, bool)> {
    use store::schema::{postings, principals};
    let users: i64 = principals::table.count().get_result(connection)?;
    let posting: Vec<i64> = postings::table.select(postings::seq).limit(1).load(connection)?;
    Ok((users, !posting.is_empty()))
}

/// The database as a person should see it: a PostgreSQL URL without its user and password.
fn shown(database: &DatabaseUrl) -> String {
    match database {
        DatabaseUrl::Sqlite(path) => path.clone(),
        DatabaseUrl::Postgres(url) => match url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host)),
            None => url.clone(),
        },
    }
}

/// Creates the admin, the merchants and the citizens with their wallets, in one transaction.
async fn create_accounts(connection: &mut DbConn, passwords: &PasswordPool, clock: &Clock) -> Result<City, String> {
    let mut hashes = Vec::new();
    for _ in 0..1 + SHOPS.len() + CITIZEN_LOGINS.len() {
        let hash = passwords.hash(PASSWORD.to_owned()).await;
        hashes.push(hash.map_err(|error| crate::api::ApiError::from(error).to_string())?);
    }
    let id = || uuid::Uuid::new_v4().to_string();
    let city = City {
        admin: id(),
        citizens: CITIZEN_LOGINS
            .iter()
            .map(|_| (id(), WalletId::parse(&id()).expect("a UUID is a valid wallet id")))
            .collect(),
        shops: SHOPS.iter().map(|_| MerchantId::parse(&id()).expect("a UUID is a valid merchant id")).collect(),
    };
    let now = clock.now();
    let now_ms = store::time::millis(now);
    let mut hashes = hashes.iter();
    let mut hash = || hashes.next().expect("one hash per account").as_str();
    store::write_transaction(connection, |connection| {
        let mut principal = |id: &str, login: &str, role: &str, hash: &str| match store::principals::insert_principal(
            connection, id, login, role, hash, now_ms,
        )? {
            true => Ok(()),
            false => Err(SeedError::LoginTaken(login.to_owned())),
        };
        principal(&city.admin, ADMIN_LOGIN, "admin", hash())?;
        for (shop, merchant_id) in SHOPS.iter().zip(&city.shops) {
            principal(merchant_id.as_str(), shop.login, "merchant", hash())?;
        }
        for (login, (citizen_id, _)) in CITIZEN_LOGINS.iter().zip(&city.citizens) {
            principal(citizen_id, login, "citizen", hash())?;
        }
        for (citizen_id, wallet) in &city.citizens {
            store::wallets::put_wallet(connection, wallet.as_str(), citizen_id, &Month::of(now).to_string(), 0, 0)?;
        }
        for (shop, merchant_id) in SHOPS.iter().zip(&city.shops) {
            let merchant = store::merchants::MerchantDetails {
                merchant_id: merchant_id.as_str(),
                name: shop.name,
                business_number: shop.business_number,
                bank_account: shop.bank_account,
                category: Some(shop.category),
                annual_revenue: None,
            };
            store::merchants::put_merchant(connection, &merchant)?;
        }
        Ok::<_, SeedError>(record_accounts(connection, &city, now)?)
    })
    .map_err(|error| format!("cannot create the demo's accounts: {error}"))?;
    Ok(city)
}

/// Why the demo's accounts were not created (all or none are).
#[derive(Debug, thiserror::Error)]
enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the login {0:?} was taken meanwhile: was the demo started twice at once?")]
    LoginTaken(String),
}

impl From<diesel::result::Error> for SeedError {
    fn from(error: diesel::result::Error) -> SeedError {
        SeedError::Store(error.into())
    }
}

/// The audit rows of the admin and the merchants, as `admin create` and the merchant endpoint
/// write them, marked as the demo's.
fn record_accounts(connection: &mut DbConn, city: &City, now: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
    let entry = |action, detail| audit::Entry {
        at: now,
        actor: audit::Actor::CommandLine,
        action,
        detail,
        idempotency_key: None,
    };
    let admin = json!({"admin_id": city.admin, "login": ADMIN_LOGIN, "demo": true});
    audit::record(connection, entry(audit::Action::AdminCreated, admin))?;
    for (shop, merchant_id) in SHOPS.iter().zip(&city.shops) {
        let detail = json!({"merchant_id": merchant_id, "login": shop.login, "name": shop.name,
                            "business_number": shop.business_number, "bank_account": shop.bank_account,
                            "category": shop.category, "demo": true});
        audit::record(connection, entry(audit::Action::MerchantCreated, detail))?;
    }
    Ok(())
}

/// Submits one step of the history to the writer, as the API's handler would; returns the
/// payment's id for a `Pay` step.
async fn make_history(
    writer: &Writer,
    city: &City,
    step: &Step,
    payments: &[(TxId, usize)],
) -> Result<Option<(TxId, usize)>, String> {
    let amount = |won: i64| Amount::from_i64(won).expect("the demo's amounts are valid");
    let citizen = |index: usize| &city.citizens[index];
    match *step {
        Step::Charge { citizen: who, won } => {
            let (principal, wallet) = citizen(who);
            let command =
                Command::Charge { id: new_tx_id(), bonus_id: new_tx_id(), wallet: wallet.clone(), amount: amount(won) };
            submit(writer, principal, WriteOp::Ledger(command)).await?;
            Ok(None)
        }
        Step::Pay { citizen: who, shop, won } => {
            let (principal, wallet) = citizen(who);
            let code = PaymentCode::parse(&crate::auth::new_payment_code()).expect("hex is a valid code");
            let issue = Command::IssueCode { code: code.clone(), wallet: wallet.clone() };
            submit(writer, principal, WriteOp::Ledger(issue)).await?;
            let id = new_tx_id();
            let merchant = city.shops[shop].clone();
            let command =
                Command::Pay { id: id.clone(), cashback_id: new_tx_id(), merchant, code, amount: amount(won) };
            submit(writer, city.shops[shop].as_str(), WriteOp::Ledger(command)).await?;
            Ok(Some((id, shop)))
        }
        Step::Refund { payment, won } => {
            let (payment, shop) = payments[payment].clone();
            let merchant = city.shops[shop].clone();
            let command =
                Command::Refund { id: new_tx_id(), reversal_id: new_tx_id(), merchant, payment, amount: amount(won) };
            submit(writer, city.shops[shop].as_str(), WriteOp::Ledger(command)).await?;
            Ok(None)
        }
        Step::Gift { from, to, won } => {
            let (principal, wallet) = citizen(from);
            let to = citizen(to).1.clone();
            let command = Command::Gift {
                id: new_tx_id(),
                gift_in_id: new_tx_id(),
                from: wallet.clone(),
                to,
                amount: amount(won),
            };
            submit(writer, principal, WriteOp::Ledger(command)).await?;
            Ok(None)
        }
    }
}

/// Sends one request through the writer; `Err` unless it succeeded.
async fn submit(writer: &Writer, principal: &str, op: WriteOp) -> Result<(), String> {
    let Answer { status, body } = writer.submit(principal.to_owned(), None, op).await;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the demo's history was refused ({status}): {body}"))
    }
}

/// The trial balance after seeding: it must total zero, as after any commit.
fn check_books(connection: &mut DbConn) -> Result<(), String> {
    let balances =
        store::read_snapshot(connection, store::balances::account_balances).map_err(|error| error.to_string())?;
    match TrialBalance::sum(balances).map(|trial_balance| trial_balance.check()) {
        Ok(Ok(())) => Ok(()),
        _ => Err(format!("the demo's books do not balance: {balances:?}; examine the writer before anything else")),
    }
}

/// Prints where the server listens and the demo's logins to standard output.
fn announce(config: &Config) {
    println!("Demo city seeded into {}.", shown(&config.database));
    println!("Serving on http://{} (docs/QUICKSTART.md walks through one business day).", config.bind);
    println!();
    println!("  {:<9} {:<14} {:<14} name", "role", "login", "password");
    println!("  {:<9} {:<14} {:<14} city admin", "admin", ADMIN_LOGIN, PASSWORD);
    for shop in &SHOPS {
        println!("  {:<9} {:<14} {:<14} {}", "merchant", shop.login, PASSWORD, shop.name);
    }
    for login in CITIZEN_LOGINS {
        println!("  {:<9} {:<14} {:<14} citizen", "citizen", login, PASSWORD);
    }
    println!();
    println!("The passwords are well known: keep this database for trying things out, never for real money.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_shown_without_credentials() {
        let shown_url = |url: &str| shown(&DatabaseUrl::parse(url));
        assert_eq!(shown_url("postgres://wallet:s3cret@db.city.kr:5432/wallet"), "postgres://db.city.kr:5432/wallet");
        assert_eq!(shown_url("postgresql://db/wallet?sslmode=require"), "postgresql://db/wallet?sslmode=require");
        assert_eq!(shown_url("wallet.sqlite3"), "wallet.sqlite3");
    }

    #[test]
    fn the_demo_business_numbers_carry_valid_check_digits() {
        // The National Tax Service's rule: weights 1 3 7 1 3 7 1 3 5 on the first nine digits,
        // plus the tens of the ninth digit times 5; the tenth digit tops the sum up to a ten.
        for shop in &SHOPS {
            let digits: Vec<u32> = shop.business_number.chars().filter_map(|c| c.to_digit(10)).collect();
            assert_eq!(digits.len(), 10, "{}", shop.business_number);
            let weighted: u32 =
                digits.iter().zip([1, 3, 7, 1, 3, 7, 1, 3, 5]).map(|(digit, weight)| digit * weight).sum();
            let sum = weighted + digits[8] * 5 / 10;
            assert_eq!((10 - sum % 10) % 10, digits[9], "{}", shop.business_number);
        }
    }
}
