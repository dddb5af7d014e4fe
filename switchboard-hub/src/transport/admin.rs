//! The admin API (only with `admin_api = true`): list subscriber connections and close
//! them server-side — what an operator needs to shed a client, and what end-to-end tests
//! need to prove that a client recovers from a dropped connection.

use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;

use super::access;
use super::error::ApiError;
use super::params::Params;
use super::wire::{sorted_response, ConnectionList, Disconnected};
use super::AppState;

/// `GET /api/admin/connections`:
/// `{"connections":[{"id","peer","transport","channels":[…]}]}`.
pub(crate) async fn connections(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let _counted = state
        .hub
        .metrics()
        .connection(crate::metrics::Transport::Rest);
    let query = Params::from_uri(req.uri())?;
    access::admit(&state, req.headers(), query.get("token"))?.require_admin()?;
    let list: Vec<_> = state
        .registry
        .subscribers()
        .into_iter()
        .map(|(_, info)| info)
        .collect();
    Ok(sorted_response(
        StatusCode::OK,
        &ConnectionList { connections: list },
    ))
}

/// `POST /api/admin/disconnect?transport=&channel=&id=`: closes every subscriber
/// connection matching all given filters (none: all of them). `{"disconnected":N}`.
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let _counted = state
        .hub
        .metrics()
        .connection(crate::metrics::Transport::Rest);
    let query = Params::from_uri(req.uri())?;
    access::admit(&state, req.headers(), query.get("token"))?.require_admin()?;
    let transport = query.get("transport");
    let channel = query.get("channel");
    let id = query.count("id")?;
    let mut n = 0;
    for (control, info) in state.registry.subscribers() {
        let matches = transport.is_none_or(|t| t == info.transport)
            && channel.is_none_or(|c| info.channels.iter().any(|ch| ch.as_str() == c))
            && id.is_none_or(|id| id as u64 == info.id);
        if matches {
            control.kill();
            n += 1;
        }
    }
    tracing::info!(disconnected = n, ?transport, ?channel, "admin disconnect");
    Ok(sorted_response(
        StatusCode::OK,
        &Disconnected { disconnected: n },
    ))
}
