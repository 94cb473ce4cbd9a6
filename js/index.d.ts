// Types of the `shelfwise` and `shelfwise/worker` entries (the same API). The lists (event types, reason
// kinds, error codes) come from the Rust crate through the generated contract.d.ts.
import type { ErrorCode, ItemEventType, Reason, SearchEventType, WarningCode } from "./contract.js";

export type { ErrorCode, EventType, Reason, ReasonKind, WarningCode } from "./contract.js";
/** Event types `track` takes. */
export { EVENT_TYPES } from "./contract.js";

/** Every error the API raises: `code` is stable (docs/API.md lists them). */
export class ShelfwiseError extends Error {
  readonly code: ErrorCode;
  /** The file the error is about: a bundle file that failed to download or verify, a damaged shard or model file, or `manifest.json`. */
  readonly file?: string;
  /** The argument or option an input error is about. */
  readonly field?: string;
}

/** The longest query `track` and `search` take, in characters. */
export const MAX_QUERY_CHARS: number;

export type TrackEvent =
  | { type: ItemEventType; itemId: string; ts?: number; dwellMs?: number }
  | { type: SearchEventType; query: string; ts?: number; dwellMs?: number };

/** A stored event: `ts` is always set. */
export type StoredEvent = TrackEvent & { ts: number };

export type ProgressEvent =
  | { type: "download"; file: string; loaded: number; total: number }
  | { type: "progress"; file: string | null; loaded: number; total: number }
  | { type: "ready"; backend: Backend; items: number; loaded: number; total: number; cachedBytes: number };

export type Backend = "webgpu" | "cpu";

export interface LoadOptions {
  /** "auto" (default): WebGPU when there is a hardware adapter; "webgpu" requires one; "cpu" never uses it. */
  device?: "auto" | "webgpu" | "cpu";
  onProgress?: (event: ProgressEvent) => void;
  /** Keep verified bundle files in the Cache API (default true). */
  cache?: boolean;
  /** "indexeddb": keep the history and the long-term profile on this device (default "none"). */
  persist?: "none" | "indexeddb";
  /** Separates stored histories (default "default"). */
  storageKey?: string;
  /** Most events kept (default 500). */
  historyCap?: number;
  /** A repeated view of the same item within this many ms is not recorded again (default 2000). */
  debounceMs?: number;
  /** A quiet spell this long ends a session, which is folded into the profile (default 30 minutes). */
  sessionGapMs?: number;
  /** The profile's share of the ranking vector when the session has events (default 0.3). */
  profileWeight?: number;
  /** How much of the old profile each ended session keeps (default 0.7). */
  profileDecay?: number;
  /**
   * A bundle file's download is abandoned when nothing arrives (no headers, or no byte of its body) for this
   * many ms (default 30000, at most 3600000); it is then retried once, and loading fails with DOWNLOAD_FAILED.
   */
  downloadTimeoutMs?: number;
  /**
   * `shelfwise/worker` only: a worker call that gets no answer (and, while loading, no progress) for this many
   * ms rejects with WORKER_TIMEOUT and stops the worker; later calls reject with WORKER_FAILED (default 60000).
   */
  workerTimeoutMs?: number;
  /**
   * The SHA-256 (64 hex digits) the manifest must have: it pins the whole bundle, since the manifest holds every
   * other file's hash. Another manifest fails to load with INTEGRITY (default: not pinned).
   */
  manifestSha256?: string;
  /** Where the wasm file is, if not beside the package's JS (a URL, a Response or a compiled Module). */
  wasm?: string | URL | Response | WebAssembly.Module;
}

export interface RecommendOptions {
  /** Results (default 10). */
  k?: number;
  /** Leave out items the shopper already interacted with (default true; `ignore`d items always are). */
  excludeSeen?: boolean;
  exclude?: string[];
  allow?: string[];
  /** Category names (the manifest's `categories`). */
  categories?: string[];
  priceRange?: [number, number];
  inStockOnly?: boolean;
  /** 0 (default): by relevance only; towards 1, more varied results (MMR with λ = 1 - diversity). */
  diversity?: number;
  perCategoryCap?: number;
  /** Score added to every item of a category: `{ "Drama": 0.2 }`. */
  boosts?: Record<string, number>;
  /** Include `reason` (default true). */
  explain?: boolean;
  /** An A/B label, returned and passed to the hooks. */
  variant?: string;
  /** Weight of the shards' popularity added to scores (default 0). */
  popularityWeight?: number;
  /**
   * Added to the score of every new item: one with no interactions in the events the bundle was exported
   * from (popularity 0). Gives new arrivals exposure at some cost in relevance (default 0).
   */
  newItemBoost?: number;
}

export interface Recommendation {
  id: string;
  score: number;
  rank: number;
  reason?: Reason;
}

export interface Timings {
  tokenizeMs: number;
  modelMs: number;
  rankMs: number;
  totalMs: number;
}

export interface Recommendations {
  items: Recommendation[];
  backend: Backend;
  variant?: string;
  /** `recommend` only: time per stage. */
  timings?: Timings;
  totalMs: number;
}

export interface BundleInfo {
  backend: Backend;
  items: number;
  dim: number;
  modelId: string | null;
  categories: string[];
  takesSearches: boolean;
  bytes: number;
  cachedBytes: number;
}

export interface Profile {
  vector: Float32Array;
  sessions: number;
}

export interface HistoryExport {
  format: "shelfwise-history";
  version: 1;
  exportedAt: string;
  events: StoredEvent[];
  sessionStart: number;
  profile: { vector: number[]; sessions: number } | null;
}

export interface Hooks {
  impression: { surface: "recommend" | "similar" | "search"; itemIds: string[]; variant?: string };
  click: { itemId: string; rank: number; variant?: string; surface: string; ts: number };
  recommendations: { items: Recommendation[]; backend: Backend; timings: Timings; variant?: string };
  backendchange: { from: Backend; to: Backend; reason: string };
  warning: { code: WarningCode; message: string };
}

export type BundleSource = string | URL | { manifest: string | Uint8Array | ArrayBuffer; files: Record<string, Uint8Array | ArrayBuffer> };

export class Recommender {
  /** Starts loading; `track` works at once and the other calls wait for the bundle. */
  constructor(bundle: BundleSource, options?: LoadOptions);
  static load(bundle: BundleSource, options?: LoadOptions): Promise<Recommender>;
  readonly ready: Promise<Recommender>;
  readonly backend: Backend | null;
  readonly info: BundleInfo | null;
  /** Returns false when a repeated view was debounced. Throws ShelfwiseError on a malformed event. */
  track(event: TrackEvent): boolean;
  recommend(options?: RecommendOptions): Promise<Recommendations>;
  similar(itemId: string, options?: RecommendOptions): Promise<Recommendations>;
  search(text: string, options?: RecommendOptions): Promise<Recommendations>;
  history(): StoredEvent[];
  /** For monitoring: the wasm module's linear memory in bytes (it grows, never shrinks) and the history's length. */
  memoryUsage(): Promise<{ wasmBytes: number; historyEvents: number }>;
  profile(): Profile | null;
  exportHistory(): HistoryExport;
  reset(): Promise<void>;
  /** Resolves once every history write has reached IndexedDB. */
  flush(): Promise<void>;
  on<K extends keyof Hooks>(type: K, handler: (event: Hooks[K]) => void): () => void;
  dispose(): void;
}
