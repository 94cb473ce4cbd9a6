//! The on-device profile: stored values read back for a model width, folded with a session and blended.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shelfwise_fuzz::checks::{stored_state, StoredState};

fuzz_target!(|data: &[u8]| stored_state(&StoredState::decode(data)));
