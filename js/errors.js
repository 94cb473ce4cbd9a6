// Typed errors: every failure the API reports is a ShelfwiseError with a stable `code`, one of ERROR_CODES
// (generated from the Rust crate's list into contract.js).
import { ERROR_CODES } from "./contract.js";

const CODES = new Set(ERROR_CODES);

/** An error with a stable machine-readable `code` (see docs/API.md for the list). */
export class ShelfwiseError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = "ShelfwiseError";
    this.code = code;
    Object.assign(this, details);
  }
}

/** Any thrown value as a ShelfwiseError: the wasm module's errors already carry a `code` (and `file`, `field`). */
export function asShelfwiseError(e) {
  if (e instanceof ShelfwiseError) return e;
  const code = CODES.has(e?.code) ? e.code : "INTERNAL";
  const message = typeof e?.message === "string" ? e.message : String(e);
  const details = {};
  for (const key of ["file", "field"]) if (e?.[key] !== undefined) details[key] = e[key];
  return new ShelfwiseError(code, message, details);
}

/** A plain object that survives postMessage, and back. */
export function errorToWire(e) {
  const err = asShelfwiseError(e);
  return { code: err.code, message: err.message, file: err.file, field: err.field };
}

export function errorFromWire(w) {
  const details = {};
  if (w.file !== undefined) details.file = w.file;
  if (w.field !== undefined) details.field = w.field;
  return new ShelfwiseError(w.code, w.message, details);
}
