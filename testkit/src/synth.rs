//! Seeded synthetic catalogues for scale tests, benchmarks and the first demo.
//!
//! Items are drawn around `clusters` random directions (so nearest neighbours mean something), each cluster
//! leans to one category, popularity follows a Zipf law over a random permutation of the items, prices are
//! log-normal around a per-category level, and about 90% of items are in stock.

use shelfwise::rng::Rng;
use shelfwise::shard::Attributes;

/// Parameters of a synthetic catalogue.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    pub items: usize,
    pub dim: usize,
    pub categories: u32,
    pub clusters: usize,
    pub seed: u64,
}

impl SynthSpec {
    pub fn new(items: usize, dim: usize) -> SynthSpec {
        SynthSpec {
            items,
            dim,
            categories: 24,
            clusters: 64,
            seed: 7,
        }
    }
}

/// A generated catalogue: row-major vectors plus everything a shard and a catalogue JSONL need.
#[derive(Clone, Debug)]
pub struct SynthCatalog {
    pub ids: Vec<String>,
    pub titles: Vec<String>,
    pub category_names: Vec<String>,
    /// `[items, dim]`, unit length.
    pub vectors: Vec<f32>,
    pub attributes: Attributes,
}

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Organic",
    "Compact",
    "Deluxe",
    "Everyday",
    "Vintage",
    "Wireless",
    "Handmade",
    "Ultralight",
    "Premium",
    "Recycled",
    "Smart",
    "Travel",
    "Outdoor",
    "Minimal",
    "Cozy",
];
const CATEGORY_NAMES: &[(&str, &[&str])] = &[
    (
        "Kitchen",
        &["Kettle", "Skillet", "Knife Set", "Teapot", "Blender"],
    ),
    (
        "Books",
        &["Novel", "Cookbook", "Atlas", "Journal", "Field Guide"],
    ),
    (
        "Audio",
        &["Headphones", "Speaker", "Turntable", "Earbuds", "Radio"],
    ),
    (
        "Garden",
        &["Planter", "Trowel", "Hose", "Seed Kit", "Bird Feeder"],
    ),
    (
        "Toys",
        &["Puzzle", "Building Set", "Plush Fox", "Kite", "Board Game"],
    ),
    (
        "Outdoor",
        &["Tent", "Backpack", "Lantern", "Hammock", "Water Bottle"],
    ),
    (
        "Office",
        &["Desk Lamp", "Notebook", "Pen Set", "Monitor Stand", "Chair"],
    ),
    (
        "Apparel",
        &["Sweater", "Rain Jacket", "Scarf", "Sneakers", "Cap"],
    ),
    (
        "Beauty",
        &["Face Cream", "Soap Bar", "Hair Oil", "Lip Balm", "Candle"],
    ),
    (
        "Sports",
        &["Yoga Mat", "Dumbbell", "Jump Rope", "Racket", "Football"],
    ),
    (
        "Pets",
        &["Dog Bed", "Cat Tree", "Leash", "Chew Toy", "Feeder"],
    ),
    ("Home", &["Throw Blanket", "Vase", "Clock", "Mirror", "Rug"]),
    (
        "Electronics",
        &[
            "Charger",
            "Webcam",
            "Keyboard",
            "Power Bank",
            "Tablet Stand",
        ],
    ),
    (
        "Bath",
        &["Towel Set", "Bath Mat", "Shower Caddy", "Robe", "Soap Dish"],
    ),
    (
        "Baby",
        &[
            "Rattle",
            "Bib Set",
            "Stroller Fan",
            "Night Light",
            "Blanket",
        ],
    ),
    (
        "Music",
        &[
            "Ukulele",
            "Guitar Strings",
            "Metronome",
            "Harmonica",
            "Drum Pad",
        ],
    ),
    (
        "Crafts",
        &[
            "Sketchbook",
            "Paint Set",
            "Yarn Bundle",
            "Glue Gun",
            "Brush Kit",
        ],
    ),
    (
        "Tools",
        &[
            "Drill",
            "Screwdriver Set",
            "Tape Measure",
            "Level",
            "Work Gloves",
        ],
    ),
    (
        "Jewelry",
        &["Necklace", "Ring", "Bracelet", "Earrings", "Watch"],
    ),
    (
        "Games",
        &[
            "Card Game",
            "Chess Set",
            "Dice Kit",
            "Party Game",
            "Trivia Box",
        ],
    ),
    (
        "Grocery",
        &[
            "Coffee Beans",
            "Green Tea",
            "Olive Oil",
            "Honey Jar",
            "Granola",
        ],
    ),
    (
        "Bikes",
        &["Bike Light", "Helmet", "Bike Lock", "Pump", "Saddle"],
    ),
    (
        "Photo",
        &[
            "Tripod",
            "Camera Bag",
            "Lens Cloth",
            "Photo Frame",
            "Memory Card",
        ],
    ),
    (
        "Travel",
        &[
            "Suitcase",
            "Neck Pillow",
            "Packing Cubes",
            "Passport Case",
            "Adapter",
        ],
    ),
];

/// Generates a catalogue. The same spec always gives the same catalogue.
pub fn generate(spec: &SynthSpec) -> SynthCatalog {
    let mut rng = Rng::new(spec.seed);
    let (n, d) = (spec.items, spec.dim);
    let nc = spec.categories.max(1);
    let k = spec.clusters.max(1);
    let mut centers = vec![0f32; k * d];
    for c in centers.chunks_exact_mut(d) {
        c.iter_mut().for_each(|v| *v = rng.normal());
        normalize(c);
    }
    let cluster_cat: Vec<u32> = (0..k).map(|_| rng.below(nc as u64) as u32).collect();
    let cat_level: Vec<f32> = (0..nc).map(|_| 10.0 + 190.0 * rng.uniform()).collect();
    let category_names: Vec<String> = (0..nc as usize)
        .map(|c| {
            let (base, _) = CATEGORY_NAMES[c % CATEGORY_NAMES.len()];
            if c < CATEGORY_NAMES.len() {
                base.to_string()
            } else {
                format!("{base} {}", c / CATEGORY_NAMES.len() + 1)
            }
        })
        .collect();

    // Zipf popularity over a random permutation.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut popularity = vec![0f32; n];
    for (rank, &item) in order.iter().enumerate() {
        popularity[item] = 1.0 / (rank as f32 + 1.0).powf(0.8);
    }

    let mut vectors = vec![0f32; n * d];
    let mut ids = Vec::with_capacity(n);
    let mut titles = Vec::with_capacity(n);
    let mut category = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    let mut in_stock = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.below(k as u64) as usize;
        let v = &mut vectors[i * d..(i + 1) * d];
        for (x, m) in v.iter_mut().zip(&centers[c * d..(c + 1) * d]) {
            *x = m + 0.35 * rng.normal() / (d as f32).sqrt();
        }
        normalize(v);
        let cat = if rng.uniform() < 0.8 {
            cluster_cat[c]
        } else {
            rng.below(nc as u64) as u32
        };
        let nouns = CATEGORY_NAMES[cat as usize % CATEGORY_NAMES.len()].1;
        let adj = ADJECTIVES[rng.below(ADJECTIVES.len() as u64) as usize];
        let noun = nouns[rng.below(nouns.len() as u64) as usize];
        ids.push(format!("sku-{i:07}"));
        titles.push(format!("{adj} {noun}"));
        category.push(cat);
        let p = cat_level[cat as usize] * (0.4 * rng.normal()).exp();
        price.push((p * 100.0).round() / 100.0);
        in_stock.push(rng.uniform() < 0.9);
    }
    SynthCatalog {
        ids,
        titles,
        category_names,
        vectors,
        attributes: Attributes {
            category: Some(category),
            price: Some(price),
            in_stock: Some(in_stock),
            popularity: Some(popularity),
        },
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Writes a generated catalogue as one shard of `dtype`.
pub fn shard_bytes(
    cat: &SynthCatalog,
    dim: usize,
    dtype: shelfwise::Dtype,
    model_id: &str,
) -> shelfwise::Result<Vec<u8>> {
    shelfwise::write_shard(&shelfwise::ShardSpec {
        ids: &cat.ids,
        vectors: &cat.vectors,
        dim,
        dtype,
        normalize: true,
        model_id,
        num_categories: Some(cat.category_names.len() as u32),
        attributes: &cat.attributes,
    })
}
