/**
 * The VS Code extension: starts `codeexec-lsp`, forwards the `codeexec.*` settings, adds
 * commands, keybindings, a context submenu and a status bar item. Everything the server
 * offers through standard LSP (code actions in the light bulb, diagnostics, hover, inlay
 * hints, progress, documents, edits) comes through vscode-languageclient as it is.
 */

import * as path from "node:path";
import * as vscode from "vscode";
import {
  CancellationToken,
  CloseAction,
  CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  StaticFeature,
  DynamicFeature,
} from "vscode-languageclient/node";

import { Activity, RestartPolicy, ServerState, statusView } from "./activity";
import { CancellableProgressFeature, isBuiltinProgressFeature } from "./progress";
import { onDidChangeInterpreter, selectedInterpreter } from "./python";
import { Action, DiagnosticLike, SERVER_COMMANDS, commandArguments, pickDiagnostic } from "./ranges";
import { ServerCommand, describeCommand, resolveServerCommand, startFailureMessage } from "./serverCommand";
import {
  SECTION,
  didChangeConfigurationPayload,
  executorOf,
  explanationPlacementOf,
  isExplanationDocument,
  toServerSettings,
} from "./settings";
import { summarizeFix, summarizeRun } from "./summary";

const CLIENT_ID = "codeexec"; // also makes vscode-languageclient honour `codeexec.trace.server`
const CLIENT_NAME = "codeexec";

function rawSettings(): unknown {
  return vscode.workspace.getConfiguration().get(SECTION);
}

class NotRunningError extends Error {}

/**
 * vscode-languageclient 9.0.1: when the server exits during `initialize`, its close
 * handler drops the pending start promise before start() rejects it, so start() resolves
 * and the rejected promise is left unobserved ("rejected promise not handled" in the
 * extension host log). start()'s callers still see a failure through isRunning(); this
 * marks that promise as observed. A no-op if a later version renames the method.
 */
function markStartPromiseHandled(client: LanguageClient): void {
  const internals = client as unknown as { createOnStartPromise?: () => [Promise<void>, ...unknown[]] };
  const create = internals.createOnStartPromise;
  if (typeof create !== "function") {
    return;
  }
  internals.createOnStartPromise = function (this: unknown) {
    const made = create.call(this);
    made[0].catch(() => undefined);
    return made;
  };
}

/** The server was just tried and did not start; the start-failure message has been shown. */
class StartFailedError extends NotRunningError {}

/**
 * The output channel as the language client sees it, remembering the server's own error
 * output: the client writes the server's stderr with `append` and its own messages with
 * `appendLine`, so the last line appended is why a server that died said it died.
 */
class ErrorTail {
  private tail = "";
  readonly channel: vscode.OutputChannel;

  constructor(output: vscode.OutputChannel) {
    const remember = (text: string) => {
      this.tail = (this.tail + text).slice(-4000);
    };
    this.channel = {
      get name() {
        return output.name;
      },
      append: (text: string) => {
        remember(text);
        output.append(text);
      },
      appendLine: (text: string) => output.appendLine(text),
      replace: (text: string) => output.replace(text),
      clear: () => output.clear(),
      show: (...args: unknown[]) => (output.show as (...rest: unknown[]) => void)(...args),
      hide: () => output.hide(),
      dispose: () => undefined, // the extension's channel outlives every client
    };
  }

  /** The last non-empty line the server wrote to stderr, if any. */
  last(): string | undefined {
    return this.tail.split("\n").map((line) => line.trim()).filter(Boolean).pop();
  }
}

/** Owns the language client: start, stop, restart, and sending the server's commands. */
class ServerController implements vscode.Disposable {
  client: LanguageClient | undefined;
  command: ServerCommand | undefined;
  private progress: CancellableProgressFeature | undefined;
  private starting: Promise<boolean> | undefined;
  private everRunning = false;
  private stopping = false;
  private readonly restarts = new RestartPolicy();
  private readonly stateChanged = new vscode.EventEmitter<void>();
  private readonly disposables: vscode.Disposable[] = [this.stateChanged];
  readonly onDidChangeState = this.stateChanged.event;
  state: ServerState = "stopped";

  constructor(
    private readonly output: vscode.OutputChannel,
    private readonly activity: Activity,
  ) {}

  private setState(state: ServerState): void {
    if (this.state !== state) {
      this.state = state;
      if (state === "stopped") {
        this.activity.clear();
      }
      this.stateChanged.fire();
    }
  }

  private async resolveCommand(): Promise<ServerCommand> {
    const folder = vscode.workspace.workspaceFolders?.[0];
    const base = {
      configured: vscode.workspace.getConfiguration(SECTION, folder?.uri).get("server.command"),
      platform: process.platform,
      env: process.env,
      workspaceFolder: folder?.uri.fsPath,
    };
    let command = resolveServerCommand(base);
    if (command.kind === "fallback") {
      // Neither the setting nor PATH had it: ask the Python extension, if installed.
      const python = await selectedInterpreter(folder?.uri);
      if (python) {
        command = resolveServerCommand({ ...base, pythonFromExtension: python });
      }
    }
    return command;
  }

  start(): Promise<boolean> {
    this.starting ??= this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<boolean> {
    if (this.client?.isRunning()) {
      return true;
    }
    await this.discardClient(); // one that gave up after crashing: start afresh
    this.setState("starting");
    const command = await this.resolveCommand();
    this.command = command;
    if (command.warning) {
      void vscode.window.showWarningMessage(`codeexec: ${command.warning}`);
    }
    this.output.appendLine(`[codeexec] starting the server: ${describeCommand(command)} (${command.source})`);

    const folder = vscode.workspace.workspaceFolders?.[0];
    const serverOptions: ServerOptions = {
      command: command.command,
      args: command.args,
      options: { cwd: folder?.uri.fsPath, env: { ...process.env, PYTHONUNBUFFERED: "1" } },
    };
    const activity = this.activity;
    const serverErrors = new ErrorTail(this.output);
    let client: LanguageClient;
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
      ],
      // didChangeConfiguration on every change of `codeexec.*`, and
      // workspace/configuration answered for section `codeexec`.
      synchronize: { configurationSection: SECTION },
      initializationOptions: () => toServerSettings(rawSettings()),
      outputChannel: serverErrors.channel,
      // A failed initialize is reported by start()'s caller (explainStartFailure), once.
      initializationFailedHandler: () => false,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => this.onClosed(),
      },
      middleware: {
        // Commands picked from the light bulb go through here: count them as activity.
        executeCommand: async (name, args, next) => {
          const done = activity.beginCommand(name);
          try {
            return await next(name, args);
          } finally {
            done();
          }
        },
        window: {
          // window/showDocument has no "beside": open explanations where the user chose.
          showDocument: async (params, next) => {
            const asRequested = async () => {
              const result = await next(params, CancellationToken.None);
              if (result instanceof ResponseError) {
                throw result;
              }
              return result;
            };
            const placement = explanationPlacementOf(rawSettings());
            if (placement === "active" || params.external || !isExplanationDocument(params.uri)) {
              return asRequested();
            }
            try {
              const uri = client.protocol2CodeConverter.asUri(params.uri);
              if (placement === "preview") {
                await vscode.commands.executeCommand("markdown.showPreviewToSide", uri);
              } else {
                const document = await vscode.workspace.openTextDocument(uri);
                await vscode.window.showTextDocument(document, {
                  viewColumn: vscode.ViewColumn.Beside,
                  preserveFocus: params.takeFocus === false,
                  preview: false,
                });
              }
              return { success: true };
            } catch (error) {
              this.output.appendLine(`[codeexec] could not open ${params.uri} ${placement}: ${String(error)}`);
              return asRequested();
            }
          },
        },
        workspace: {
          configuration: async (params, token, next) => {
            const answer = await next(params, token);
            if (!Array.isArray(answer)) {
              return answer;
            }
            return answer.map((value, index) =>
              params.items[index]?.section === SECTION ? toServerSettings(value) : value,
            );
          },
          // Push the mapped settings, not VS Code's raw ones (with nulls and client keys).
          didChangeConfiguration: async () => {
            if (client.state === State.Stopped) {
              return; // stopping for a restart, or failed: the next start reads the settings
            }
            await client.sendNotification(
              DidChangeConfigurationNotification.type,
              didChangeConfigurationPayload(rawSettings()),
            );
          },
        },
      },
    };

    // The built-in progress feature cannot be cancelled from the UI; swap in ours. The
    // swap happens while the base class registers its features, inside the constructor.
    const makeProgress = (owner: LanguageClient) => (this.progress = new CancellableProgressFeature(owner, activity));
    class CodeexecLanguageClient extends LanguageClient {
      /** Until the server runs, failures go to the log only: the extension says it once, its way. */
      startingUp = true;

      override registerFeature(feature: StaticFeature | DynamicFeature<unknown>): void {
        super.registerFeature(isBuiltinProgressFeature(feature) ? makeProgress(this) : feature);
      }

      override async stop(timeout?: number): Promise<void> {
        try {
          await super.stop(timeout);
        } catch (error) {
          // The client's own `void this.stop()` after a failed initialize rejects with
          // "Client is not running and can't be stopped": nobody awaits it, so log it.
          if (this.isRunning()) {
            throw error;
          }
          this.outputChannel.appendLine(`[codeexec] stopping after a failed start: ${String(error)}`);
        }
      }

      override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
        // Without this, a server that dies during start-up also draws the client's own
        // "Pending response rejected..." and "couldn't create connection to server."
        super.error(message, data, this.startingUp ? false : showNotification);
      }
    }
    const codeexecClient = new CodeexecLanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
    client = codeexecClient;
    this.client = client;
    markStartPromiseHandled(codeexecClient);
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        codeexecClient.startingUp = false;
        this.everRunning = true;
        this.setState("running");
      } else if (event.newState === State.Starting) {
        this.setState("starting");
      } else {
        this.setState("stopped");
      }
    });
    let failure: unknown;
    try {
      await client.start();
      // vscode-languageclient 9 resolves start() when the server exits during
      // `initialize` (its close handler clears the pending start first): only
      // isRunning() tells a started server from one that is already gone.
      if (!client.isRunning()) {
        failure = new Error(serverErrors.last() ?? "it exited during start-up");
      }
    } catch (error) {
      failure = serverErrors.last() ?? error;
    }
    if (failure === undefined) {
      this.output.appendLine(`[codeexec] server running (${describeCommand(command)})`);
      return true;
    }
    this.output.appendLine(`[codeexec] the server did not start: ${failure instanceof Error ? failure.message : String(failure)}`);
    await this.discardClient();
    this.setState("stopped");
    void this.explainStartFailure(command, failure);
    return false;
  }

  private onClosed(): CloseHandlerResult {
    if (this.stopping) {
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    if (!this.everRunning) {
      // Never got going: start() reports it, with the command that failed.
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    if (this.restarts.shouldRestart()) {
      this.output.appendLine("[codeexec] the server exited; restarting it");
      return { action: CloseAction.Restart, handled: true };
    }
    if (this.command) {
      void this.explainStartFailure(this.command, "it exited 5 times in 3 minutes");
    }
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  private async explainStartFailure(command: ServerCommand, error: unknown): Promise<void> {
    const detail = error instanceof Error ? error.message : String(error);
    const choice = await vscode.window.showErrorMessage(startFailureMessage(command, detail), "Show Log", "Open Settings", "Retry");
    if (choice === "Show Log") {
      this.output.show(true);
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "codeexec.server.command");
    } else if (choice === "Retry") {
      await this.restart();
    }
  }

  private async discardClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.progress = undefined;
    if (!client) {
      return;
    }
    this.stopping = true;
    try {
      if (client.needsStop()) {
        await client.stop(3000);
      }
    } catch (error) {
      this.output.appendLine(`[codeexec] stopping the server: ${String(error)}`);
    } finally {
      this.stopping = false;
      await Promise.resolve(client.dispose()).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => undefined);
    await this.discardClient();
    this.setState("stopped");
  }

  async restart(): Promise<boolean> {
    await this.stop();
    this.restarts.reset();
    this.everRunning = false;
    return this.start();
  }

  /** The running client, starting it if needed. */
  async ready(): Promise<LanguageClient> {
    if (!this.client?.isRunning()) {
      if (!(await this.start())) {
        throw new StartFailedError("the language server did not start (see the log: codeexec: Show Log)");
      }
    }
    if (!this.client?.isRunning()) {
      throw new NotRunningError("the language server is not running (see the log: codeexec: Show Log)");
    }
    return this.client;
  }

  /** `workspace/executeCommand` of one of the server's commands, counted as activity. */
  async executeServerCommand(command: string, args: unknown[]): Promise<unknown> {
    const client = await this.ready();
    const done = this.activity.beginCommand(command);
    try {
      return await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
    } finally {
      done();
    }
  }

  cancelAll(): number {
    return this.progress?.cancelAll() ?? 0;
  }

  dispose(): void {
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
  }
}

class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("codeexec.status", vscode.StatusBarAlignment.Right, 100);

  constructor(
    private readonly controller: ServerController,
    private readonly activity: Activity,
  ) {
    this.item.name = "codeexec";
    this.update();
    this.item.show();
  }

  update(): void {
    const view = statusView(executorOf(rawSettings()), this.controller.state, this.activity.active(), this.controller.command?.source);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.command;
  }

  dispose(): void {
    this.item.dispose();
  }
}

function toDiagnosticLike(diagnostic: vscode.Diagnostic, client: LanguageClient): DiagnosticLike {
  return {
    range: client.code2ProtocolConverter.asRange(diagnostic.range),
    message: diagnostic.message,
    source: diagnostic.source,
    code: diagnostic.code as DiagnosticLike["code"],
    severity: diagnostic.severity + 1, // vscode counts from 0, LSP from 1
  };
}

let controller: ServerController | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("codeexec");
  const activity = new Activity();
  controller = new ServerController(output, activity);
  const server = controller;
  const status = new StatusBar(server, activity);
  context.subscriptions.push(output, server, status);
  context.subscriptions.push(server.onDidChangeState(() => status.update()));
  context.subscriptions.push(activity.onDidChange(() => status.update()));

  const report = (error: unknown) => {
    if (error instanceof StartFailedError) {
      // The start-failure message (command, install hint, buttons) is on screen already.
      output.appendLine(`[codeexec] ${error.message}`);
      return;
    }
    if (error instanceof ResponseError) {
      // The server has usually said why already (window/showMessage); keep it quiet.
      output.appendLine(`[codeexec] the server answered with an error: ${error.message}`);
      vscode.window.setStatusBarMessage(`$(error) codeexec: ${error.message}`, 8000);
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    output.appendLine(`[codeexec] ${message}`);
    void vscode.window.showErrorMessage(`codeexec: ${message}`, "Show Log").then((choice) => {
      if (choice) {
        output.show(true);
      }
    });
  };

  const editorAction = async (action: Action) => {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.languageId !== "python") {
      void vscode.window.showWarningMessage("codeexec: open a Python file and select the code first.");
      return;
    }
    try {
      const client = await server.ready();
      const c2p = client.code2ProtocolConverter;
      const document = editor.document;
      const uri = c2p.asUri(document.uri);
      const selection = c2p.asRange(editor.selection);
      const diagnostic =
        action === "fixSelection"
          ? pickDiagnostic(
              vscode.languages.getDiagnostics(document.uri).map((d) => toDiagnosticLike(d, client)),
              selection,
            )
          : undefined;
      const result = await server.executeServerCommand(SERVER_COMMANDS[action], commandArguments(action, uri, selection, diagnostic));
      const name = document.isUntitled ? document.uri.path : path.basename(document.uri.fsPath);
      if (action === "runSelection" || action === "runFile") {
        const summary = summarizeRun(result);
        vscode.window.setStatusBarMessage(`codeexec: ${summary.text}`, 8000);
        output.appendLine(`[run] ${name}: ${summary.text.replace(/^\$\([^)]*\) /, "")}`);
      } else if (action === "fixSelection") {
        const summary = summarizeFix(result);
        output.appendLine(`[fix] ${name}: ${summary.text.replace(/^\$\([^)]*\) /, "")}`);
      }
    } catch (error) {
      report(error);
    }
  };

  context.subscriptions.push(
    vscode.commands.registerCommand("codeexec.runSelection", () => editorAction("runSelection")),
    vscode.commands.registerCommand("codeexec.runFile", () => editorAction("runFile")),
    vscode.commands.registerCommand("codeexec.explainSelection", () => editorAction("explainSelection")),
    vscode.commands.registerCommand("codeexec.fixSelection", () => editorAction("fixSelection")),
    vscode.commands.registerCommand("codeexec.restartSession", async () => {
      try {
        await server.executeServerCommand(SERVER_COMMANDS.restartSession, []);
      } catch (error) {
        report(error);
      }
    }),
    vscode.commands.registerCommand("codeexec.cancel", () => {
      const cancelled = server.cancelAll();
      if (!cancelled) {
        vscode.window.setStatusBarMessage("codeexec: nothing to cancel", 4000);
      }
    }),
    vscode.commands.registerCommand("codeexec.restartServer", () => server.restart()),
    vscode.commands.registerCommand("codeexec.showLog", () => output.show(true)),
  );

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(`${SECTION}.server`)) {
        output.appendLine("[codeexec] codeexec.server.* changed: restarting the server");
        void server.restart();
      }
      if (event.affectsConfiguration(SECTION)) {
        status.update();
      }
    }),
  );

  await server.start();

  // A newly selected interpreter matters when the server runs on it.
  context.subscriptions.push(
    onDidChangeInterpreter(() => {
      if (server.command?.kind === "python-extension" || server.command?.kind === "fallback") {
        output.appendLine("[codeexec] the selected interpreter changed: restarting the server");
        void server.restart();
      }
    }),
  );
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
