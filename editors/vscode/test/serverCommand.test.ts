import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import {
  describeCommand,
  expandVariables,
  findOnPath,
  isExecutableFile,
  parseConfiguredCommand,
  resolveServerCommand,
  startFailureMessage,
} from "../src/serverCommand";

const linuxEnv = { PATH: "/usr/local/bin:/usr/bin", HOME: "/home/me" };
const only = (...files: string[]) => (file: string) => files.includes(file);

describe("resolveServerCommand", () => {
  it("uses the setting first, expanding variables", () => {
    const command = resolveServerCommand({
      configured: ["${workspaceFolder}/.venv/bin/codeexec-lsp", "--log", "~/lsp.log"],
      platform: "linux",
      env: linuxEnv,
      workspaceFolder: "/work/proj",
      pythonFromExtension: "/py/bin/python",
      isExecutable: only("/usr/bin/codeexec-lsp"),
    });
    assert.deepEqual(command, {
      command: "/work/proj/.venv/bin/codeexec-lsp",
      args: ["--log", "/home/me/lsp.log"],
      kind: "setting",
      source: "setting codeexec.server.command",
    });
  });

  it("then codeexec-lsp on PATH, in PATH order", () => {
    const command = resolveServerCommand({
      configured: [],
      platform: "linux",
      env: linuxEnv,
      pythonFromExtension: "/py/bin/python",
      isExecutable: only("/usr/bin/codeexec-lsp", "/usr/local/bin/codeexec-lsp"),
    });
    assert.deepEqual(command, { command: "/usr/local/bin/codeexec-lsp", args: [], kind: "path", source: "codeexec-lsp on PATH" });
  });

  it("then python -m codeexec_lsp with the Python extension's interpreter", () => {
    const command = resolveServerCommand({
      configured: [],
      platform: "linux",
      env: linuxEnv,
      pythonFromExtension: "/proj/.venv/bin/python",
      isExecutable: only(),
    });
    assert.deepEqual(command, {
      command: "/proj/.venv/bin/python",
      args: ["-m", "codeexec_lsp"],
      kind: "python-extension",
      source: "the interpreter selected in the Python extension",
    });
  });

  it("then python3 -m codeexec_lsp (python on Windows)", () => {
    const base = { configured: undefined, env: linuxEnv, isExecutable: only() };
    assert.deepEqual(resolveServerCommand({ ...base, platform: "linux" }), {
      command: "python3",
      args: ["-m", "codeexec_lsp"],
      kind: "fallback",
      source: "python3 on PATH",
    });
    assert.equal(resolveServerCommand({ ...base, platform: "win32", env: { Path: "C:\\x" } }).command, "python");
  });

  it("keeps a configured python -m command as it is (the Python extension is not asked)", () => {
    const command = resolveServerCommand({
      configured: ["python3.12", "-m", "codeexec_lsp"],
      platform: "linux",
      env: linuxEnv,
      pythonFromExtension: "/py/bin/python",
      isExecutable: only("/usr/bin/codeexec-lsp"),
    });
    assert.deepEqual([command.command, command.args, command.kind], ["python3.12", ["-m", "codeexec_lsp"], "setting"]);
  });

  it("takes a plain string setting as the program", () => {
    const command = resolveServerCommand({ configured: "/opt/codeexec-lsp", platform: "linux", env: linuxEnv, isExecutable: only() });
    assert.deepEqual([command.command, command.args], ["/opt/codeexec-lsp", []]);
  });

  it("falls back, with a warning, when the setting is unusable", () => {
    for (const configured of [[1, 2], ["", "-m"], { command: "x" }]) {
      const command = resolveServerCommand({
        configured,
        platform: "linux",
        env: linuxEnv,
        isExecutable: only("/usr/bin/codeexec-lsp"),
      });
      assert.equal(command.command, "/usr/bin/codeexec-lsp");
      assert.match(command.warning ?? "", /codeexec\.server\.command .*; using codeexec-lsp on PATH instead\./);
    }
  });
});

describe("findOnPath", () => {
  it("honours PATHEXT and the Path spelling on Windows", () => {
    const found = findOnPath(
      "codeexec-lsp",
      { Path: "C:\\Python\\Scripts;C:\\Windows", PATHEXT: ".COM;.EXE;.BAT" },
      "win32",
      only("C:\\Python\\Scripts\\codeexec-lsp.exe"),
    );
    assert.equal(found, "C:\\Python\\Scripts\\codeexec-lsp.exe");
  });

  it("never searches the current directory through an empty PATH entry", () => {
    const seen: string[] = [];
    findOnPath("codeexec-lsp", { PATH: ":/usr/bin:" }, "linux", (file) => {
      seen.push(file);
      return false;
    });
    assert.deepEqual(seen, ["/usr/bin/codeexec-lsp"]);
  });

  it("finds a real executable and skips a non-executable file and a directory", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "codeexec-path-"));
    try {
      const a = path.join(dir, "a");
      const b = path.join(dir, "b");
      const c = path.join(dir, "c");
      fs.mkdirSync(a);
      fs.mkdirSync(b);
      fs.mkdirSync(c);
      fs.mkdirSync(path.join(a, "codeexec-lsp")); // a directory of that name
      fs.writeFileSync(path.join(b, "codeexec-lsp"), "#!/bin/sh\n", { mode: 0o644 }); // not executable
      fs.writeFileSync(path.join(c, "codeexec-lsp"), "#!/bin/sh\n", { mode: 0o755 });
      const found = findOnPath("codeexec-lsp", { PATH: [a, b, c].join(path.delimiter) }, process.platform);
      if (process.platform === "win32") {
        return; // no executable bit there
      }
      assert.equal(found, path.join(c, "codeexec-lsp"));
      assert.equal(isExecutableFile(path.join(b, "codeexec-lsp")), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("expandVariables", () => {
  it("expands the supported variables and leaves unknown ones alone", () => {
    const options = { workspaceFolder: "/w", home: "/h", env: { VENV: "/v" } };
    assert.equal(expandVariables("${workspaceFolder}/x", options), "/w/x");
    assert.equal(expandVariables("${userHome}/x", options), "/h/x");
    assert.equal(expandVariables("${env:VENV}/bin/python", options), "/v/bin/python");
    assert.equal(expandVariables("${env:MISSING}x", options), "x");
    assert.equal(expandVariables("~/x", options), "/h/x");
    assert.equal(expandVariables("a~/x", options), "a~/x");
    assert.equal(expandVariables("${config:foo}", options), "${config:foo}");
    assert.equal(expandVariables("${workspaceFolder}", { home: "/h" }), "${workspaceFolder}");
  });
});

describe("parseConfiguredCommand", () => {
  it("accepts nothing set as 'automatic'", () => {
    for (const configured of [undefined, null, "", []]) {
      assert.deepEqual(parseConfiguredCommand(configured), {});
    }
  });
});

describe("describeCommand / startFailureMessage", () => {
  it("quotes arguments with spaces", () => {
    assert.equal(
      describeCommand({ command: "/Program Files/py.exe", args: ["-m", "codeexec_lsp"] }),
      '"/Program Files/py.exe" -m codeexec_lsp',
    );
  });

  it("says what failed and what to do", () => {
    const automatic = { command: "python3", args: ["-m", "codeexec_lsp"], kind: "fallback" as const, source: "python3 on PATH" };
    const message = startFailureMessage(automatic, "Traceback...\nModuleNotFoundError: No module named 'codeexec_lsp'\n");
    assert.match(message, /python3 -m codeexec_lsp \(ModuleNotFoundError: No module named 'codeexec_lsp'\)/);
    assert.match(message, /pipx install \/path\/to\/codeexec-lsp \(a clone\) or pipx install git\+https:\/\/github\.com\//);
    assert.match(message, /set codeexec\.server\.command to its full path/);
    assert.doesNotMatch(message, /pip install codeexec-lsp/); // on no package index
    const configured = { command: "/x", args: [], kind: "setting" as const, source: "setting codeexec.server.command" };
    assert.match(startFailureMessage(configured), /Check the codeexec\.server\.command setting: it must start the server/);
    assert.doesNotMatch(startFailureMessage(configured), /\(\)/); // no detail, no empty parentheses
  });
});
