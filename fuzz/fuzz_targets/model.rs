//! `[config length: u16 LE][config.json][model.safetensors]`: a BERT config and its weights, read as the
//! interest model and as a text encoder (with the tiny bundle's tokenizer), then run once on the CPU.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tokenizer = shelfwise_fuzz::bundle_file!("encoder/tokenizer.json").unwrap_or_default();
    shelfwise_fuzz::checks::model(data, tokenizer)
});
