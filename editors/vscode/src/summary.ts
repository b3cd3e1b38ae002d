/**
 * One line about what a server command returned, for the status bar and the log.
 * The server itself shows the details (diagnostics, hover, inlay hints, messages).
 * Pure: no `vscode` import.
 */

export type Level = "info" | "warning" | "error";

export interface Summary {
  text: string;
  level: Level;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function oneLine(text: string, max = 80): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function duration(ms: unknown): string {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    return "";
  }
  return ms < 1000 ? ` in ${Math.round(ms)} ms` : ` in ${(ms / 1000).toFixed(1)} s`;
}

/** A RunResult (`codeexec.run`'s answer) in one line. */
export function summarizeRun(result: unknown): Summary {
  if (!isObject(result) || typeof result.status !== "string") {
    return { text: "codeexec: the server's answer was not a run result", level: "warning" };
  }
  const took = duration(result.duration_ms);
  const message = typeof result.message === "string" && result.message ? `: ${oneLine(result.message)}` : "";
  switch (result.status) {
    case "ok": {
      const value = typeof result.value === "string" && result.value ? ` → ${oneLine(result.value, 60)}` : "";
      return { text: `$(check) ran${took}${value}`, level: "info" };
    }
    case "error": {
      const error = isObject(result.error) ? result.error : {};
      const type = typeof error.type === "string" ? error.type : "Error";
      const text = typeof error.message === "string" && error.message ? `${type}: ${oneLine(error.message, 60)}` : type;
      const where = typeof error.line === "number" ? ` (line ${error.line})` : "";
      return { text: `$(error) ${text}${where}`, level: "error" };
    }
    case "timeout":
      return { text: `$(watch) timed out${took}${message}`, level: "warning" };
    case "limit":
      return { text: `$(warning) stopped by a limit${message}`, level: "warning" };
    case "cancelled":
      return { text: "$(circle-slash) cancelled", level: "info" };
    default:
      return { text: `$(error) the run failed${message}`, level: "error" };
  }
}

/** `codeexec.fix`'s answer in one line. */
export function summarizeFix(result: unknown): Summary {
  if (!isObject(result)) {
    return { text: "codeexec: the server's answer was not a fix result", level: "warning" };
  }
  const message = typeof result.message === "string" ? oneLine(result.message) : "";
  if (result.applied === true) {
    return {
      text: result.verified === true ? `$(check) fix applied and verified` : `$(warning) fix applied, not verified`,
      level: result.verified === true ? "info" : "warning",
    };
  }
  return { text: `$(info) no fix applied${message ? `: ${message}` : ""}`, level: "warning" };
}
