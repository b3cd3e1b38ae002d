/**
 * From what the user has selected to the arguments of the server's commands.
 *
 * Pure: works on LSP-shaped positions and ranges (0-based line, UTF-16 character, end
 * exclusive), which is what the language client's `code2ProtocolConverter.asRange`
 * makes of a VS Code `Selection`. No `vscode` import, so `npm test` covers it.
 */

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/** A diagnostic as far as the server's `codeexec.fix` reads it. */
export interface DiagnosticArgument {
  range: Range;
  message: string;
  source?: string;
  code?: string | number;
}

export interface DiagnosticLike {
  range: Range;
  message: string;
  source?: string;
  /** VS Code's `Diagnostic.code` may be an object `{ value, target }`. */
  code?: string | number | { value: string | number } | null;
  /** LSP severity: 1 error, 2 warning, 3 information, 4 hint. */
  severity?: number;
}

export const DIAGNOSTIC_SOURCE = "codeexec";

export type Action = "runSelection" | "runFile" | "explainSelection" | "fixSelection" | "restartSession";

/** The server command each of the extension's commands executes. */
export const SERVER_COMMANDS: Record<Action, string> = {
  runSelection: "codeexec.run",
  runFile: "codeexec.run",
  explainSelection: "codeexec.explain",
  fixSelection: "codeexec.fix",
  restartSession: "codeexec.restart",
};

export function comparePositions(a: Position, b: Position): number {
  return a.line !== b.line ? a.line - b.line : a.character - b.character;
}

/** The range with start before end, whichever way the user dragged. */
export function normalizeRange(range: Range): Range {
  return comparePositions(range.start, range.end) <= 0 ? range : { start: range.end, end: range.start };
}

export function isEmptyRange(range: Range): boolean {
  return comparePositions(range.start, range.end) === 0;
}

function checkPosition(position: Position): Position {
  const ok = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0;
  if (!ok(position.line) || !ok(position.character)) {
    throw new RangeError(`not an LSP position: ${JSON.stringify(position)}`);
  }
  return { line: position.line, character: position.character };
}

/** A plain, normalized copy: what goes over the wire. */
export function toWireRange(range: Range): Range {
  const normalized = normalizeRange(range);
  return { start: checkPosition(normalized.start), end: checkPosition(normalized.end) };
}

/**
 * Whether a diagnostic belongs to what the user pointed at: it overlaps the selection,
 * or, for an empty selection (a cursor), it is on the cursor's line.
 */
export function touches(diagnostic: Range, target: Range): boolean {
  const d = normalizeRange(diagnostic);
  const t = normalizeRange(target);
  let lastLine = t.end.line;
  if (t.end.character === 0 && t.end.line > t.start.line) {
    lastLine -= 1; // a line-wise selection ends at column 0 of the next line
  }
  // The server runs and fixes whole lines, so lines are the unit here.
  return d.start.line <= lastLine && t.start.line <= d.end.line;
}

function codeValue(code: DiagnosticLike["code"]): string | number | undefined {
  if (code === null || code === undefined) {
    return undefined;
  }
  if (typeof code === "object") {
    return code.value;
  }
  return code;
}

/**
 * The diagnostic Fix with LLM should fix: one of this server's (`source: "codeexec"`)
 * that touches the target, errors before warnings, the first by position.
 */
export function pickDiagnostic(diagnostics: readonly DiagnosticLike[], target: Range): DiagnosticArgument | undefined {
  const candidates = diagnostics
    .filter((d) => d.source === DIAGNOSTIC_SOURCE && touches(d.range, target))
    .sort((a, b) => (a.severity ?? 1) - (b.severity ?? 1) || comparePositions(a.range.start, b.range.start));
  const chosen = candidates[0];
  if (!chosen) {
    return undefined;
  }
  const argument: DiagnosticArgument = { range: toWireRange(chosen.range), message: chosen.message, source: chosen.source };
  const code = codeValue(chosen.code);
  if (code !== undefined) {
    argument.code = code;
  }
  return argument;
}

/**
 * The arguments of the server command for an action: `codeexec.run [uri]` for the whole
 * file, `codeexec.run [uri, range]` (an empty range: the cell or statement at the
 * cursor), `codeexec.explain [uri, range]`, `codeexec.fix [uri, range, diagnostic?]`,
 * `codeexec.restart []`.
 */
export function commandArguments(
  action: Action,
  uri: string,
  selection: Range,
  diagnostic?: DiagnosticArgument,
): unknown[] {
  switch (action) {
    case "runFile":
      return [uri];
    case "runSelection":
    case "explainSelection":
      return [uri, toWireRange(selection)];
    case "fixSelection":
      return diagnostic ? [uri, toWireRange(selection), diagnostic] : [uri, toWireRange(selection)];
    case "restartSession":
      return [];
  }
}
