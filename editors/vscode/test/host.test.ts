/**
 * The built extension (dist/extension.js, vscode-languageclient bundled in) activated in a
 * fake VS Code (test/fakeVscode.ts) against the real server: the server starts, the
 * status bar follows it, the commands send the right arguments and their results are
 * summarized, light-bulb commands count as activity, settings changes reach the server
 * mapped, and the server restarts. Skipped, like server.test.ts, without a server.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { EXTENSION_ROOT, contributedDefaults, findServer } from "./helpers";
import { FakeDocument, Position, Selection, Uri, createFakeVscode, installFakeVscode } from "./fakeVscode";

const found = findServer();
const bundle = path.join(EXTENSION_ROOT, "dist", "extension.js");
const skip =
  typeof found === "string" && !process.env.CODEEXEC_REQUIRE_SERVER
    ? found
    : !fs.existsSync(bundle)
      ? "dist/extension.js is not built (npm run compile)"
      : false;

const DEMO = ["total = 6 * 7", "print(total)", "ratio = total / 0", ""].join("\n");
const SLOW = ["import time", "time.sleep(30)", ""].join("\n");

interface Extension {
  activate(context: { subscriptions: { dispose(): unknown }[] }): Promise<void>;
  deactivate(): Promise<void>;
}

describe("the bundled extension in a fake VS Code", () => {
  let workspace: string;
  let fake: ReturnType<typeof createFakeVscode>;
  let restore: () => void;
  let extension: Extension;
  const context = { subscriptions: [] as { dispose(): unknown }[] };
  let document: FakeDocument;

  const settle = async (predicate: () => boolean, ms = 15000) => {
    const end = Date.now() + ms;
    while (!predicate() && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return predicate();
  };
  const lastStatus = () => fake.recorded.statusTexts[fake.recorded.statusTexts.length - 1];
  const warnings = () => fake.recorded.messages.filter((m) => m.level === "warning").map((m) => m.text);
  const select = (anchor: [number, number], active: [number, number], index = 0) => {
    const doc = fake.textDocuments[index];
    fake.vscode.window.activeTextEditor = {
      document: doc,
      selection: new Selection(new Position(...anchor), new Position(...active)),
    };
  };

  before(async () => {
    if (skip) {
      return;
    }
    if (typeof found === "string") {
      throw new Error(found);
    }
    workspace = fs.mkdtempSync(path.join(os.tmpdir(), "codeexec-host-"));
    fs.writeFileSync(path.join(workspace, "demo.py"), DEMO);
    fs.writeFileSync(path.join(workspace, "slow.py"), SLOW);
    document = { uri: Uri.file(path.join(workspace, "demo.py")), languageId: "python", version: 1, text: DEMO };
    const settings: Record<string, unknown> = {
      ...contributedDefaults(),
      // The setting path of the server command resolution, with a variable in it.
      "codeexec.server.command": [found.command, ...found.args],
    };
    const slow = { uri: Uri.file(path.join(workspace, "slow.py")), languageId: "python", version: 1, text: SLOW };
    fake = createFakeVscode({ workspaceFolder: workspace, settings, documents: [document, slow] });
    restore = installFakeVscode(fake.vscode);
    delete process.env.OPENAI_API_KEY;
    extension = require(bundle) as Extension;
    await extension.activate(context);
  });

  after(async () => {
    await extension?.deactivate();
    for (const disposable of context.subscriptions) {
      disposable.dispose();
    }
    restore?.();
    if (workspace) {
      fs.rmSync(workspace, { recursive: true, force: true });
    }
    if (fake?.recorded.missing.size) {
      console.log(`# fake vscode members used but not modelled: ${[...fake.recorded.missing].sort().join(", ")}`);
    }
  });

  it("starts the server from codeexec.server.command and shows the executor", { skip }, async () => {
    assert.ok(await settle(() => lastStatus() === "$(play) codeexec: session"), `status: ${fake.recorded.statusTexts}`);
    const log = fake.recorded.output.join("");
    assert.match(log, /starting the server: .* \(setting codeexec\.server\.command\)/);
    assert.match(log, /server running/);
    assert.deepEqual(fake.recorded.messages.filter((m) => m.level !== "info"), [], "no warnings or errors at start");
  });

  it("registers its commands next to the server's (which the language client registers)", { skip }, () => {
    for (const id of ["codeexec.runSelection", "codeexec.runFile", "codeexec.explainSelection", "codeexec.fixSelection", "codeexec.restartSession", "codeexec.cancel"]) {
      assert.ok(fake.recorded.commands.has(id), id);
    }
    for (const id of ["codeexec.run", "codeexec.explain", "codeexec.fix", "codeexec.restart"]) {
      assert.ok(fake.recorded.commands.has(id), `server command ${id} not registered by the client`);
    }
  });

  it("Run Selection runs the selected lines, spins the status bar and summarizes the result", { skip }, async () => {
    const spinsBefore = fake.recorded.statusTexts.filter((t) => t.includes("sync~spin")).length;
    select([0, 0], [2, 0]); // lines 1-2, selected line-wise
    await fake.vscode.commands.executeCommand("codeexec.runSelection");
    assert.match(fake.recorded.statusBarMessages.at(-1) ?? "", /^codeexec: \$\(check\) ran in \d+ ms$/);
    assert.ok(fake.recorded.statusTexts.filter((t) => t.includes("sync~spin")).length > spinsBefore, "never spun");
    assert.ok(await settle(() => lastStatus() === "$(play) codeexec: session"));
    assert.match(fake.recorded.output.join(""), /\[run\] demo\.py: ran in/);
    // A run this quick gets no $/progress from the server (it creates progress only for
    // runs still going after ~150 ms); the Cancel Running test below sees the server's
    // progress title reach the extension's own progress feature on a slow run.
  });

  it("Run File runs the buffer and reports the exception with its line", { skip }, async () => {
    select([1, 3], [1, 3]);
    await fake.vscode.commands.executeCommand("codeexec.runFile");
    assert.equal(fake.recorded.statusBarMessages.at(-1), "codeexec: $(error) ZeroDivisionError: division by zero (line 3)");
    assert.ok(await settle(() => fake.vscode.languages.getDiagnostics(document.uri).length > 0), "no diagnostic published");
    const diagnostic = fake.vscode.languages.getDiagnostics(document.uri)[0];
    assert.equal(diagnostic.source, "codeexec");
    assert.equal(diagnostic.range.start.line, 2);
  });

  it("counts a light-bulb command (the server's codeexec.run) as activity", { skip }, async () => {
    const spinsBefore = fake.recorded.statusTexts.filter((t) => t.includes("sync~spin")).length;
    const range = { start: { line: 0, character: 0 }, end: { line: 1, character: 0 } };
    const result = (await fake.vscode.commands.executeCommand("codeexec.run", document.uri.toString(), range)) as { status: string };
    assert.equal(result.status, "ok");
    assert.ok(fake.recorded.statusTexts.filter((t) => t.includes("sync~spin")).length > spinsBefore);
  });

  it("Cancel Running stops a run through the server's cancellable progress", { skip }, async () => {
    select([0, 0], [2, 0], 1);
    const started = Date.now();
    const running = fake.vscode.commands.executeCommand("codeexec.runSelection");
    assert.ok(await settle(() => fake.recorded.statusTooltips.at(-1)?.includes("Running lines 1–2") ?? false), "the run never showed up");
    await fake.vscode.commands.executeCommand("codeexec.cancel");
    await running;
    assert.equal(fake.recorded.statusBarMessages.at(-1), "codeexec: $(circle-slash) cancelled");
    assert.ok(Date.now() - started < 15000, "the run was not cut short");
  });

  it("forwards a settings change mapped: a bad value draws the server's warning, null does not", { skip }, async () => {
    fake.settings["codeexec.timeout"] = 0;
    fake.settings["codeexec.executor"] = "local";
    fake.fireConfigurationChange(["codeexec.timeout", "codeexec.executor"]);
    assert.ok(
      // Every server message carries the one "codeexec: " prefix (the server's notifier).
      await settle(() => warnings().some((w) => w.startsWith("codeexec: codeexec.timeout: expected a positive number"))),
      `warnings: ${warnings()}`,
    );
    assert.ok(!warnings().some((w) => w.includes("cpuSeconds")), `warnings: ${warnings()}`);
    assert.equal(lastStatus(), "$(play) codeexec: local");
    fake.settings["codeexec.timeout"] = 30;
    fake.fireConfigurationChange(["codeexec.timeout"]);
  });

  it("restarts the server", { skip }, async () => {
    const before = fake.recorded.output.join("").split("server running").length;
    await fake.vscode.commands.executeCommand("codeexec.restartServer");
    assert.ok(await settle(() => fake.recorded.output.join("").split("server running").length > before));
    assert.ok(await settle(() => lastStatus() === "$(play) codeexec: local"), `status: ${lastStatus()}`);
    select([0, 0], [0, 13]);
    await fake.vscode.commands.executeCommand("codeexec.runSelection");
    assert.match(fake.recorded.statusBarMessages.at(-1) ?? "", /ran in/);
  });
});
