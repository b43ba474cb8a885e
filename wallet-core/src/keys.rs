//! Which rows a batch of commands needs in its [`Book`](crate::Book) before it is applied: the
//! prefetch of TigerBeetle, decided where the rules are.
//!
//! A command's rule says what it reads (a payment reads its code, the code's wallet, the
//! merchant and the merchant's sales of the day), so the core, not the loader, says what to
//! load. Loading takes two stages:
//!
//! 1. [`Keys::of`]: the keys the commands name themselves.
//! 2. The keys only a loaded row names, added by the loader as it reads those rows, through
//!    [`Keys::follow_payment`], [`Keys::follow_code`] and [`Keys::follow_close_sales`]: a
//!    refund's wallet is its payment's, a payment's wallet is its code's, and closing a date
//!    not closed before settles every merchant with sales that date.
//! 3. The grants (allowance purses) of every loaded wallet, and the programs of every loaded
//!    grant, through [`Keys::follow_grant`]: a payment may spend them, a refund restore them, and
//!    every history item's balance counts them.
//!
//! Besides the keys, every batch reads the city row (policy, cashback budget and the system
//! accounts' balances), and each keyed merchant's sales row of the day of the batch's instant
//! (payments and refunds add to it). The order rows are read in (and locked in, on a database
//! that locks rows) is the loader's: the sets iterate in key order.

use std::collections::BTreeSet;

use crate::calendar::BusinessDate;
use crate::command::{CarryOverAccount, Command};
use crate::id::{GrantId, MerchantId, PaymentCode, ProgramId, TxId, WalletId};
use crate::payment::{PaymentCodeState, PaymentState};
use crate::program::GrantState;

/// The keys of the rows a batch of commands reads, each once, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    pub wallets: BTreeSet<WalletId>,
    pub merchants: BTreeSet<MerchantId>,
    /// Payments a refund names.
    pub payments: BTreeSet<TxId>,
    /// Payment codes a payment presents.
    pub codes: BTreeSet<PaymentCode>,
    /// Business dates to close: each needs its settlement if it was closed before, else its
    /// sales rows (and through [`Keys::follow_close_sales`], their merchants).
    pub close_dates: BTreeSet<BusinessDate>,
    /// Programs a command names, and those of loaded grants.
    pub programs: BTreeSet<ProgramId>,
    /// Grants an expiry names. The grants of loaded wallets are loaded by wallet.
    pub grants: BTreeSet<GrantId>,
    /// A charge may earn a bonus: the charge bonus program running at the batch's instant (at
    /// most one runs at any instant) is needed.
    pub running_charge_bonus: bool,
}

impl Keys {
    /// The first stage: the keys `commands` name.
    pub fn of<'a>(commands: impl IntoIterator<Item = &'a Command>) -> Keys {
        let mut keys = Keys::default();
        for command in commands {
            keys.add(command);
        }
        keys
    }

    /// Adds the keys one command names.
    pub fn add(&mut self, command: &Command) {
        match command {
            Command::Charge { wallet, .. } => {
                self.wallets.insert(wallet.clone());
                self.running_charge_bonus = true;
            }
            Command::Gift { from, to, .. } => {
                self.wallets.insert(from.clone());
                self.wallets.insert(to.clone());
            }
            // The paying wallet is the code's: see `follow_code`.
            Command::Pay { merchant, code, .. } => {
                self.merchants.insert(merchant.clone());
                self.codes.insert(code.clone());
            }
            // The refunded wallet is the payment's: see `follow_payment`.
            Command::Refund { merchant, payment, .. } => {
                self.merchants.insert(merchant.clone());
                self.payments.insert(payment.clone());
            }
            Command::CloseDay { date, .. } => {
                self.close_dates.insert(*date);
            }
            Command::CarryOver { account, .. } => match account {
                CarryOverAccount::Wallet(wallet) | CarryOverAccount::Bonus(wallet) => {
                    self.wallets.insert(wallet.clone());
                }
                CarryOverAccount::Merchant(merchant) => {
                    self.merchants.insert(merchant.clone());
                }
                CarryOverAccount::Program(program) => {
                    self.programs.insert(program.clone());
                }
                // The grant's wallet (whose history records the carry) follows from the grant.
                CarryOverAccount::Allowance(grant) => {
                    self.grants.insert(grant.clone());
                }
                CarryOverAccount::CashbackBudget => {}
            },
            // The code is new (the caller mints it), so only its wallet is read.
            Command::IssueCode { wallet, .. } => {
                self.wallets.insert(wallet.clone());
            }
            Command::TopUpProgram { program, .. } => {
                self.programs.insert(program.clone());
            }
            // The lines' grant ids too: one that exists already (a client choosing its ids
            // retried a line that landed) is loaded, so the core refuses it by name.
            Command::Grant { program, lines, .. } => {
                self.programs.insert(program.clone());
                self.wallets.extend(lines.iter().map(|line| line.wallet.clone()));
                self.grants.extend(lines.iter().map(|line| line.grant.clone()));
            }
            // The grant's wallet and program follow from the grant: see `follow_grant`.
            Command::ExpireGrant { grant, .. } => {
                self.grants.insert(grant.clone());
            }
            Command::TopUpBudget { .. } | Command::SetPolicy { .. } => {}
        }
    }

    /// The second stage, for a loaded payment: a refund of it credits its wallet.
    pub fn follow_payment(&mut self, payment: &PaymentState) {
        self.wallets.insert(payment.wallet.clone());
    }

    /// The second stage, for a loaded payment code: a payment with it debits its wallet.
    pub fn follow_code(&mut self, code: &PaymentCodeState) {
        self.wallets.insert(code.wallet.clone());
    }

    /// The second stage, for a sales row of a date to close that has no settlement yet: the
    /// close settles the row's merchant (its receivable and carried negative).
    pub fn follow_close_sales(&mut self, merchant: &MerchantId) {
        self.merchants.insert(merchant.clone());
    }

    /// The third stage, for a loaded grant (named by an expiry, or of a loaded wallet): its
    /// program decides where it may be spent and takes back what expires, and its wallet's
    /// history records it.
    pub fn follow_grant(&mut self, grant: &GrantState) {
        self.programs.insert(grant.program.clone());
        self.wallets.insert(grant.wallet.clone());
    }

    /// Whether no row beyond the city row is needed.
    pub fn is_empty(&self) -> bool {
        *self == Keys::default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::money::{Amount, Won};
    use crate::policy::Policy;

    fn wallet(name: &str) -> WalletId {
        WalletId::parse(name).unwrap()
    }

    fn merchant(name: &str) -> MerchantId {
        MerchantId::parse(name).unwrap()
    }

    fn tx(name: &str) -> TxId {
        TxId::parse(name).unwrap()
    }

    fn amount() -> Amount {
        Amount::from_i64(1_000).unwrap()
    }

    fn date(text: &str) -> BusinessDate {
        BusinessDate::parse(text).unwrap()
    }

    #[test]
    fn each_command_names_the_rows_its_rule_reads() {
        let charge = Command::Charge { id: tx("c"), bonus_id: tx("cb"), wallet: wallet("alice"), amount: amount() };
        assert_eq!(
            Keys::of([&charge]),
            Keys { wallets: [wallet("alice")].into(), running_charge_bonus: true, ..Keys::default() }
        );

        let gift = Command::Gift {
            id: tx("g"),
            gift_in_id: tx("gi"),
            from: wallet("bob"),
            to: wallet("alice"),
            amount: amount(),
        };
        assert_eq!(Keys::of([&gift]), Keys { wallets: [wallet("alice"), wallet("bob")].into(), ..Keys::default() });

        let code = PaymentCode::parse("code-1").unwrap();
        let pay = Command::Pay {
            id: tx("p"),
            cashback_id: tx("cb"),
            merchant: merchant("bakery"),
            code: code.clone(),
            amount: amount(),
        };
        assert_eq!(
            Keys::of([&pay]),
            Keys { merchants: [merchant("bakery")].into(), codes: [code].into(), ..Keys::default() }
        );

        let refund = Command::Refund {
            id: tx("r"),
            reversal_id: tx("rv"),
            merchant: merchant("bakery"),
            payment: tx("p"),
            amount: amount(),
        };
        assert_eq!(
            Keys::of([&refund]),
            Keys { merchants: [merchant("bakery")].into(), payments: [tx("p")].into(), ..Keys::default() }
        );

        let close = Command::CloseDay { id: tx("s"), date: date("2026-12-09") };
        assert_eq!(Keys::of([&close]), Keys { close_dates: [date("2026-12-09")].into(), ..Keys::default() });

        let carried = |account| Command::CarryOver { id: tx("o"), account, amount: Won::from_i64(-5) };
        assert_eq!(
            Keys::of([&carried(CarryOverAccount::Wallet(wallet("carol")))]),
            Keys { wallets: [wallet("carol")].into(), ..Keys::default() }
        );
        assert_eq!(
            Keys::of([&carried(CarryOverAccount::Merchant(merchant("grocer")))]),
            Keys { merchants: [merchant("grocer")].into(), ..Keys::default() }
        );
        assert!(Keys::of([&carried(CarryOverAccount::CashbackBudget)]).is_empty());
        assert_eq!(
            Keys::of([&carried(CarryOverAccount::Bonus(wallet("carol")))]),
            Keys { wallets: [wallet("carol")].into(), ..Keys::default() }
        );
        let relief = ProgramId::parse("relief").unwrap();
        assert_eq!(
            Keys::of([&carried(CarryOverAccount::Program(relief.clone()))]),
            Keys { programs: [relief].into(), ..Keys::default() }
        );
        let carried_grant = GrantId::parse("g-carried").unwrap();
        assert_eq!(
            Keys::of([&carried(CarryOverAccount::Allowance(carried_grant.clone()))]),
            Keys { grants: [carried_grant].into(), ..Keys::default() }
        );

        let issue = Command::IssueCode { code: PaymentCode::parse("code-2").unwrap(), wallet: wallet("dave") };
        assert_eq!(Keys::of([&issue]), Keys { wallets: [wallet("dave")].into(), ..Keys::default() });

        let youth = ProgramId::parse("youth").unwrap();
        let top_up = Command::TopUpProgram { id: tx("tp"), program: youth.clone(), amount: amount() };
        assert_eq!(Keys::of([&top_up]), Keys { programs: [youth.clone()].into(), ..Keys::default() });
        let line = |name: &str| crate::command::GrantLine {
            grant: GrantId::parse(&format!("g-{name}")).unwrap(),
            wallet: wallet(name),
            amount: amount(),
        };
        let grant = Command::Grant { id: tx("gr"), program: youth.clone(), lines: vec![line("erin"), line("dave")] };
        assert_eq!(
            Keys::of([&grant]),
            Keys {
                programs: [youth].into(),
                wallets: [wallet("dave"), wallet("erin")].into(),
                grants: [GrantId::parse("g-dave").unwrap(), GrantId::parse("g-erin").unwrap()].into(),
                ..Keys::default()
            }
        );
        let expire = Command::ExpireGrant { id: tx("ex"), grant: GrantId::parse("g-erin").unwrap() };
        assert_eq!(Keys::of([&expire]), Keys { grants: [GrantId::parse("g-erin").unwrap()].into(), ..Keys::default() });

        // The city row is always loaded: these need nothing more.
        assert!(Keys::of([&Command::TopUpBudget { id: tx("t"), amount: amount() }]).is_empty());
        assert!(Keys::of([&Command::SetPolicy { policy: Policy::default() }]).is_empty());
    }

    #[test]
    fn a_batch_names_each_row_once_in_key_order() {
        let commands = [
            Command::Charge { id: tx("1"), bonus_id: tx("1b"), wallet: wallet("zoe"), amount: amount() },
            Command::Charge { id: tx("2"), bonus_id: tx("2b"), wallet: wallet("alice"), amount: amount() },
            Command::Gift {
                id: tx("3"),
                gift_in_id: tx("4"),
                from: wallet("alice"),
                to: wallet("zoe"),
                amount: amount(),
            },
            Command::CloseDay { id: tx("5"), date: date("2026-12-09") },
            Command::CloseDay { id: tx("6"), date: date("2026-12-08") },
            Command::CloseDay { id: tx("7"), date: date("2026-12-09") },
        ];
        let keys = Keys::of(&commands);
        assert_eq!(keys.wallets.iter().map(WalletId::as_str).collect::<Vec<_>>(), ["alice", "zoe"]);
        assert_eq!(keys.close_dates.into_iter().collect::<Vec<_>>(), [date("2026-12-08"), date("2026-12-09")]);
    }

    #[test]
    fn loaded_rows_name_the_wallets_and_merchants_of_the_second_stage() {
        let mut keys = Keys::default();
        let at = DateTime::UNIX_EPOCH;
        keys.follow_code(&PaymentCodeState::issue(wallet("alice"), at));
        let payment = PaymentState::new(merchant("bakery"), wallet("bob"), amount(), Won::ZERO, Won::ZERO, at);
        keys.follow_payment(&payment);
        keys.follow_close_sales(&merchant("grocer"));
        let grant = crate::program::GrantState {
            program: ProgramId::parse("youth").unwrap(),
            wallet: wallet("carol"),
            amount: Won::from_i64(5),
            outstanding: Won::from_i64(5),
            granted_at: at,
            expires_at: at,
        };
        keys.follow_grant(&grant);
        assert_eq!(
            keys,
            Keys {
                wallets: [wallet("alice"), wallet("bob"), wallet("carol")].into(),
                merchants: [merchant("grocer")].into(),
                programs: [ProgramId::parse("youth").unwrap()].into(),
                ..Keys::default()
            }
        );
    }
}
