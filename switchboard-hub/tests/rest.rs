//! The REST API through the router, in process (`tower::ServiceExt::oneshot`).

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchboard_hub::config::AuthConfig;
use switchboard_hub::security::{Claims, JwtKey};
use switchboard_hub::{HubConfig, HubServer};
use tower::ServiceExt;

const SECRET: &str = "test secret, long enough";

fn server(config: HubConfig) -> (HubServer, Router) {
    let server = HubServer::new(config);
    let router = server.router();
    (server, router)
}

fn default_server() -> (HubServer, Router) {
    server(HubConfig::default())
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

fn post(path: &str, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(path);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn publish_json_and_text_then_read_history() {
    let (_s, app) = default_server();
    let (status, _, a) = send(
        &app,
        post(
            "/api/channels/chat/messages",
            Some("application/json"),
            r#"{ "z": 1, "a": [true, null] }"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["id"], 1);
    let epoch = a["epoch"].as_u64().unwrap();
    assert_eq!(a["cursor"], format!("{epoch}:1"));
    let (_, _, b) = send(
        &app,
        post(
            "/api/channels/chat/messages",
            Some("text/plain; charset=utf-8"),
            "héllo\n",
        ),
    )
    .await;
    assert_eq!(
        (b["id"].as_u64(), b["epoch"].as_u64()),
        (Some(2), Some(epoch))
    );
    let (_, _, c) = send(&app, post("/api/channels/chat/messages", None, "no type")).await;
    assert_eq!(c["id"], 3);
    // The hub's acceptance time, ms since the Unix epoch, never going back along ids.
    let ts: Vec<u64> = [&a, &b, &c]
        .iter()
        .map(|r| r["ts"].as_u64().unwrap())
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]) && ts[0] > 1_700_000_000_000,
        "{ts:?}"
    );

    let (status, headers, page) = send(&app, get("/api/channels/chat/messages")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        page,
        json!({
            "channel": "chat",
            "epoch": epoch,
            "messages": [
                {"id": 1, "ts": a["ts"], "data": {"z": 1, "a": [true, null]}},
                {"id": 2, "ts": b["ts"], "data": "héllo\n"},
                {"id": 3, "ts": c["ts"], "data": "no type"},
            ],
            "next": format!("{epoch}:3"),
            "more": false,
        })
    );
}

#[tokio::test]
async fn json_key_order_is_preserved() {
    let (_s, app) = default_server();
    send(
        &app,
        post(
            "/api/channels/c/messages",
            Some("application/json"),
            r#"{"z":1,"a":2}"#,
        ),
    )
    .await;
    let res = app
        .clone()
        .oneshot(get("/api/channels/c/messages"))
        .await
        .unwrap();
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&text).unwrap();
    assert!(text.contains(r#""data":{"z":1,"a":2}"#), "{text}");
}

#[tokio::test]
async fn history_pages_with_since_and_limit() {
    let (_s, app) = default_server();
    let mut last_ts = serde_json::Value::Null;
    for i in 1..=5 {
        last_ts = send(
            &app,
            post(
                "/api/channels/c/messages",
                Some("application/json"),
                &i.to_string(),
            ),
        )
        .await
        .2["ts"]
            .clone();
    }
    let (_, _, p) = send(&app, get("/api/channels/c/messages?since=1&limit=2")).await;
    let ids: Vec<_> = p["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(2), json!(3)]);
    assert_eq!(p["more"], true);
    let next = p["next"].as_str().unwrap().to_owned();
    let (_, _, p) = send(
        &app,
        get(&format!("/api/channels/c/messages?since={next}&limit=10")),
    )
    .await;
    let data: Vec<_> = p["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    assert_eq!(data, [json!(4), json!(5)]);
    assert_eq!(p["more"], false);
    // The latest N without since.
    let (_, _, p) = send(&app, get("/api/channels/c/messages?limit=1")).await;
    assert_eq!(p["messages"], json!([{"id": 5, "ts": last_ts, "data": 5}]));
}

#[tokio::test]
async fn history_reports_a_cursor_it_cannot_honour() {
    let mut config = HubConfig::default();
    config.history.max_messages = 2;
    let (_s, app) = server(config);
    for _ in 0..5 {
        send(&app, post("/api/channels/c/messages", None, "x")).await;
    }
    let (status, _, p) = send(&app, get("/api/channels/c/messages?since=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["reset"]["reason"], "expired");
    assert_eq!(p["messages"], json!([]));
    let epoch = p["epoch"].as_u64().unwrap();
    assert_eq!(p["next"], format!("{epoch}:3"));
    let (_, _, p) = send(&app, get("/api/channels/c/messages?since=999:1")).await;
    assert_eq!(p["reset"]["reason"], "epoch_changed");
    let (_, _, p) = send(&app, get("/api/channels/c/messages?since=77")).await;
    assert_eq!(p["reset"]["reason"], "ahead");
}

#[tokio::test]
async fn errors_are_json_with_matching_status() {
    let mut config = HubConfig::default();
    config.limits.max_message_bytes = 16;
    let (_s, app) = server(config);
    let cases = [
        (
            post("/api/channels/a%20b/messages", None, "x"),
            400,
            "invalid_channel",
        ),
        (
            post("/api/channels/.hidden/messages", None, "x"),
            400,
            "invalid_channel",
        ),
        (
            get("/api/channels/c/messages?since=abc"),
            400,
            "invalid_cursor",
        ),
        (
            get("/api/channels/c/messages?limit=-1"),
            400,
            "invalid_parameter",
        ),
        (
            post("/api/channels/c/messages", Some("application/json"), "{"),
            400,
            "invalid_message",
        ),
        (
            post("/api/channels/c/messages", Some("image/png"), "x"),
            415,
            "unsupported_media_type",
        ),
        (
            post("/api/channels/c/messages", None, &"x".repeat(17)),
            413,
            "message_too_large",
        ),
        (
            post("/api/channels/c/messages", None, &"x".repeat(10_000)),
            413,
            "message_too_large",
        ),
        (get("/nope"), 404, "not_found"),
        (get("/poll/c?timeout=soon"), 400, "invalid_parameter"),
        (get("/sse/c?format=xml"), 400, "invalid_parameter"),
    ];
    for (req, status, code) in cases {
        let uri = req.uri().clone();
        let (got, _, body) = send(&app, req).await;
        assert_eq!(got.as_u16(), status, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let mut bad_utf8 = post("/api/channels/c/messages", Some("text/plain"), "");
    *bad_utf8.body_mut() = Body::from(vec![0xff, 0xfe]);
    let (status, _, body) = send(&app, bad_utf8).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid_message"))
    );
}

#[tokio::test]
async fn channel_list_and_health_and_metrics() {
    let (s, app) = default_server();
    let chat = switchboard_hub::core::ChannelName::new("chat").unwrap();
    let _sub = s.hub().subscribe(&chat, None).await.unwrap();
    send(&app, post("/api/channels/news/messages", None, "x")).await;
    let (status, _, list) = send(&app, get("/api/channels")).await;
    assert_eq!(status, StatusCode::OK);
    let summary: Vec<_> = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].clone(),
                c["subscribers"].clone(),
                c["last_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!("chat"), json!(1), json!(0)),
            (json!("news"), json!(0), json!(1))
        ]
    );
    assert_eq!(
        send(&app, get("/healthz")).await.2,
        json!({"status": "ok", "broker": {"kind": "memory", "state": "up"}})
    );
    let (status, headers, text) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = text.as_str().unwrap();
    assert!(
        text.contains("switchboard_messages_in_total{transport=\"rest\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn cross_origin_requests_need_the_allowlist() {
    let config = HubConfig {
        allowed_origins: vec!["https://app.example".into()],
        ..HubConfig::default()
    };
    let (_s, app) = server(config);
    let with_origin = |origin: &str| {
        Request::post("/api/channels/c/messages")
            .header(header::HOST, "hub.local:8080")
            .header(header::ORIGIN, origin)
            .body(Body::from("x"))
            .unwrap()
    };
    let (status, _, body) = send(&app, with_origin("https://evil.example")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    assert_eq!(send(&app, with_origin("https://app.example")).await.0, 200);
    // Origin equal to Host on a name the hub was not told it has: a DNS-rebinding page
    // looks exactly so; refused until `allowed_hosts` names the host.
    assert_eq!(
        send(&app, with_origin("http://hub.local:8080")).await.0,
        403
    );
    let (_s2, named) = server(HubConfig {
        allowed_hosts: vec!["hub.local".into()],
        ..HubConfig::default()
    });
    assert_eq!(
        send(&named, with_origin("http://hub.local:8080")).await.0,
        200
    );
    // No Origin: not a browser, allowed.
    assert_eq!(
        send(&app, post("/api/channels/c/messages", None, "x"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn tokens_grant_per_channel_rights() {
    let config = HubConfig {
        auth: Some(AuthConfig {
            jwt_secret: SECRET.into(),
        }),
        ..HubConfig::default()
    };
    let (_s, app) = server(config);
    let token = JwtKey::new(SECRET.as_bytes()).sign(&Claims {
        publish: vec!["chat".into()],
        subscribe: vec!["chat".into(), "news-*".into()],
        ..Claims::default()
    });
    let with_token = |req: http::request::Builder, body: &str| {
        req.header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    // No token.
    let (status, headers, body) = send(&app, post("/api/channels/chat/messages", None, "x")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    // Allowed.
    let (status, _, _) = send(
        &app,
        with_token(Request::post("/api/channels/chat/messages"), "x"),
    )
    .await;
    assert_eq!(status, 200);
    // Not allowed to publish there.
    let (status, _, body) = send(
        &app,
        with_token(Request::post("/api/channels/news-1/messages"), "x"),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    // But allowed to read it, with the token in the query string as browsers must.
    let (status, _, _) = send(
        &app,
        get(&format!("/api/channels/news-1/messages?token={token}")),
    )
    .await;
    assert_eq!(status, 200);
    // A forged or garbage token.
    let (status, _, _) = send(&app, get("/api/channels/chat/messages?token=abc.def.ghi")).await;
    assert_eq!(status, 401);
    let (status, _, _) = send(&app, get("/api/channels")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_answer_json_too() {
    let (_s, app) = default_server();
    let req = Request::delete("/api/channels/c/messages")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("DELETE"), "{message}");
    let allow = headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let (status, _, body) = send(&app, post("/healthz", None, "x")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (status, _, body) = send(&app, get("/api/nothing/here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/api/nothing/here"));
}

#[tokio::test]
async fn curl_d_bodies_are_text_and_empty_bodies_are_refused() {
    let (_s, app) = default_server();
    // What `curl -d 'hello'` sends.
    let (status, _, body) = send(
        &app,
        post(
            "/api/channels/c/messages",
            Some("application/x-www-form-urlencoded"),
            "hello",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(&app, post("/api/channels/c/messages", None, "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_message");
    assert!(body["error"]["message"].as_str().unwrap().contains("empty"));
    let (_, _, history) = send(&app, get("/api/channels/c/messages?since=0")).await;
    let data: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    assert_eq!(data, [json!("hello")]);
}

#[tokio::test]
async fn a_text_body_of_exactly_the_limit_is_accepted() {
    let (_s, app) = default_server();
    let limit = HubConfig::default().limits.max_message_bytes;
    assert_eq!(limit, 65_536);
    let at = "x".repeat(limit);
    let (status, _, body) = send(
        &app,
        post("/api/channels/c/messages", Some("text/plain"), &at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let over = "x".repeat(limit + 1);
    let (status, _, body) = send(
        &app,
        post("/api/channels/c/messages", Some("text/plain"), &over),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn rate_limited_posts_say_when_to_retry_in_round_figures() {
    let mut config = HubConfig::default();
    config.rate_limit.messages_per_second = 0.5;
    config.rate_limit.burst = 1;
    let (_s, app) = server(config);
    let from_one_client = || {
        let mut req = post("/api/channels/c/messages", None, "x");
        let peer: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    };
    assert_eq!(send(&app, from_one_client()).await.0, StatusCode::OK);
    let (status, headers, body) = send(&app, from_one_client()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "2");
    let message = body["error"]["message"].as_str().unwrap();
    // 2 s minus the moment since the first post, rounded up to tenths.
    assert!(
        [
            "rate limit exceeded, retry in 2.0 s",
            "rate limit exceeded, retry in 1.9 s"
        ]
        .contains(&message),
        "{message}"
    );
}

#[tokio::test]
async fn rest_requests_are_counted_as_connections() {
    let (_s, app) = default_server();
    send(&app, post("/api/channels/c/messages", None, "x")).await;
    send(&app, get("/api/channels/c/messages")).await;
    send(&app, get("/api/channels")).await;
    let (_, _, text) = send(&app, get("/metrics")).await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("switchboard_connections_total{transport=\"rest\"} 3\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_origin_is_named_with_the_flag_that_allows_it() {
    let (_s, app) = default_server();
    let req = Request::post("/api/channels/c/messages")
        .header(header::ORIGIN, "https://other.example")
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::from("x"))
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("https://other.example"), "{message}");
    assert!(
        message.contains("--allow-origin https://other.example"),
        "{message}"
    );
    assert!(message.contains("allowed_origins"), "{message}");
}
