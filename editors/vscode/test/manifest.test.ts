/**
 * package.json against the server and the extension's code: every server setting is
 * contributed (with a type, default and description), every command is registered,
 * nothing collides with the commands vscode-languageclient registers for the server,
 * and the keybindings avoid the ones VS Code, Python and Jupyter already use.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { CLIENT_ONLY_KEYS } from "../src/settings";
import { EXTENSION_ROOT, ConfigurationProperty, manifest, readRepoFile } from "./helpers";

/** Settings the server is getting right now (another change adds them to config.py). */
const PENDING_SERVER_KEYS = new Set<string>([]);

/** The settings keys in codeexec_lsp/config.py's _KEYS table, as clients send them. */
function serverKeys(): string[] | undefined {
  const source = readRepoFile("codeexec_lsp/config.py");
  if (!source) {
    return undefined;
  }
  const table = source.slice(source.indexOf("_KEYS"), source.indexOf("\n)\n", source.indexOf("_KEYS")));
  return [...table.matchAll(/^\s*\("([A-Za-z.]+)",\s*"[a-z_.]+",/gm)].map((match) => match[1]);
}

/** The command names codeexec_lsp/server.py registers (codeexec.run, ...). */
function serverCommands(): string[] | undefined {
  const source = readRepoFile("codeexec_lsp/server.py");
  if (!source) {
    return undefined;
  }
  // The ids are named in server.py or in actions/code_actions.py, which offers them.
  const named = source + (readRepoFile("codeexec_lsp/actions/code_actions.py") ?? "");
  const names = new Map([...named.matchAll(/^([A-Z_]+) = "(codeexec\.[A-Za-z.]+)"/gm)].map((m) => [m[1], m[2]]));
  return [...source.matchAll(/@server\.command\(([A-Z_]+)\)/g)].map((m) => names.get(m[1]) ?? m[1]);
}

const properties = manifest().contributes.configuration.properties;
const serverProperties = Object.keys(properties)
  .map((key) => key.slice("codeexec.".length))
  .filter((key) => !CLIENT_ONLY_KEYS.includes(key.split(".")[0]));

function typeMatches(type: ConfigurationProperty["type"], value: unknown): boolean {
  const types = Array.isArray(type) ? type : [type];
  return types.some((t) => {
    switch (t) {
      case "null":
        return value === null;
      case "array":
        return Array.isArray(value);
      case "integer":
        return Number.isInteger(value);
      case "object":
        return typeof value === "object" && value !== null && !Array.isArray(value);
      default:
        return typeof value === t;
    }
  });
}

describe("contributed settings", () => {
  it("every server setting is contributed, and every contributed one is the server's", (t) => {
    const keys = serverKeys();
    if (!keys) {
      t.skip("codeexec_lsp/config.py not found next to the extension");
      return;
    }
    assert.ok(keys.length >= 19, `found only ${keys.length} keys in config.py`);
    const missing = keys.filter((key) => !(`codeexec.${key}` in properties));
    assert.deepEqual(missing, [], "server settings without a contribution in package.json");
    const unknown = serverProperties.filter((key) => !keys.includes(key) && !PENDING_SERVER_KEYS.has(key));
    assert.deepEqual(unknown, [], "contributed settings the server does not read");
  });

  it("each has a type, a default of that type, a description, and enums include the default", () => {
    for (const [key, property] of Object.entries(properties)) {
      assert.ok(key.startsWith("codeexec."), key);
      assert.ok(property.type, `${key}: no type`);
      assert.ok("default" in property, `${key}: no default`);
      assert.ok(typeMatches(property.type, property.default), `${key}: default ${JSON.stringify(property.default)} is not ${property.type}`);
      assert.ok((property.description ?? property.markdownDescription ?? "").length > 20, `${key}: no description`);
      if (property.enum) {
        assert.ok(property.enum.includes(property.default), `${key}: default not in enum`);
      }
      if (property.type === "array") {
        assert.equal(property.items?.type, "string", `${key}: array items must be strings`);
      }
    }
  });

  it("has the extension's own settings", () => {
    assert.deepEqual(properties["codeexec.server.command"].default, []);
    assert.deepEqual(properties["codeexec.trace.server"].enum, ["off", "messages", "verbose"]);
    assert.equal(properties["codeexec.network"].default, null); // null: the sandbox profile decides
    assert.deepEqual(properties["codeexec.sandbox"].enum, ["standard", "strict"]);
    assert.deepEqual(properties["codeexec.explanation.openIn"].enum, ["beside", "active", "preview"]);
    assert.deepEqual(properties["codeexec.executor"].enum, ["local", "session", "http", "jupyter"]);
    assert.deepEqual(properties["codeexec.llm.provider"].enum, ["openai", "anthropic"]);
  });
});

describe("commands, menus and keybindings", () => {
  const contributes = manifest().contributes;
  const commandIds = contributes.commands.map((command) => command.command);
  const extensionSource = fs.readFileSync(path.join(EXTENSION_ROOT, "src", "extension.ts"), "utf8");
  const registered = [...extensionSource.matchAll(/registerCommand\("([^"]+)"/g)].map((m) => m[1]);

  it("registers exactly the contributed commands", () => {
    assert.deepEqual([...registered].sort(), [...commandIds].sort());
  });

  it("does not reuse the server's command ids (the language client registers those)", (t) => {
    const server = serverCommands();
    if (!server) {
      t.skip("codeexec_lsp/server.py not found next to the extension");
      return;
    }
    assert.ok(server.includes("codeexec.run") && server.includes("codeexec.fix"), `server commands: ${server}`);
    assert.deepEqual(commandIds.filter((id) => server.includes(id)), []);
  });

  it("puts Run/Explain/Fix/Restart in the palette and the editor context menu for Python", () => {
    const wanted = ["codeexec.runSelection", "codeexec.runFile", "codeexec.explainSelection", "codeexec.fixSelection", "codeexec.restartSession"];
    const submenu = contributes.submenus[0].id;
    const context = contributes.menus["editor/context"].find((entry) => entry.submenu === submenu);
    assert.ok(context?.when?.includes("editorLangId == python"));
    assert.deepEqual(contributes.menus[submenu].map((entry) => entry.command), wanted);
    for (const id of wanted.slice(0, 4)) {
      const palette = contributes.menus.commandPalette.find((entry) => entry.command === id);
      assert.equal(palette?.when, "editorLangId == python", id);
    }
    for (const menu of Object.values(contributes.menus)) {
      for (const entry of menu) {
        if (entry.command) {
          assert.ok(commandIds.includes(entry.command), `menu entry for unknown command ${entry.command}`);
        }
      }
    }
  });

  // Keys taken in a Python editor by VS Code's defaults (1.89 macOS, 1.99 Linux), the
  // Python extension (shift+enter: run in terminal) and Jupyter (cells: shift/ctrl/alt+enter,
  // ctrl+; chords, ctrl+alt+[ ] \ and their shift variants).
  const TAKEN = new Set([
    "shift+enter", "ctrl+enter", "alt+enter", "cmd+enter", "ctrl+shift+enter", "ctrl+alt+enter", "cmd+alt+enter",
    "ctrl+alt+[", "ctrl+alt+]", "ctrl+alt+\\", "ctrl+alt+shift+[", "ctrl+alt+shift+]", "ctrl+alt+shift+\\",
    "cmd+alt+r", "cmd+alt+c", "cmd+alt+f", "cmd+alt+l", "cmd+alt+w", "cmd+alt+p", "cmd+alt+[", "cmd+alt+]",
    "alt+r", "alt+c", "alt+w", "alt+l", "alt+p", "shift+alt+f", "ctrl+shift+r", "ctrl+r", "ctrl+shift+f",
    "ctrl+alt+left", "ctrl+alt+right", "ctrl+alt+up", "ctrl+alt+down", "ctrl+alt+-", "ctrl+alt+i", "ctrl+alt+b",
    "ctrl+alt+o", "ctrl+alt+v", "ctrl+alt+n", "ctrl+alt+p", "ctrl+alt+j", "ctrl+alt+space", "ctrl+alt+g",
  ]);
  const normalize = (key: string) => key.toLowerCase().split("+").sort().join("+");
  const taken = new Set([...TAKEN].map(normalize));

  it("binds keys only in Python editors, and none already taken there", () => {
    assert.ok(contributes.keybindings.length >= 4);
    for (const binding of contributes.keybindings) {
      assert.ok(commandIds.includes(binding.command), binding.command);
      assert.match(binding.when ?? "", /editorTextFocus/);
      assert.match(binding.when ?? "", /editorLangId == python/);
      for (const key of [binding.key, binding.mac].filter(Boolean) as string[]) {
        assert.ok(!taken.has(normalize(key)), `${binding.command}: ${key} is already taken`);
        assert.ok(!key.includes(" "), `${binding.command}: no chords (${key})`);
      }
    }
    const run = contributes.keybindings.find((binding) => binding.command === "codeexec.runSelection");
    assert.equal(run?.key, "ctrl+alt+r");
  });
});

describe("package.json", () => {
  const pkg = manifest();

  it("is a publishable extension", () => {
    assert.equal(pkg.engines.vscode, "^1.85.0");
    assert.equal(pkg.license, "MIT");
    assert.equal(pkg.main, "./dist/extension.js");
    assert.ok(pkg.repository?.url);
    assert.deepEqual(pkg.activationEvents, ["onLanguage:python"]);
    assert.equal(pkg.capabilities?.untrustedWorkspaces?.supported, false);
    assert.match(pkg.dependencies["vscode-languageclient"], /^\^9\./);
    assert.match(pkg.devDependencies["@types/vscode"], /1\.85\./, "@types/vscode must not be newer than engines.vscode");
    assert.ok(pkg.devDependencies["@vscode/vsce"], "vsce must be a devDependency so packaging works offline");
    for (const file of ["LICENSE", "README.md", ".vscodeignore", "package-lock.json", "ci.sh"]) {
      assert.ok(fs.existsSync(path.join(EXTENSION_ROOT, file)), `${file} is missing`);
    }
  });
});
