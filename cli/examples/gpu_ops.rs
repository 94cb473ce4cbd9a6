//! Each Transformer kernel alone: submit, wait and read back, at MiniLM's sizes.
use shelfwise::backend::gpu::{nn::GpuNn, GpuContext};
use shelfwise::model::weights::{LinearWeights, NormWeights};
use shelfwise::model::{NnBackend, Pooling};
use std::time::Instant;

fn time(name: &str, f: &dyn Fn() -> Vec<f32>) {
    f();
    let t = Instant::now();
    for _ in 0..3 {
        std::hint::black_box(f());
    }
    println!("{name}: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 3.0);
}

fn main() {
    let ctx = pollster::block_on(GpuContext::new()).unwrap();
    println!("{}", ctx.adapter_name());
    let g = pollster::block_on(GpuNn::new(ctx)).unwrap();
    let n: usize = std::env::args().nth(1).map_or(16, |s| s.parse().unwrap());
    let (h, i) = (384, 1536);
    let x = g.tensor(&vec![0.5; n * h], h).unwrap();
    let xi = g.tensor(&vec![0.5; n * i], i).unwrap();
    let rd = |t: &shelfwise::backend::gpu::nn::GpuTensor| pollster::block_on(g.read(t)).unwrap();
    time("nothing (copy + read back)", &|| rd(&x));
    let l1 = g
        .upload_linear(&LinearWeights {
            w: vec![0.01; h * h],
            b: vec![0.0; h],
            out_dim: h,
            in_dim: h,
        })
        .unwrap();
    let l2 = g
        .upload_linear(&LinearWeights {
            w: vec![0.01; i * h],
            b: vec![0.0; i],
            out_dim: i,
            in_dim: h,
        })
        .unwrap();
    let l3 = g
        .upload_linear(&LinearWeights {
            w: vec![0.01; i * h],
            b: vec![0.0; h],
            out_dim: h,
            in_dim: i,
        })
        .unwrap();
    time("linear 384->384", &|| rd(&g.linear(&x, &l1)));
    time("linear 384->1536", &|| rd(&g.linear(&x, &l2)));
    time("linear 1536->384", &|| rd(&g.linear(&xi, &l3)));
    let nw = g
        .upload_norm(
            &NormWeights {
                gamma: vec![1.0; h],
                beta: vec![0.0; h],
            },
            1e-12,
        )
        .unwrap();
    time("layer_norm", &|| rd(&g.layer_norm(&x, &nw)));
    time("add", &|| rd(&g.add(&x, &x)));
    time("gelu 1536", &|| rd(&g.gelu(&xi)));
    let mask = vec![1u32; n];
    time("attention", &|| {
        rd(&g.attention(&x, &x, &x, &mask, 1, 12, false))
    });
    time("pool", &|| rd(&g.pool(&x, &mask, 1, Pooling::Mean, true)));
    let word = g.upload_table(&vec![0.1; 30522 * h], h).unwrap();
    let pos = g.upload_table(&vec![0.1; 512 * h], h).unwrap();
    let ty = g.upload_table(&vec![0.1; 2 * h], h).unwrap();
    let ids = vec![5u32; n];
    let tids = vec![0u32; n];
    time("embed", &|| rd(&g.embed(&word, &pos, &ty, &ids, &tids, n)));
}
