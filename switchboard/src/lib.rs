//! WebSocket on tokio (in progress).
