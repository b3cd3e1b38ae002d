/**
 * The built extension (dist/extension.js) in the stand-in VS Code with a server that
 * cannot start: one that exits while answering `initialize` (vscode-languageclient 9's
 * start() resolves then, so only isRunning() tells), a configured program that does not
 * exist, and no server at all on PATH. Each must end in the extension's own message (the
 * command tried, the install line, the setting, and Show Log / Open Settings / Retry),
 * never in "server running". Needs no codeexec-lsp: the stand-in servers are node.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { EXTENSION_ROOT, contributedDefaults, manifest } from "./helpers";
import { FakeDocument, Position, Selection, Uri, createFakeVscode, installFakeVscode } from "./fakeVscode";
import { REPOSITORY_URL } from "../src/serverCommand";

const bundle = path.join(EXTENSION_ROOT, "dist", "extension.js");
const skip = fs.existsSync(bundle) ? false : "dist/extension.js is not built (npm run compile)";

/** A "server" that reads the initialize request, complains on stderr and exits 3. */
const DIES_DURING_INITIALIZE = [
  process.execPath,
  "-e",
  "process.stdin.once('data', () => { process.stderr.write('Traceback (most recent call last):\\nImportError: broken install for the test\\n'); process.exit(3); });",
];

interface Extension {
  activate(context: { subscriptions: { dispose(): unknown }[] }): Promise<void>;
  deactivate(): Promise<void>;
}

describe("a server that cannot start, in a fake VS Code", () => {
  let workspace: string;
  let emptyDir: string;
  let fake: ReturnType<typeof createFakeVscode>;
  let restore: () => void;
  let extension: Extension;
  const context = { subscriptions: [] as { dispose(): unknown }[] };
  let retries = 1; // the first start-failure message is answered with Retry
  const savedPath = process.env.PATH;

  const settle = async (predicate: () => boolean, ms = 15000) => {
    const end = Date.now() + ms;
    while (!predicate() && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return predicate();
  };
  const errors = () => fake.recorded.messages.filter((m) => m.level === "error");
  const log = () => fake.recorded.output.join("");
  const lastStatus = () => fake.recorded.statusTexts[fake.recorded.statusTexts.length - 1];

  before(async () => {
    if (skip) {
      return;
    }
    workspace = fs.mkdtempSync(path.join(os.tmpdir(), "codeexec-nostart-"));
    emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), "codeexec-emptypath-"));
    fs.writeFileSync(path.join(workspace, "demo.py"), "print(1)\n");
    const document: FakeDocument = { uri: Uri.file(path.join(workspace, "demo.py")), languageId: "python", version: 1, text: "print(1)\n" };
    const settings: Record<string, unknown> = { ...contributedDefaults(), "codeexec.server.command": DIES_DURING_INITIALIZE };
    fake = createFakeVscode({
      workspaceFolder: workspace,
      settings,
      documents: [document],
      answer: (level, _text, items) => {
        if (level === "error" && items.includes("Retry") && retries > 0) {
          retries--;
          return "Retry";
        }
        return undefined;
      },
    });
    restore = installFakeVscode(fake.vscode);
    extension = require(bundle) as Extension;
    await extension.activate(context);
  });

  after(async () => {
    process.env.PATH = savedPath;
    await extension?.deactivate();
    for (const disposable of context.subscriptions) {
      disposable.dispose();
    }
    restore?.();
    for (const dir of [workspace, emptyDir]) {
      if (dir) {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it("reports a server that exits during initialize with its own message, and Retry tries again", { skip }, async () => {
    // The first failure is answered with Retry: a second attempt fails the same way.
    assert.ok(await settle(() => errors().length >= 2), `errors: ${JSON.stringify(errors())}\nlog:\n${log()}`);
    for (const message of errors().slice(0, 2)) {
      assert.match(message.text, /^codeexec: the language server did not start: /);
      assert.ok(message.text.includes(process.execPath), message.text); // the command tried
      assert.match(message.text, /\(ImportError: broken install for the test\)/); // its last stderr line
      assert.match(message.text, /codeexec\.server\.command/);
      assert.deepEqual(message.items, ["Show Log", "Open Settings", "Retry"]);
    }
    assert.doesNotMatch(log(), /server running/);
    assert.equal((log().match(/starting the server/g) ?? []).length, 2, log());
    assert.ok(await settle(() => lastStatus() === "$(circle-slash) codeexec"), `status: ${lastStatus()}`);
  });

  it("a command after a failed start tries again and shows only the start-failure message", { skip }, async () => {
    const before = errors().length;
    const doc = fake.textDocuments[0];
    fake.vscode.window.activeTextEditor = { document: doc, selection: new Selection(new Position(0, 0), new Position(0, 8)) };
    await fake.vscode.commands.executeCommand("codeexec.runSelection");
    assert.ok(await settle(() => errors().length === before + 1), `errors: ${JSON.stringify(errors().slice(before))}`);
    await new Promise((resolve) => setTimeout(resolve, 300)); // room for a second message, which must not come
    const added = errors().slice(before);
    assert.equal(added.length, 1, JSON.stringify(added));
    assert.match(added[0].text, /did not start/);
    assert.doesNotMatch(added[0].text, /is not running/);
  });

  it("reports a configured program that does not exist, naming it and the setting", { skip }, async () => {
    const before = errors().length;
    fake.settings["codeexec.server.command"] = ["codeexec-lsp-not-installed-here"];
    fake.fireConfigurationChange(["codeexec.server.command"]);
    assert.ok(await settle(() => errors().length > before), `log:\n${log()}`);
    const message = errors()[errors().length - 1];
    assert.match(message.text, /did not start: codeexec-lsp-not-installed-here/);
    assert.match(message.text, /Check the codeexec\.server\.command setting/);
    assert.match(message.text, /pipx install/);
    assert.deepEqual(message.items, ["Show Log", "Open Settings", "Retry"]);
    assert.doesNotMatch(log(), /server running/);
  });

  it("with nothing configured and no server on PATH, says how to install it from a clone and names the setting", { skip }, async () => {
    const before = errors().length;
    process.env.PATH = emptyDir; // no codeexec-lsp, no python3
    fake.settings["codeexec.server.command"] = [];
    fake.fireConfigurationChange(["codeexec.server.command"]);
    assert.ok(await settle(() => errors().length > before), `log:\n${log()}`);
    const message = errors()[errors().length - 1].text;
    process.env.PATH = savedPath;
    assert.match(message, /did not start: python3 -m codeexec_lsp/);
    assert.ok(message.includes(`pipx install git+${REPOSITORY_URL}`), message);
    assert.match(message, /pipx install \/path\/to\/codeexec-lsp/);
    assert.match(message, /set codeexec\.server\.command to its full path/);
    assert.match(message, /login shell/);
    assert.doesNotMatch(message, /pip install codeexec-lsp/); // no package index has it
  });

  it("names the repository the manifest names", () => {
    assert.equal(REPOSITORY_URL, manifest().repository?.url);
  });
});
