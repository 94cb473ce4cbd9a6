//! `manifest.json` from arbitrary bytes, as `bundleFiles` and `Recommender::load` read it (against the
//! tiny bundle's files, so a manifest that keeps their hashes loads models).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shelfwise_fuzz::checks::manifest(data, &|f| {
        shelfwise_fuzz::bundle_file!(f).map(<[u8]>::to_vec)
    })
});
