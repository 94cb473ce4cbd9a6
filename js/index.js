// shelfwise: on-device recommendations for storefronts. This entry runs the model on the calling thread;
// `shelfwise/worker` has the same API with the model in a dedicated Web Worker.
import { defineRecommender } from "./core.js";
import { LocalEngine } from "./engine.js";

export { ShelfwiseError } from "./errors.js";
export { EVENT_TYPES } from "./contract.js";
export { MAX_QUERY_CHARS } from "./core.js";

const open = (source, options) => LocalEngine.open(source, options);

export const Recommender = defineRecommender(open);
