// shelfwise: on-device recommendations for storefronts. This entry runs the model on the calling thread;
// `shelfwise/worker` has the same API with the model in a dedicated Web Worker.
import { RecommenderCore } from "./core.js";
import { LocalEngine } from "./engine.js";

export { ShelfwiseError } from "./errors.js";
export { EVENT_TYPES, MAX_QUERY_CHARS } from "./core.js";

const open = (source, options) => LocalEngine.open(source, options);

export class Recommender extends RecommenderCore {
  /** Starts loading `bundle` (a manifest URL, or `{ manifest, files }`); calls made before it is ready wait. */
  constructor(bundle, options) {
    super(bundle, options, open);
  }

  /** Loads a bundle and resolves with a ready Recommender (rejects with a ShelfwiseError). */
  static async load(bundle, options) {
    return new Recommender(bundle, options).ready;
  }
}
