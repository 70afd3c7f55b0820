// weft-sdk for JavaScript: write Weft tasks as JavaScript functions.
//
// A plugin module defines its tasks with `defineTask` and re-exports `task`
// (the WIT `weft:plugin/task` export) from this module:
//
//   import { defineTask, task } from "./weft-sdk.js";
//   defineTask({
//     id: "demo.shout",
//     title: "Shout",
//     input: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
//     output: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
//   }, (input, ctx) => ({ text: input.text.toUpperCase() }));
//   export { task };
//
// `weft build` (or componentize-js) turns it into a WASI 0.2 component.
import { log as hostLog } from "weft:plugin/log@0.1.5";
import { report } from "weft:plugin/progress@0.1.5";
import * as hostModels from "weft:plugin/models@0.1.5";
import * as hostStorage from "weft:plugin/storage@0.1.5";
import * as hostVectors from "weft:plugin/vectors@0.1.5";
import * as hostConfig from "weft:plugin/config@0.1.5";

const tasks = new Map();

/** A task failure with a kind the host understands. */
export class TaskError extends Error {
  constructor(kind, message, delayMs) {
    super(message);
    this.kind = kind;
    this.delayMs = delayMs;
  }
  /** The input makes no sense for this task. Never retried. */
  static invalidInput(message) { return new TaskError("invalid-input", message); }
  /** The task failed; retrying will not help. */
  static failed(message) { return new TaskError("failed", message); }
  /** The task failed for a passing reason; the host may retry after `delayMs`. */
  static retryable(message, delayMs) { return new TaskError("retryable", message, delayMs); }
}

/**
 * Define a task type. `def`: id, version, title, category, description,
 * input and output (JSON Schemas of objects), sideEffects, cacheable,
 * timeoutMs. `fn(input, ctx)` returns the output object.
 */
export function defineTask(def, fn) {
  if (!def || typeof def.id !== "string") throw new Error("defineTask needs an `id`");
  const open = { type: "object", additionalProperties: true };
  tasks.set(def.id, {
    meta: {
      id: def.id,
      version: def.version ?? "0.1.0",
      title: def.title ?? def.id,
      category: def.category ?? def.id.split(".")[0],
      description: def.description ?? "",
      inputSchema: JSON.stringify(def.input ?? open),
      outputSchema: JSON.stringify(def.output ?? open),
      sideEffects: !!def.sideEffects,
      cacheable: def.cacheable ?? !def.sideEffects,
      timeoutMs: def.timeoutMs === undefined ? undefined : BigInt(def.timeoutMs),
    },
    fn,
  });
}

const LEVELS = ["trace", "debug", "info", "warn", "error"];

/** Write a log line (level: trace, debug, info, warn, error). */
export function log(level, message) {
  hostLog(LEVELS.includes(level) ? level : "info", String(message));
}

/** Report progress, `fraction` in [0, 1]. */
export function progress(fraction, message) {
  report(fraction, message === undefined ? undefined : String(message));
}

function modelError(e) {
  const p = e && e.payload;
  if (p && p.tag === "rate-limited") return TaskError.retryable(`rate limited: retry after ${p.val} ms`, Number(p.val));
  if (p && p.tag === "unavailable") return TaskError.retryable(`model unavailable: ${p.val}`);
  if (p && p.tag === "invalid-request") return TaskError.invalidInput(`invalid model request: ${p.val}`);
  if (p && p.tag) return TaskError.failed(`${p.tag}: ${p.val}`);
  return e;
}

// A prompt: a string, or a chat (an array of `{role, content}`).
function promptOf(prompt) {
  return typeof prompt === "string" ? { tag: "text", val: prompt } : { tag: "chat", val: prompt };
}

// Generation settings: `{maxTokens, temperature, stop}`, each optional.
function optionsOf(options) {
  return {
    maxTokens: options.maxTokens === undefined ? undefined : Number(options.maxTokens),
    temperature: options.temperature,
    stop: options.stop ?? [],
  };
}

// An image file `{mediaType, bytes}` as the host takes it.
function imageFileOf(image) {
  return { mediaType: image.mediaType, bytes: Uint8Array.from(image.bytes) };
}

/** Models served by the host (granted in the plugin's manifest). */
export const models = {
  embed(model, texts) {
    try { return hostModels.embed(model, texts).map((v) => Array.from(v)); } catch (e) { throw modelError(e); }
  },
  /**
   * Generate text from `prompt` (a string, or a chat: an array of `{role, content}`);
   * `options`: maxTokens, temperature, stop. The generation: `{text, tokenIds, tokens, finishReason}`.
   */
  generate(model, prompt, options = {}) {
    try { return hostModels.generate(model, promptOf(prompt), optionsOf(options)); } catch (e) { throw modelError(e); }
  },
  /**
   * Generate text about `images` (`{mediaType: "image/png" | "image/jpeg", bytes}`, at most 8
   * of 3,932,160 bytes, 20 MiB in all) with vision model `model`: they go with the prompt's
   * last user message. HTTP providers' vision models take images; others refuse. As `generate`.
   */
  generateSeeing(model, prompt, images, options = {}) {
    try {
      return hostModels.generateSeeing(model, promptOf(prompt), images.map(imageFileOf), optionsOf(options));
    } catch (e) { throw modelError(e); }
  },
  /**
   * Generate a JSON value for `schema` (a JSON Schema, as an object or JSON text, at most
   * 64 KiB) with `model`: held to it where the provider has a native mode (OpenAI-compatible
   * `json_schema`). As `generate`: the answer is the generation's `text`; parse and validate it.
   */
  generateJson(model, prompt, schema, options = {}) {
    const text = typeof schema === "string" ? schema : JSON.stringify(schema);
    try { return hostModels.generateJson(model, promptOf(prompt), text, optionsOf(options)); } catch (e) { throw modelError(e); }
  },
  /**
   * An image made by image-generation model `model` (an HTTP provider's): `request` is
   * `{prompt, images, mask, aspectRatio, quality}` (or just the prompt); `images` (image
   * files as for `generateSeeing`) are edited, the first with the rest as references, where
   * `mask` (a PNG) is transparent; `aspectRatio` `1:1` (the default), `16:9`, `9:16`, `4:3`
   * or `3:4`; `quality` `low`, `medium` or `high`. The image: `{mediaType, bytes}`
   * (PNG, JPEG or WebP).
   */
  generateImage(model, request) {
    const r = typeof request === "string" ? { prompt: request } : request;
    const wire = {
      prompt: r.prompt,
      images: (r.images ?? []).map(imageFileOf),
      mask: r.mask === undefined || r.mask === null ? undefined : imageFileOf(r.mask),
      aspectRatio: r.aspectRatio ?? undefined,
      quality: r.quality ?? undefined,
    };
    try { return hostModels.generateImage(model, wire); } catch (e) { throw modelError(e); }
  },
  /** How many tokens `text` is for this model. */
  countTokens(model, text) {
    try { return hostModels.countTokens(model, text); } catch (e) { throw modelError(e); }
  },
  /** What the model is: `{id, provider, kind, dimensions}` (dimensions undefined when not known). */
  info(model) {
    try { return hostModels.info(model); } catch (e) { throw modelError(e); }
  },
  /**
   * The foreground of an RGBA image (`width * height * 4` bytes, row by row) by a
   * `background-removal` model: a Uint8Array of one alpha byte per pixel.
   */
  foreground(model, { width, height, rgba }) {
    try {
      return hostModels.foreground(model, { width, height, rgba: Uint8Array.from(rgba) });
    } catch (e) { throw modelError(e); }
  },
  /**
   * What a `face-detection` model finds in an RGBA image, best first, at most 100:
   * `{label, score, x, y, width, height, keypoints: [{x, y, label}]}` in pixels. Those
   * scoring below `minScore` (0.5) are left out; those overlapping a better one by more
   * than `maxOverlap` (0.3, intersection over union) are merged into it.
   */
  detect(model, { width, height, rgba }, { minScore = 0.5, maxOverlap = 0.3 } = {}) {
    try {
      return hostModels.detect(model, { width, height, rgba: Uint8Array.from(rgba) }, { minScore, maxOverlap });
    } catch (e) { throw modelError(e); }
  },
};

function storageError(e) {
  const p = e && e.payload;
  if (p && p.tag === "conflict") {
    const err = TaskError.failed(`conflict: the key is at version ${p.val ?? "none"}`);
    err.conflict = true;
    err.current = p.val === undefined ? undefined : Number(p.val);
    return err;
  }
  if (p && p.tag === "unavailable") return TaskError.retryable(`storage unavailable: ${p.val}`);
  if (p && p.tag) return TaskError.failed(`${p.tag}: ${p.val}`);
  return e;
}

const utf8 = new TextEncoder();

/**
 * Key-value storage kept by the host: the plugin's own namespace (no
 * `namespace`) and those its manifest grants, per user of the run. Values
 * are bytes (a string is written as UTF-8); versions are numbers. Only
 * tasks with `sideEffects: true` may write. A lost compare-and-swap throws a
 * TaskError with `conflict: true`.
 */
export const storage = {
  /** `{ value: Uint8Array, version }`, or undefined when absent. */
  get(key, namespace) {
    try {
      const e = hostStorage.get(namespace, key);
      return e === undefined ? undefined : { value: e.value, version: Number(e.version) };
    } catch (e) { throw storageError(e); }
  },
  /** The value as text, or undefined. */
  getText(key, namespace) {
    const e = storage.get(key, namespace);
    return e === undefined ? undefined : new TextDecoder().decode(e.value);
  },
  /** Write; the new version. `options.ifVersion` (0: only if absent), `options.ttlMs`. */
  set(key, value, namespace, options = {}) {
    const bytes = typeof value === "string" ? utf8.encode(value) : value;
    const write = {
      key, value: bytes,
      ifVersion: options.ifVersion === undefined ? undefined : BigInt(options.ifVersion),
      ttlMs: options.ttlMs === undefined ? undefined : BigInt(options.ttlMs),
    };
    try { return Number(hostStorage.set(namespace, write)); } catch (e) { throw storageError(e); }
  },
  /** Delete up to 1,000 keys all together: whether each was there. */
  deleteMany(keys, namespace) {
    const deletions = keys.map((key) => ({ key, ifVersion: undefined }));
    try { return hostStorage.deleteMany(namespace, deletions); } catch (e) { throw storageError(e); }
  },
  /** Every key that starts with `prefix`, in byte order. */
  keys(prefix = "", namespace) {
    const found = [];
    let after;
    for (;;) {
      let page;
      try { page = hostStorage.listKeys(namespace, prefix, after, 1000); } catch (e) { throw storageError(e); }
      found.push(...page.keys);
      if (page.next === undefined) return found;
      after = page.next;
    }
  },
};

/**
 * Vectors kept with storage's keys, and the keys nearest a query (the host's
 * store ranks them: pgvector on PostgreSQL). Namespaces, grants and errors
 * are `storage`'s.
 */
export const vectors = {
  /**
   * Write up to 1,000 `[key, value, vector]` (value: bytes or a string,
   * written as UTF-8; vector: an array of numbers) all together, each key
   * keeping its vector; their new versions.
   */
  setMany(entries, namespace) {
    const writes = entries.map(([key, value]) => ({
      key, value: typeof value === "string" ? utf8.encode(value) : Uint8Array.from(value),
      ifVersion: undefined, ttlMs: undefined,
    }));
    const vecs = entries.map(([, , vector]) => Float32Array.from(vector));
    try { return Array.from(hostVectors.setMany(namespace, writes, vecs), Number); } catch (e) { throw storageError(e); }
  },
  /**
   * `{key, similarity}` of the keys under `prefix` nearest `query` by
   * cosine similarity, best first, past `skip`, at most `limit` (1 to
   * 1,000).
   */
  nearest(query, { prefix = "", namespace, skip = 0, limit = 10 } = {}) {
    let found;
    try {
      found = hostVectors.nearest(namespace, prefix, Float32Array.from(query), Number(skip), Number(limit));
    } catch (e) { throw storageError(e); }
    return found.map((n) => ({ key: n.key, similarity: n.similarity }));
  },
};

/** The plugin's `[config]` (its manifest's), values as JSON. */
export const config = {
  /** The value, or undefined when the manifest does not set it. */
  get(key) {
    let text;
    try { text = hostConfig.get(key); } catch (e) {
      const p = e && e.payload;
      throw TaskError.failed(`config \`${key}\`: ${p ? p.val : e}`);
    }
    return text === undefined ? undefined : JSON.parse(text);
  },
  keys() { return hostConfig.keys(); },
};

/** The `weft:plugin/task` export: re-export it from the plugin module. */
export const task = {
  describe() {
    return [...tasks.values()].map((t) => t.meta);
  },
  run(taskId, input, ctx) {
    const t = tasks.get(taskId);
    if (!t) throw { tag: "invalid-input", val: `this plugin has no task type ${taskId}` };
    const context = {
      runId: ctx.runId, nodeId: ctx.nodeId, attempt: ctx.attempt, idempotencyKey: ctx.idempotencyKey,
      log, progress,
    };
    let output;
    try {
      output = t.fn(JSON.parse(input), context);
    } catch (e) {
      if (e instanceof TaskError) {
        if (e.kind === "retryable") {
          throw { tag: "retryable", val: { message: e.message, delayMs: e.delayMs === undefined ? undefined : BigInt(e.delayMs) } };
        }
        throw { tag: e.kind, val: e.message };
      }
      const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw { tag: "failed", val: `uncaught ${what}` };
    }
    return JSON.stringify(output === undefined ? {} : output);
  },
};
