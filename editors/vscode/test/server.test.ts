/**
 * The settings mapping and the command arguments against the real language server,
 * spoken to over stdio the way vscode-languageclient does (no VS Code needed).
 *
 * The server is found like the extension finds it (codeexec-lsp on PATH, else
 * python3 -m codeexec_lsp), or given as a JSON list in CODEEXEC_LSP_COMMAND. Without
 * one the suite is skipped, and says so; CODEEXEC_REQUIRE_SERVER=1 makes that a failure.
 */
import assert from "node:assert/strict";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";

import {
  CodeActionRequest,
  ConfigurationRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  InitializeResult,
  ProtocolConnection,
  PublishDiagnosticsNotification,
  PublishDiagnosticsParams,
  ResponseError,
  ShowMessageNotification,
  ShowMessageParams,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-languageserver-protocol/node";

import { commandArguments, pickDiagnostic } from "../src/ranges";
import { didChangeConfigurationPayload, nestDotted, toServerSettings } from "../src/settings";
import { contributedDefaults, findServer } from "./helpers";

const found = findServer();
const skip = typeof found === "string" && !process.env.CODEEXEC_REQUIRE_SERVER ? found : false;
if (skip) {
  console.log(`# server tests skipped: ${skip}`);
}

const DEMO = ["total = 6 * 7", "print(total)", "ratio = total / 0", "total", ""].join("\n");

describe("against the codeexec-lsp server", () => {
  let server: ChildProcess;
  let connection: ProtocolConnection;
  let workspace: string;
  let uri: string;
  let initializeResult: InitializeResult;
  let currentRaw: Record<string, unknown> = nestDotted(contributedDefaults());
  const messages: ShowMessageParams[] = [];
  const configurationRequests: unknown[] = [];
  const diagnostics = new Map<string, PublishDiagnosticsParams>();
  let stderr = "";

  const warnings = () => messages.filter((m) => m.type === 2).map((m) => m.message);
  const settle = async (predicate: () => boolean, ms = 10000) => {
    const end = Date.now() + ms;
    while (!predicate() && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return predicate();
  };

  before(async () => {
    if (skip) {
      return;
    }
    if (typeof found === "string") {
      throw new Error(found);
    }
    workspace = fs.mkdtempSync(path.join(os.tmpdir(), "codeexec-vscode-"));
    const file = path.join(workspace, "demo.py");
    fs.writeFileSync(file, DEMO);
    uri = pathToFileURL(file).href;
    const env = { ...process.env };
    delete env.OPENAI_API_KEY;
    delete env.ANTHROPIC_API_KEY;
    env.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"; // never leave this machine
    server = spawn(found.command, found.args, { cwd: workspace, env, stdio: ["pipe", "pipe", "pipe"] });
    server.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    connection = createProtocolConnection(
      new StreamMessageReader(server.stdout!),
      new StreamMessageWriter(server.stdin!),
    );
    connection.onNotification(ShowMessageNotification.type, (params) => messages.push(params));
    connection.onNotification(PublishDiagnosticsNotification.type, (params) => diagnostics.set(params.uri, params));
    connection.onRequest(ConfigurationRequest.type, (params) => {
      configurationRequests.push(params);
      // What the extension's middleware answers: the mapped section.
      return params.items.map((item) => (item.section === "codeexec" ? toServerSettings(currentRaw) : null));
    });
    connection.onRequest("window/workDoneProgress/create", () => null);
    connection.onRequest("client/registerCapability", () => null);
    connection.onRequest("window/showDocument", () => ({ success: true }));
    connection.onRequest("workspace/applyEdit", () => ({ applied: false, failureReason: "test client" }));
    connection.listen();

    initializeResult = await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: pathToFileURL(workspace).href,
      workspaceFolders: [{ uri: pathToFileURL(workspace).href, name: "demo" }],
      initializationOptions: toServerSettings(currentRaw),
      capabilities: {
        workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true }, workspaceEdit: { documentChanges: true } },
        window: { workDoneProgress: true, showDocument: { support: true } },
        textDocument: { publishDiagnostics: { relatedInformation: true } },
      },
    });
    await connection.sendNotification(InitializedNotification.type, {});
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: "python", version: 1, text: DEMO },
    });
  });

  after(async () => {
    if (connection) {
      try {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          connection.sendRequest(ShutdownRequest.type),
          new Promise((resolve) => (timer = setTimeout(resolve, 5000))),
        ]).finally(() => clearTimeout(timer));
        await connection.sendNotification(ExitNotification.type);
      } catch {
        // the process may already be gone
      }
      connection.dispose();
    }
    if (server && server.exitCode === null) {
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          server.kill("SIGKILL");
          resolve(undefined);
        }, 3000);
        server.once("exit", () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
    if (workspace) {
      fs.rmSync(workspace, { recursive: true, force: true });
    }
  });

  it("offers the commands and code action kinds the extension relies on", { skip }, () => {
    const commands = initializeResult.capabilities.executeCommandProvider?.commands ?? [];
    for (const command of ["codeexec.run", "codeexec.explain", "codeexec.fix", "codeexec.restart"]) {
      assert.ok(commands.includes(command), `${command} not in ${commands}`);
    }
    const provider = initializeResult.capabilities.codeActionProvider;
    const kinds = typeof provider === "object" ? provider.codeActionKinds ?? [] : [];
    assert.ok(kinds.includes("codeexec.run") && kinds.includes("quickfix.codeexec.fix"), String(kinds));
  });

  it("accepts the contributed defaults without a single settings warning", { skip }, async () => {
    assert.ok(await settle(() => configurationRequests.length > 0), "the server never asked for workspace/configuration");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(warnings(), [], `stderr:\n${stderr}`);
  });

  it("has the same defaults as the contributed settings", { skip }, () => {
    if (typeof found === "string") {
      return;
    }
    const script = [
      "import json, sys",
      "from codeexec_lsp import config",
      "defaults, settings, bad = json.load(sys.stdin), config.Settings(), []",
      "for key, attribute, _ in config._KEYS:",
      "    node = settings",
      "    for part in attribute.split('.'):",
      "        node = getattr(node, part)",
      "    have = list(node) if isinstance(node, tuple) else node",
      "    want = defaults.get('codeexec.' + key, '<not contributed>')",
      "    want = None if want == '' else want",
      "    if have != want:",
      "        bad.append([key, want, have])",
      "print(json.dumps(bad))",
    ].join("\n");
    const result = spawnSync(found.python, ["-c", script], { input: JSON.stringify(contributedDefaults()), encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), [], "[key, package.json default, server default]");
  });

  it("runs the file with the arguments Run File sends", { skip }, async () => {
    const result = (await connection.sendRequest(ExecuteCommandRequest.type, {
      command: "codeexec.run",
      arguments: commandArguments("runFile", uri, { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }),
    })) as Record<string, unknown>;
    assert.equal(result.status, "error", JSON.stringify(result));
    assert.equal(result.stdout, "42\n");
    const error = result.error as Record<string, unknown>;
    assert.equal(error.type, "ZeroDivisionError");
    assert.equal(error.line, 3);
  });

  it("runs a selection, and the statement at a cursor, with the arguments Run Selection sends", { skip }, async () => {
    const selection = { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } }; // lines 1-2, line-wise
    const ran = (await connection.sendRequest(ExecuteCommandRequest.type, {
      command: "codeexec.run",
      arguments: commandArguments("runSelection", uri, selection),
    })) as Record<string, unknown>;
    assert.equal(ran.status, "ok", JSON.stringify(ran));
    assert.equal(ran.stdout, "42\n");
    const cursor = { start: { line: 3, character: 2 }, end: { line: 3, character: 2 } }; // on `total`
    const statement = (await connection.sendRequest(ExecuteCommandRequest.type, {
      command: "codeexec.run",
      arguments: commandArguments("runSelection", uri, cursor),
    })) as Record<string, unknown>;
    assert.equal(statement.status, "ok", JSON.stringify(statement));
    assert.equal(statement.value, "42");
  });

  it("publishes a codeexec diagnostic that Fix with LLM picks at the cursor", { skip }, async () => {
    await connection.sendRequest(ExecuteCommandRequest.type, {
      command: "codeexec.run",
      arguments: commandArguments("runSelection", uri, { start: { line: 2, character: 0 }, end: { line: 3, character: 0 } }),
    });
    assert.ok(await settle(() => (diagnostics.get(uri)?.diagnostics ?? []).some((d) => d.source === "codeexec")));
    const published = diagnostics.get(uri)!.diagnostics;
    const picked = pickDiagnostic(published, { start: { line: 2, character: 5 }, end: { line: 2, character: 5 } });
    assert.equal(picked?.code, "ZeroDivisionError");
    assert.equal(picked?.range.start.line, 2);

    const actions = (await connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri },
      range: { start: { line: 2, character: 5 }, end: { line: 2, character: 5 } },
      context: { diagnostics: published.filter((d) => d.range.start.line === 2) },
    })) as { title: string; kind?: string }[];
    const byKind = new Map(actions.map((action) => [action.kind, action.title]));
    assert.equal(byKind.get("codeexec.run"), "Run statement");
    assert.equal(byKind.get("quickfix.codeexec.fix"), "Fix with LLM");

    // Without an API key the fix fails fast, with a message the server shows itself.
    const before = messages.length;
    await assert.rejects(
      connection.sendRequest(ExecuteCommandRequest.type, {
        command: "codeexec.fix",
        arguments: commandArguments("fixSelection", uri, { start: { line: 2, character: 5 }, end: { line: 2, character: 5 } }, picked),
      }),
      (error: unknown) => error instanceof ResponseError,
    );
    assert.ok(await settle(() => messages.length > before));
    assert.match(messages[messages.length - 1].message, /^codeexec: Fix: /);
  });

  it("takes pushed settings from didChangeConfiguration, in the shape the extension sends", { skip }, async () => {
    currentRaw = { ...nestDotted(contributedDefaults()), timeout: 0, cpuSeconds: null, python: "" };
    const seen = configurationRequests.length;
    await connection.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationPayload(currentRaw));
    assert.ok(await settle(() => warnings().some((w) => w.startsWith("codeexec: codeexec.timeout: expected a positive number"))), String(warnings()));
    assert.ok(await settle(() => configurationRequests.length > seen), "no workspace/configuration pull after the push");
    // null and "" mean "unset" once mapped: no warning about them...
    assert.ok(!warnings().some((w) => w.startsWith("codeexec: codeexec.cpuSeconds") || w.startsWith("codeexec: codeexec.python")), String(warnings()));
    // ...while VS Code's raw value, unmapped, would have drawn one.
    await connection.sendNotification(DidChangeConfigurationNotification.type, { settings: { codeexec: { cpuSeconds: null } } });
    assert.ok(await settle(() => warnings().some((w) => w.startsWith("codeexec: codeexec.cpuSeconds"))), String(warnings()));
  });
});
