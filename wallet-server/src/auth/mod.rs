//! Who a caller is and who may try: password hashing on its bounded threads and the tokens a
//! session is known by (`passwords`), turns at those threads by priority (`turns`), the login
//! throttle (`throttle`), and sessions with their rules, their cache and the [`Role`]
//! (`sessions`). The HTTP layer takes the credentials and the bearer token from a request and
//! asks this module; nothing here knows a request or a route.

pub mod passwords;
pub mod sessions;
pub mod throttle;
pub mod turns;

pub use passwords::{
    new_payment_code, new_token, request_hash, token_hash, Argon2Settings, Checked, PasswordPool, PoolError,
};
pub use sessions::{Principal, Role};
