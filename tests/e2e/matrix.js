// The bad-input matrix, run in the page by tests/e2e/demo.mjs: every bad call must fail with a typed
// ShelfwiseError and the expected stable `code` (never a panic, a wasm trap or a plain Error).
// `bundle` is a manifest URL; `entry` is "index" (the model on the page) or "worker".

async function codeOf(f) {
  try {
    await f();
    return "NO_ERROR";
  } catch (e) {
    if (e?.name !== "ShelfwiseError") return `UNTYPED(${e?.name}: ${e?.message})`;
    return e.code;
  }
}

/** Replaces the bytes of the file a manifest `entry` ({ file, sha256, bytes }) names, and its size and hash. */
async function replaceFile(entry, files, bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  files[entry.file] = bytes;
  entry.bytes = bytes.length;
  entry.sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A bundle whose interest model's config.json has `fields` changed (its manifest entry matches it). */
const interestConfig = (fields) => async (m, f) => {
  const entry = m.recommender.interest.config;
  const config = { ...JSON.parse(new TextDecoder().decode(f[entry.file])), ...fields };
  await replaceFile(entry, f, new TextEncoder().encode(JSON.stringify(config)));
};

/** Fetches a bundle into `{ manifest, files }`, letting `edit` (which may be async) change it first. */
async function bundleBytes(bundle, edit) {
  const manifestText = await (await fetch(bundle)).text();
  const manifest = JSON.parse(manifestText);
  const names = [...manifest.shards.map((s) => s.file)];
  const r = manifest.recommender;
  for (const part of [r.interest, r.encoder]) for (const k of ["config", "weights", "tokenizer"]) if (part?.[k]) names.push(part[k].file);
  const files = {};
  for (const n of names) files[n] = new Uint8Array(await (await fetch(new URL(n, bundle))).arrayBuffer());
  await edit?.(manifest, files);
  return { manifest: JSON.stringify(manifest), files };
}

export async function run(bundle, entry) {
  const { Recommender } = await import(`/pkg/${entry}.js`);
  const rec = await Recommender.load(bundle, { device: "cpu", cache: false });
  const shard = (await (await fetch(bundle)).json()).shards[0].file;
  const cases = [
    ["track: not an object", () => rec.track("view"), "INVALID_EVENT"],
    ["track: null", () => rec.track(null), "INVALID_EVENT"],
    ["track: unknown event type", () => rec.track({ type: "dance", itemId: "1" }), "UNKNOWN_EVENT_TYPE"],
    ["track: type not a string", () => rec.track({ type: 7, itemId: "1" }), "INVALID_EVENT"],
    ["track: itemId a number", () => rec.track({ type: "view", itemId: 1 }), "INVALID_EVENT"],
    ["track: no itemId", () => rec.track({ type: "purchase" }), "INVALID_EVENT"],
    ["track: NaN ts", () => rec.track({ type: "view", itemId: "1", ts: NaN }), "INVALID_EVENT"],
    ["track: negative dwellMs", () => rec.track({ type: "view", itemId: "1", dwellMs: -5 }), "INVALID_EVENT"],
    ["track: unknown field", () => rec.track({ type: "view", itemId: "1", price: 3 }), "INVALID_EVENT"],
    ["track: huge query", () => rec.track({ type: "search", query: "x".repeat(1_000_000) }), "QUERY_TOO_LONG"],
    ["track: empty query", () => rec.track({ type: "search", query: "   " }), "INVALID_EVENT"],
    ["recommend: options not an object", () => rec.recommend(5), "INVALID_ARGUMENT"],
    ["recommend: unknown option", () => rec.recommend({ kk: 3 }), "INVALID_ARGUMENT"],
    ["recommend: k = 0", () => rec.recommend({ k: 0 }), "INVALID_ARGUMENT"],
    ["recommend: NaN diversity", () => rec.recommend({ diversity: NaN }), "INVALID_ARGUMENT"],
    ["recommend: unknown category", () => rec.recommend({ categories: ["Opera"] }), "UNKNOWN_CATEGORY"],
    ["recommend: NaN price range", () => rec.recommend({ priceRange: [NaN, 3] }), "INVALID_ARGUMENT"],
    ["recommend: NaN newItemBoost", () => rec.recommend({ newItemBoost: NaN }), "INVALID_ARGUMENT"],
    ["recommend: infinite popularityWeight", () => rec.recommend({ popularityWeight: Infinity }), "INVALID_ARGUMENT"],
    ["similar: unknown item", () => rec.similar("no-such-item"), "UNKNOWN_ITEM"],
    ["similar: not a string", () => rec.similar({}), "INVALID_ARGUMENT"],
    ["search: huge string", () => rec.search("y".repeat(100_000)), "QUERY_TOO_LONG"],
    ["search: empty", () => rec.search(""), "INVALID_QUERY"],
    ["on: unknown hook", () => rec.on("nope", () => {}), "INVALID_ARGUMENT"],
    ["load: bad device", () => Recommender.load(bundle, { device: "tpu" }), "INVALID_ARGUMENT"],
    ["load: options not an object", () => Recommender.load(bundle, "fast"), "INVALID_ARGUMENT"],
    ["load: misspelt option", () => Recommender.load(bundle, { persistt: "indexeddb" }), "INVALID_ARGUMENT"],
    ["load: NaN profileWeight", () => Recommender.load(bundle, { profileWeight: NaN }), "INVALID_ARGUMENT"],
    ["load: source a number", () => Recommender.load(42, { cache: false }), "INVALID_ARGUMENT"],
    ["load: missing manifest", () => Recommender.load(new URL("no-such/manifest.json", bundle).href, { cache: false }), "MISSING_FILE"],
    [
      "load: missing file",
      async () => Recommender.load(await bundleBytes(bundle, (m, f) => delete f[shard]), { cache: false }),
      "MISSING_FILE",
    ],
    [
      "load: corrupt (truncated) file",
      async () => Recommender.load(await bundleBytes(bundle, (m, f) => (f[shard] = f[shard].slice(0, 100))), { cache: false }),
      "INTEGRITY",
    ],
    [
      "load: sha mismatch",
      async () => Recommender.load(await bundleBytes(bundle, (m, f) => (f[shard][f[shard].length - 1] ^= 1)), { cache: false }),
      "INTEGRITY",
    ],
    [
      "load: manifest not JSON",
      async () => Recommender.load({ manifest: "{ not json", files: {} }, { cache: false }),
      "BAD_MANIFEST",
    ],
    [
      "load: a manifest path outside the bundle",
      async () => Recommender.load(await bundleBytes(bundle, (m) => (m.recommender.interest.config.file = "../config.json")), { cache: false }),
      "BAD_MANIFEST",
    ],
    // Hostile model configs: sizes that used to trap the wasm module (a panic in an allocation), and a
    // config within bounds that its weights file is far too small for.
    [
      "load: config with 1 << 24 layers",
      async () => Recommender.load(await bundleBytes(bundle, interestConfig({ num_hidden_layers: 1 << 24 })), { cache: false }),
      "BAD_CONFIG",
    ],
    [
      "load: config with a 2^20 x 2^14 word table",
      async () =>
        Recommender.load(
          await bundleBytes(bundle, interestConfig({ vocab_size: 1 << 20, hidden_size: 1 << 14, shelfwise: { causal: true, external_inputs: false, pooling: "last", pre_ln: true } })),
          { cache: false },
        ),
      "BAD_CONFIG",
    ],
    [
      "load: config with 200 layers, weights with 2",
      async () => Recommender.load(await bundleBytes(bundle, interestConfig({ num_hidden_layers: 200 })), { cache: false }),
      "BAD_WEIGHTS",
    ],
    [
      "load: catalogue-only manifest",
      async () => Recommender.load(await bundleBytes(bundle, (m) => delete m.recommender), { cache: false }),
      "BAD_MANIFEST",
    ],
  ];
  const out = [];
  for (const [name, f, want] of cases) out.push({ name, want, got: await codeOf(f) });
  // Overlapping calls all resolve; after dispose, every call is a typed error.
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => rec.recommend({ k: 3 + i })));
  out.push({ name: "overlapping recommend calls", want: "OK", got: many.every((r, i) => r.items.length === 3 + i) ? "OK" : "WRONG" });
  rec.dispose();
  out.push({ name: "recommend after dispose", want: "DISPOSED", got: await codeOf(() => rec.recommend()) });
  out.push({ name: "track after dispose", want: "DISPOSED", got: await codeOf(() => rec.track({ type: "view", itemId: "1" })) });
  return out;
}
