//! Where a GPU forward pass spends its time: recording (CPU side) against submit + wait + read-back.
use shelfwise::backend::gpu::{nn::GpuNn, GpuContext};
use shelfwise::model::{Bert, ModelConfig, NnBackend};
use shelfwise::tokenize::Batch;
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).expect("model folder");
    let cfg =
        ModelConfig::from_json(&std::fs::read(format!("{dir}/config.json")).unwrap()).unwrap();
    let w = shelfwise::model::BertWeights::from_safetensors(
        "m",
        &std::fs::read(format!("{dir}/model.safetensors")).unwrap(),
        &cfg,
    )
    .unwrap();
    let ctx = pollster::block_on(GpuContext::new()).unwrap();
    println!("{}", ctx.adapter_name());
    let m = Bert::new(cfg, &w, pollster::block_on(GpuNn::new(ctx)).unwrap()).unwrap();
    for len in [16usize, 128] {
        let b = Batch {
            batch: 1,
            len,
            ids: vec![1000; len],
            attention_mask: vec![1; len],
            type_ids: vec![0; len],
        };
        for it in 0..5 {
            let t0 = Instant::now();
            let x = m.hidden_states(&b).unwrap();
            let t1 = Instant::now();
            let v = pollster::block_on(m.backend().read(&x)).unwrap();
            let t2 = Instant::now();
            println!(
                "len {len} iter {it}: record {:.2} ms, submit+wait+read {:.2} ms ({} values)",
                (t1 - t0).as_secs_f64() * 1e3,
                (t2 - t1).as_secs_f64() * 1e3,
                v.len()
            );
        }
    }
}
