//! `recommend`, `similar`, `search` and `interest` on the tiny bundle (loaded once, CPU only) with decoded
//! events, options and profiles.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shelfwise::pipeline::Recommender;
use shelfwise_fuzz::checks::{load_bundle, recommend, RecommendCase};

thread_local! {
    static BUNDLE: (Recommender, Vec<String>) = {
        let rec = load_bundle(&|f| shelfwise_fuzz::bundle_file!(f).map(<[u8]>::to_vec));
        let ids = (0..rec.catalog().len()).map(|r| rec.catalog().id(r).to_string()).collect();
        (rec, ids)
    };
}

fuzz_target!(|data: &[u8]| {
    BUNDLE.with(|(rec, ids)| {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        recommend(rec, &RecommendCase::decode(data, &ids));
    })
});
