//! `[max_len: u8][json length: u16 LE][tokenizer.json][text]`: a tokenizer from bytes, and the text
//! tokenized by it (when it loads) and by the tiny bundle's tokenizer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let known = shelfwise_fuzz::bundle_file!("encoder/tokenizer.json").unwrap_or_default();
    shelfwise_fuzz::checks::tokenizer(data, known)
});
