//! Access control, as pure functions and small state machines (time comes in as an argument):
//! the Origin allowlist, HMAC-signed JWTs with per-channel rights, and token-bucket rate
//! limits.

mod jwt;
mod origin;
mod rate;

pub(crate) use jwt::matches as pattern_matches;
pub use jwt::{Claims, JwtKey, TokenError};
pub use origin::{OriginPolicy, OriginRefusal, OriginVerdict};
pub use rate::{KeyedRateLimiter, RateLimit, TokenBucket};
