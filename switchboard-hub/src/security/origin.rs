//! Which browser origins may talk to the hub, and which `Host` names it answers to.
//!
//! Browsers attach `Origin` to WebSocket handshakes, to `EventSource` and `fetch` requests
//! made cross-origin, and to every `POST`. Without a check, any web page a user visits could
//! open a WebSocket to the hub with the user's cookies (cross-site WebSocket hijacking, see
//! RFC 6455 §10.2) or post a `text/plain` form to the publish endpoint without a CORS
//! preflight. Non-browser clients send no `Origin` and are not affected.
//!
//! The policy is the library's [`OriginPolicy`], the one a `switchboard::router::Router`
//! route takes: `allowed_origins` is [`OriginPolicy::allow`] (`[]`: same origin only;
//! `["*"]`: any), `allowed_hosts` is [`OriginPolicy::hosts`], and every request goes
//! through [`OriginPolicy::check_request`]. The `Host` side is against DNS rebinding: a
//! page on `evil.example` whose name the attacker re-points at the hub's address makes
//! requests whose `Origin` and `Host` are both `evil.example` — "same origin" by the
//! letter. So a request counts as same-origin only when its `Host` is one the hub knows it
//! is reached by: listed in `allowed_hosts`, or, with that list empty, an IP address or
//! `localhost` (what a hub without a configured name is reached by). And with
//! `allowed_hosts` set, a request for any other `Host` is refused outright, `Origin` or not
//! (a rebinding page's same-origin `GET`s carry no `Origin`).

pub use switchboard::security::{OriginPolicy, OriginRefusal, OriginVerdict};
