//! The router over HTTP/2: one connection, many RFC 8441 WebSocket streams, each checked,
//! negotiated and handled exactly like an HTTP/1.1 upgrade.

use super::{BoxFuture, ConnectionInfo, Router, ServerStream};
use crate::http2::H2Stream;
use crate::negotiate::negotiate;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::header::{CONNECTION, UPGRADE};
use http::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_protocol::handshake::{validate_connect_request, Rejection};
use tokio::task::JoinSet;
use tokio::time::Instant;

impl Router {
    /// Serves the h2 connection on `stream` (TLS that picked `h2`) until it ends: answers
    /// each stream's request, runs each accepted WebSocket's handler in its own task, and at
    /// shutdown sends GOAWAY (the WebSockets themselves close with 1001 through the
    /// router's going-away signal). Returns once the connection and all its handlers are
    /// done.
    ///
    /// An h2 connection with no WebSocket for the handshake timeout is closed, as an
    /// HTTP/1.1 connection without a request would be.
    pub(super) fn serve_h2(self: &Arc<Self>, stream: ServerStream, peer: SocketAddr) -> BoxFuture {
        let router = Arc::clone(self);
        Box::pin(async move {
            let handshake = router.http2.server_builder().handshake::<_, Bytes>(stream);
            let handshake = match router.head.timeout {
                Some(limit) => match tokio::time::timeout(limit, handshake).await {
                    Ok(done) => done,
                    Err(_) => {
                        tracing::debug!(%peer, "h2 preface timed out");
                        return;
                    }
                },
                None => handshake.await,
            };
            let mut conn = match handshake {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::debug!(%peer, %error, "h2 handshake failed");
                    return;
                }
            };
            tracing::debug!(%peer, "HTTP/2 connection");
            let mut handlers = JoinSet::new();
            let going_away = router.going_away.fired();
            let mut going_away = std::pin::pin!(going_away);
            let mut shutting_down = false;
            let idle_limit = router.head.timeout;
            let idle = tokio::time::sleep(idle_limit.unwrap_or_default());
            let mut idle = std::pin::pin!(idle);
            loop {
                tokio::select! {
                    accepted = conn.accept() => match accepted {
                        Some(Ok((request, respond))) => {
                            if let Some(handler) = router.stream(request, respond, peer) {
                                handlers.spawn(handler);
                            }
                        }
                        Some(Err(error)) => {
                            tracing::debug!(%peer, %error, "h2 connection failed");
                            break;
                        }
                        None => break,
                    },
                    () = &mut going_away, if !shutting_down => {
                        shutting_down = true;
                        conn.graceful_shutdown();
                    }
                    Some(_) = handlers.join_next(), if !handlers.is_empty() => {
                        if let (true, Some(limit)) = (handlers.is_empty(), idle_limit) {
                            idle.as_mut().reset(Instant::now() + limit);
                        }
                    }
                    () = &mut idle, if idle_limit.is_some() && handlers.is_empty() && !shutting_down => {
                        tracing::debug!(%peer, "idle h2 connection closed");
                        shutting_down = true;
                        conn.graceful_shutdown();
                    }
                }
            }
            // The connection is over; handlers still running see their streams end.
            while handlers.join_next().await.is_some() {}
        })
    }

    /// One stream's request: the same checks and negotiation as an HTTP/1.1 upgrade, then
    /// the 200 and the route's handler, or the refusal on this stream.
    fn stream(
        self: &Arc<Self>,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        peer: SocketAddr,
    ) -> Option<BoxFuture> {
        let (parts, body) = request.into_parts();
        let protocol = parts
            .extensions
            .get::<h2::ext::Protocol>()
            .map(|p| p.as_str().to_owned());
        let mut request = Request::from_parts(parts, ());
        let refuse = |respond: &mut SendResponse<Bytes>, rejection: &Rejection| {
            tracing::debug!(%peer, status = %rejection.status(), error = %rejection.error, "WebSocket stream refused");
            refuse_stream(respond, rejection);
            None
        };
        let Some(route) = self.route_for(request.uri().path()) else {
            let rejection =
                Rejection::with_status(StatusCode::NOT_FOUND, "no WebSocket endpoint at this path");
            return refuse(&mut respond, &rejection);
        };
        if request.method() != Method::CONNECT || protocol.is_none() {
            let rejection = Rejection::with_status(
                StatusCode::BAD_REQUEST,
                "this endpoint speaks WebSocket only (RFC 8441 extended CONNECT)",
            );
            return refuse(&mut respond, &rejection);
        }
        let offer = match validate_connect_request(&request, protocol.as_deref()) {
            Ok(offer) => offer,
            Err(rejection) => return refuse(&mut respond, &rejection),
        };
        let mut permit = None;
        let client_ip = match self.vet(route, &mut request, &offer, peer, &mut permit) {
            Ok(client_ip) => client_ip,
            Err(rejection) => return refuse(&mut respond, &rejection),
        };
        let (response, pending) =
            negotiate(&offer, &route.config, &route.protocols_for(&offer)).split();
        let send = match respond.send_response(response, false) {
            Ok(send) => send,
            Err(error) => {
                tracing::debug!(%peer, %error, "cannot answer the extended CONNECT");
                return None;
            }
        };
        let stream = ServerStream::H2(Box::new(H2Stream::new(send, body, Some(peer))));
        let info = ConnectionInfo {
            request,
            peer,
            client_ip,
        };
        let accepted = self.accepted(route, pending.into_websocket(stream), info, permit);
        let (handler, permit) = accepted.start();
        Some(Box::pin(async move {
            handler.await;
            drop(permit);
        }))
    }
}

/// Answers a stream with the refusal and ends it; the connection goes on.
fn refuse_stream(respond: &mut SendResponse<Bytes>, rejection: &Rejection) {
    let mut response = Response::new(());
    *response.status_mut() = rejection.status();
    *response.headers_mut() = rejection.response.headers().clone();
    // HTTP/2 has no connection-specific headers (RFC 9113 §8.2.2).
    for name in [CONNECTION, UPGRADE] {
        response.headers_mut().remove(name);
    }
    let body = Bytes::from(rejection.response.body().clone());
    if let Ok(mut send) = respond.send_response(response, body.is_empty()) {
        if !body.is_empty() {
            let _ = send.send_data(body, true);
        }
    }
}
