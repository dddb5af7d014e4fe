//! The Switchboard real-time hub (in progress).
