//! A catalogue shard (safetensors) from arbitrary bytes; one that loads is read back and ranked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shelfwise_fuzz::checks::shard(data));
