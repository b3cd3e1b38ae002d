import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import { resolveServerCommand } from "../src/serverCommand";

/** editors/vscode, whether the tests run from test/ (ts-node) or out/test/ (compiled). */
export const EXTENSION_ROOT = (() => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error("package.json not found above " + __dirname);
    }
    dir = parent;
  }
  return dir;
})();

/** The repository root (two levels above editors/vscode). */
export const REPO_ROOT = path.resolve(EXTENSION_ROOT, "..", "..");

export interface ConfigurationProperty {
  type?: string | string[];
  default?: unknown;
  enum?: unknown[];
  description?: string;
  markdownDescription?: string;
  items?: { type?: string };
  scope?: string;
}

export interface Manifest {
  name: string;
  publisher: string;
  version: string;
  license: string;
  main: string;
  engines: { vscode: string };
  repository?: { type: string; url: string };
  activationEvents: string[];
  capabilities?: { untrustedWorkspaces?: { supported: boolean | string } };
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  contributes: {
    commands: { command: string; title: string; category?: string }[];
    menus: Record<string, { command?: string; submenu?: string; when?: string; group?: string }[]>;
    submenus: { id: string; label: string }[];
    keybindings: { command: string; key: string; mac?: string; when?: string }[];
    configuration: { title: string; properties: Record<string, ConfigurationProperty> };
  };
}

export function manifest(): Manifest {
  return JSON.parse(fs.readFileSync(path.join(EXTENSION_ROOT, "package.json"), "utf8")) as Manifest;
}

/** Every contributed setting with its default, keyed `codeexec.x.y`. */
export function contributedDefaults(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(manifest().contributes.configuration.properties)) {
    out[key] = property.default;
  }
  return out;
}

export function readRepoFile(relative: string): string | undefined {
  const file = path.join(REPO_ROOT, relative);
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
}

export interface Found {
  command: string;
  args: string[];
  /** The interpreter that has codeexec_lsp installed. */
  python: string;
}

function interpreterOf(command: string, args: string[]): string | undefined {
  if (args[0] === "-m") {
    return command;
  }
  try {
    const first = fs.readFileSync(command, "utf8").split("\n", 1)[0];
    return first.startsWith("#!") ? first.slice(2).trim().split(/\s+/)[0] : undefined;
  } catch {
    return undefined;
  }
}

export function findServer(): Found | string {
  let command: string;
  let args: string[];
  if (process.env.CODEEXEC_LSP_COMMAND) {
    const argv = JSON.parse(process.env.CODEEXEC_LSP_COMMAND) as string[];
    [command, args] = [argv[0], argv.slice(1)];
  } else {
    ({ command, args } = resolveServerCommand({ configured: undefined, platform: process.platform, env: process.env }));
  }
  const python = interpreterOf(command, args);
  if (!python) {
    return `cannot tell which Python runs ${command}`;
  }
  const check = spawnSync(python, ["-c", "import codeexec_lsp"], { encoding: "utf8" });
  if (check.status !== 0) {
    return `no codeexec-lsp server here (${command} ${args.join(" ")}: ${(check.stderr || String(check.error)).trim().split("\n").pop()})`;
  }
  return { command, args, python };
}

