//! The pure core of the hub: names, ids, payloads, history, the resume rule and presence.
//!
//! Nothing here does I/O, spawns, sleeps or reads the clock: time comes in as a `now`
//! argument, and epochs are drawn by the caller. Everything is therefore testable with
//! plain function calls, and the property tests can drive thousands of histories per second.

mod channel;
mod encode;
mod history;
mod id;
mod message;
mod payload;
mod presence;

pub use channel::{ChannelName, ChannelNameError, MAX_CHANNEL_NAME_LEN};
pub use encode::{sse_event, Entry, SseFormat};
pub use history::{
    age, resume_rule, retained_cost, History, HistoryLimits, Page, ResetReason, Resume,
    MESSAGE_OVERHEAD,
};
pub use id::{Cursor, CursorError, Epoch, MessageId, MAX_EPOCH};
pub use message::Message;
pub use payload::{check_json_shape, Payload, PayloadError, DEFAULT_MAX_DEPTH};
pub use presence::{
    ClientId, ClientIdError, Joined, PresenceCounts, PresenceEntry, PresenceEvent,
    PresenceRegistry, Released, SessionKey, MAX_CLIENT_ID_LEN,
};
