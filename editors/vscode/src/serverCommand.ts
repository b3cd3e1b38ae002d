/**
 * Which command starts the language server.
 *
 * Pure apart from an injected file check: no `vscode` import, so `npm test` covers it.
 *
 * Order:
 * 1. the `codeexec.server.command` setting (a list: program, then arguments), with
 *    `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~` expanded;
 * 2. `codeexec-lsp` found on `PATH`;
 * 3. `<interpreter> -m codeexec_lsp` with the interpreter selected in the Python
 *    extension (`ms-python.python`), when that extension is installed;
 * 4. `python3 -m codeexec_lsp` (`python` on Windows).
 */

import * as fs from "node:fs";
import * as path from "node:path";

export const SERVER_SCRIPT = "codeexec-lsp";
export const SERVER_MODULE = "codeexec_lsp";

export type CommandKind = "setting" | "path" | "python-extension" | "fallback";

export interface ServerCommand {
  command: string;
  args: string[];
  /** Which rule chose it (see the order above). */
  kind: CommandKind;
  /** Where the command came from, for the log and the status bar tooltip. */
  source: string;
  /** Set when the setting was unusable and the automatic choice was taken instead. */
  warning?: string;
}

export interface ResolveOptions {
  /** The raw value of `codeexec.server.command`. */
  configured: unknown;
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  /** The first workspace folder's path, for `${workspaceFolder}`. */
  workspaceFolder?: string;
  /** The interpreter the Python extension has selected, if any. */
  pythonFromExtension?: string;
  /** Whether `file` is an executable regular file (injected for tests). */
  isExecutable?: (file: string) => boolean;
}

export function isExecutableFile(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === "win32") {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pathKey(env: Record<string, string | undefined>): string | undefined {
  // Windows environments spell it Path; POSIX ones PATH.
  return Object.keys(env).find((key) => key.toUpperCase() === "PATH");
}

/** The first `name` on `PATH` that is an executable file, like `which`. */
export function findOnPath(
  name: string,
  env: Record<string, string | undefined>,
  platform: NodeJS.Platform,
  isExecutable: (file: string) => boolean = isExecutableFile,
): string | undefined {
  const key = pathKey(env);
  const searchPath = key ? env[key] ?? "" : "";
  const windows = platform === "win32";
  const separator = windows ? ";" : ":";
  const join = windows ? path.win32.join : path.posix.join;
  const extensions = windows
    ? ["", ...(env.PATHEXT ?? ".COM;.EXE;.BAT;.CMD").split(";").filter(Boolean).map((ext) => ext.toLowerCase())]
    : [""];
  for (const dir of searchPath.split(separator)) {
    if (!dir) {
      continue; // an empty entry would mean the current directory: never trust that
    }
    for (const ext of extensions) {
      const candidate = join(dir, name + ext);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/** Expand `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~`. */
export function expandVariables(
  arg: string,
  options: { workspaceFolder?: string; home?: string; env?: Record<string, string | undefined> },
): string {
  let out = arg;
  if (options.home && (out === "~" || out.startsWith("~/") || out.startsWith("~\\"))) {
    out = options.home + out.slice(1);
  }
  out = out.replace(/\$\{(workspaceFolder|userHome|env:([A-Za-z_][A-Za-z0-9_]*))\}/g, (whole, name: string, envName?: string) => {
    if (name === "workspaceFolder") {
      return options.workspaceFolder ?? whole;
    }
    if (name === "userHome") {
      return options.home ?? whole;
    }
    return options.env?.[envName ?? ""] ?? "";
  });
  return out;
}

/** The setting as a list of strings, or why it cannot be used. */
export function parseConfiguredCommand(configured: unknown): { argv?: string[]; problem?: string } {
  if (configured === undefined || configured === null || configured === "") {
    return {};
  }
  if (typeof configured === "string") {
    // Settings UI users sometimes type one string: take it as the program alone.
    return { argv: [configured.trim()] };
  }
  if (!Array.isArray(configured)) {
    return { problem: "codeexec.server.command must be a list of strings, e.g. [\"codeexec-lsp\"]" };
  }
  if (configured.length === 0) {
    return {};
  }
  if (!configured.every((item) => typeof item === "string")) {
    return { problem: "codeexec.server.command must contain only strings" };
  }
  if (!(configured[0] as string).trim()) {
    return { problem: "codeexec.server.command starts with an empty program name" };
  }
  return { argv: configured as string[] };
}

export function resolveServerCommand(options: ResolveOptions): ServerCommand {
  const isExecutable = options.isExecutable ?? isExecutableFile;
  const home = options.env.HOME ?? options.env.USERPROFILE;
  const { argv, problem } = parseConfiguredCommand(options.configured);
  if (argv) {
    const expanded = argv.map((arg) =>
      expandVariables(arg, { workspaceFolder: options.workspaceFolder, home, env: options.env }),
    );
    return { command: expanded[0], args: expanded.slice(1), kind: "setting", source: "setting codeexec.server.command" };
  }
  const automatic = automaticCommand(options, isExecutable);
  return problem ? { ...automatic, warning: `${problem}; using ${automatic.source} instead.` } : automatic;
}

function automaticCommand(options: ResolveOptions, isExecutable: (file: string) => boolean): ServerCommand {
  const onPath = findOnPath(SERVER_SCRIPT, options.env, options.platform, isExecutable);
  if (onPath) {
    return { command: onPath, args: [], kind: "path", source: `${SERVER_SCRIPT} on PATH` };
  }
  if (options.pythonFromExtension) {
    return {
      command: options.pythonFromExtension,
      args: ["-m", SERVER_MODULE],
      kind: "python-extension",
      source: "the interpreter selected in the Python extension",
    };
  }
  const python = options.platform === "win32" ? "python" : "python3";
  return { command: python, args: ["-m", SERVER_MODULE], kind: "fallback", source: `${python} on PATH` };
}

/** A shell-like rendering of the command, for the log and messages. */
export function describeCommand(command: Pick<ServerCommand, "command" | "args">): string {
  return [command.command, ...command.args].map((part) => (/[\s"'$]/.test(part) ? JSON.stringify(part) : part)).join(" ");
}

/** Where the server's source lives (package.json `repository.url`; a test keeps them equal). */
export const REPOSITORY_URL = "https://github.com/codeexec-lsp/codeexec-lsp.git";

/**
 * What to tell the user when the server cannot be started, exits during start-up or keeps
 * exiting: the command tried, why (the last line of its error output), how to install it
 * (from a clone or the git URL: the package is on no index) and the setting to set.
 *
 * The setting is named whatever the cause: in code-server and VS Code's remote hosts the
 * extension host has the login shell's PATH, not the one VS Code was started from, so a
 * server installed in a virtualenv is found only through `codeexec.server.command`.
 */
export function startFailureMessage(command: ServerCommand, detail?: string): string {
  const install = `pipx install /path/to/codeexec-lsp (a clone) or pipx install git+${REPOSITORY_URL}`;
  const example = '["/path/to/.venv/bin/codeexec-lsp"]';
  const how =
    command.kind === "setting"
      ? `Check the codeexec.server.command setting: it must start the server, e.g. ${example}. To install the server: ${install}.`
      : `Install the server: ${install}; or set codeexec.server.command to its full path, e.g. ${example} ` +
        "(the extension host searches the PATH of your login shell, which in code-server and remote windows " +
        "is not the PATH VS Code was started with).";
  const lastLine = detail?.trim().split("\n").filter(Boolean).slice(-1)[0];
  const why = lastLine ? ` (${lastLine.trim()})` : "";
  return `codeexec: the language server did not start: ${describeCommand(command)}${why}. ${how}`;
}
