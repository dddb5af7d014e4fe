#![no_main]
//! The hub's `/ws` JSON protocol parser (`switchboard_hub::transport::command::parse`) and
//! the payload validator behind it, on arbitrary text.
//!
//! Oracles: nothing panics; a frame nested deeper than the limit is never accepted; an
//! accepted payload passes the shape check, reparses as JSON and keeps its value through
//! compaction; a refusal's `ref` is the frame's own JSON.

use switchboard_hub::core::{check_json_shape, Payload};
use switchboard_hub::transport::command::parse;

const DEPTH: usize = 8;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let too_deep = check_json_shape(text.as_bytes(), DEPTH).is_err();
    match parse(text, DEPTH) {
        Ok(cmd) => {
            assert!(!too_deep, "accepted a frame the shape check refuses: {text:?}");
            if let Some(data) = cmd.data {
                if let Ok(p) = Payload::from_json_with_depth(data.get().as_bytes(), DEPTH - 1) {
                    assert!(check_json_shape(p.json(), DEPTH - 1).is_ok());
                    let before: serde_json::Value = serde_json::from_str(data.get()).unwrap();
                    let after: serde_json::Value = serde_json::from_slice(p.json()).unwrap();
                    assert_eq!(before, after, "compaction changed the value");
                }
            }
        }
        Err(refusal) => {
            if let Some(r) = refusal.reference {
                serde_json::from_str::<serde_json::Value>(r.get()).expect("ref is JSON");
            }
        }
    }
});
