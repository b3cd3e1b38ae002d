/**
 * The `codeexec.*` settings as VS Code holds them, and the object the server reads.
 *
 * Pure: no `vscode` import, so `npm test` checks it without an editor.
 *
 * VS Code hands settings out as one nested object per section (`codeexec.llm.model`
 * becomes `{ llm: { model } }`), with every contributed key present, its default filled
 * in. The server reads that same shape from `initializationOptions`, from
 * `workspace/configuration` for section `codeexec` and from
 * `workspace/didChangeConfiguration`, and validates each key. What the mapping does:
 *
 * - drops the keys that only the extension reads (`server.*`, `trace.*`, `explanation.*`);
 * - drops `null`/`undefined` values and empty strings, which mean "unset, use the
 *   server's default" (`codeexec.cpuSeconds: null`, `codeexec.python: ""`): sent as
 *   they are, the server would warn that `null` is not a positive number;
 * - drops objects left empty by that, and copies everything else as it is, so a key
 *   the server learns later passes through without a new extension.
 */

export const SECTION = "codeexec";

/** Top-level keys under `codeexec` that configure the extension, not the server. */
export const CLIENT_ONLY_KEYS: readonly string[] = ["server", "trace", "explanation"];

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isUnset(value: unknown): boolean {
  return value === null || value === undefined || value === "";
}

function copyValue(value: unknown): JsonValue | undefined {
  if (isUnset(value)) {
    return undefined;
  }
  if (Array.isArray(value)) {
    // Lists are values (envPassthrough, llm.exclude): keep them whole, even when empty.
    return value.filter((item) => item !== undefined).map((item) => structuredCopy(item));
  }
  if (isPlainObject(value)) {
    const out: JsonObject = {};
    for (const [key, inner] of Object.entries(value)) {
      const copied = copyValue(inner);
      if (copied !== undefined) {
        out[key] = copied;
      }
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "string") {
    return value;
  }
  return undefined; // functions, symbols, bigints: not JSON, not settings
}

function structuredCopy(value: unknown): JsonValue {
  if (Array.isArray(value)) {
    return value.map((item) => structuredCopy(item));
  }
  if (isPlainObject(value)) {
    const out: JsonObject = {};
    for (const [key, inner] of Object.entries(value)) {
      if (inner !== undefined) {
        out[key] = structuredCopy(inner);
      }
    }
    return out;
  }
  if (
    value === null ||
    typeof value === "number" ||
    typeof value === "boolean" ||
    typeof value === "string"
  ) {
    return value;
  }
  return null;
}

/**
 * The server's settings object from the raw `codeexec` section.
 *
 * Also accepts `{ codeexec: {...} }` (what `didChangeConfiguration` carries) and unwraps it.
 */
export function toServerSettings(raw: unknown): JsonObject {
  let section: unknown = raw;
  if (isPlainObject(raw) && isPlainObject(raw[SECTION]) && Object.keys(raw).length === 1) {
    section = raw[SECTION];
  }
  if (!isPlainObject(section)) {
    return {};
  }
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(section)) {
    if (CLIENT_ONLY_KEYS.includes(key)) {
      continue;
    }
    const copied = copyValue(value);
    if (copied !== undefined) {
      out[key] = copied;
    }
  }
  return out;
}

/** The payload of `workspace/didChangeConfiguration` the extension sends. */
export function didChangeConfigurationPayload(raw: unknown): { settings: { codeexec: JsonObject } } {
  return { settings: { [SECTION]: toServerSettings(raw) } as { codeexec: JsonObject } };
}

/**
 * Nest dotted keys (`codeexec.llm.model`) into objects (`{ llm: { model } }`) after
 * stripping the section prefix: the shape VS Code gives `getConfiguration().get(section)`.
 */
export function nestDotted(flat: Record<string, unknown>, prefix = `${SECTION}.`): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [dotted, value] of Object.entries(flat)) {
    if (!dotted.startsWith(prefix)) {
      continue;
    }
    const parts = dotted.slice(prefix.length).split(".");
    let node = out;
    for (const part of parts.slice(0, -1)) {
      if (!isPlainObject(node[part])) {
        node[part] = {};
      }
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

/** Flatten a nested settings object back to dotted keys (without the section prefix). */
export function flattenSettings(nested: unknown, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!isPlainObject(nested)) {
    return out;
  }
  for (const [key, value] of Object.entries(nested)) {
    const dotted = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(value)) {
      Object.assign(out, flattenSettings(value, dotted));
    } else {
      out[dotted] = value;
    }
  }
  return out;
}

/** The executor named in the raw settings, as the status bar shows it. */
export function executorOf(raw: unknown): string {
  const settings = toServerSettings(raw);
  const executor = settings.executor;
  return typeof executor === "string" && executor ? executor : "session";
}

/** Where an explanation document opens (`codeexec.explanation.openIn`). */
export type ExplanationPlacement = "beside" | "active" | "preview";

export const EXPLANATION_PLACEMENTS: readonly ExplanationPlacement[] = ["beside", "active", "preview"];

/** `codeexec.explanation.openIn` from the raw settings; anything else means the default, beside. */
export function explanationPlacementOf(raw: unknown): ExplanationPlacement {
  const value = isPlainObject(raw) && isPlainObject(raw.explanation) ? raw.explanation.openIn : undefined;
  return EXPLANATION_PLACEMENTS.find((placement) => placement === value) ?? "beside";
}

/**
 * Whether a `window/showDocument` request is for one of the server's explanation
 * documents: a Markdown file the server wrote under its cache dir's
 * `explanations/documents`. Other documents the server may show open as it asks.
 */
export function isExplanationDocument(uri: string): boolean {
  return /^file:.*\/explanations\/documents\/[^/]+\.md$/.test(uri);
}
