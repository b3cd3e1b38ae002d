/**
 * Just enough of the `vscode` API to activate the bundled extension (dist/extension.js)
 * and its vscode-languageclient under plain Node, against the real server. Everything
 * the extension shows (status bar, messages, output) is recorded for the test to read.
 *
 * Members not modelled here are stubbed by a Proxy (calls return a disposable) and
 * listed in `missing`, so a test can tell when the extension starts to need more.
 */
import * as path from "node:path";
import Module from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

type Listener<T> = (event: T) => unknown;

export class Disposable {
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((item) => item?.dispose()));
  }
  constructor(private readonly callback: () => unknown = () => undefined) {}
  dispose(): void {
    this.callback();
  }
}

export class EventEmitter<T> {
  private readonly listeners = new Set<Listener<T>>();
  readonly event = (listener: Listener<T>, thisArgs?: unknown, disposables?: Disposable[]): Disposable => {
    const bound: Listener<T> = (event) => listener.call(thisArgs, event);
    this.listeners.add(bound);
    const disposable = new Disposable(() => this.listeners.delete(bound));
    disposables?.push(disposable);
    return disposable;
  };
  fire(event: T): void {
    for (const listener of [...this.listeners]) {
      listener(event);
    }
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query = "",
    readonly fragment = "",
  ) {}
  static parse(value: string): Uri {
    const url = new URL(value);
    return new Uri(url.protocol.replace(/:$/, ""), url.host, decodeURIComponent(url.pathname), url.search.replace(/^\?/, ""), url.hash.replace(/^#/, ""));
  }
  static file(fsPath: string): Uri {
    return Uri.parse(pathToFileURL(fsPath).href);
  }
  get fsPath(): string {
    return this.scheme === "file" ? fileURLToPath(this.toString()) : this.path;
  }
  with(change: { scheme?: string; path?: string }): Uri {
    return new Uri(change.scheme ?? this.scheme, this.authority, change.path ?? this.path, this.query, this.fragment);
  }
  toString(): string {
    if (this.scheme === "file") {
      return pathToFileURL(this.path).href;
    }
    return `${this.scheme}:${this.authority ? `//${this.authority}` : ""}${this.path}`;
  }
  toJSON(): unknown {
    return { scheme: this.scheme, path: this.path };
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
  isEqual(other: Position): boolean {
    return this.line === other.line && this.character === other.character;
  }
  isBefore(other: Position): boolean {
    return this.line < other.line || (this.line === other.line && this.character < other.character);
  }
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    const start = typeof a === "number" ? new Position(a, b as number) : a;
    const end = typeof a === "number" ? new Position(c as number, d as number) : (b as Position);
    [this.start, this.end] = end.isBefore(start) ? [end, start] : [start, end];
  }
  get isEmpty(): boolean {
    return this.start.isEqual(this.end);
  }
}

export class Selection extends Range {
  constructor(
    readonly anchor: Position,
    readonly active: Position,
  ) {
    super(anchor, active);
  }
}

export class Location {
  constructor(
    readonly uri: Uri,
    readonly range: Range,
  ) {}
}

export class Diagnostic {
  source?: string;
  code?: unknown;
  relatedInformation?: unknown[];
  tags?: unknown[];
  constructor(
    readonly range: Range,
    readonly message: string,
    readonly severity = 0,
  ) {}
}

export class DiagnosticRelatedInformation {
  constructor(
    readonly location: Location,
    readonly message: string,
  ) {}
}

export class MarkdownString {
  constructor(
    public value = "",
    public supportThemeIcons = false,
  ) {}
  appendMarkdown(value: string): this {
    this.value += value;
    return this;
  }
}

export class Hover {
  constructor(
    readonly contents: unknown,
    readonly range?: Range,
  ) {}
}

export class CodeActionKind {
  static readonly Empty = new CodeActionKind("");
  static readonly QuickFix = new CodeActionKind("quickfix");
  static readonly Refactor = new CodeActionKind("refactor");
  static readonly Source = new CodeActionKind("source");
  constructor(readonly value: string) {}
  append(part: string): CodeActionKind {
    return new CodeActionKind(this.value ? `${this.value}.${part}` : part);
  }
  contains(other: CodeActionKind): boolean {
    return this.value === "" || other.value === this.value || other.value.startsWith(`${this.value}.`);
  }
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  readonly token = { isCancellationRequested: false, onCancellationRequested: this.emitter.event };
  cancel(): void {
    this.token.isCancellationRequested = true;
    this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class CancellationError extends Error {}
class TabInputText {}
class TabInputTextDiff {}
class TabInputCustom {}

export interface FakeDocument {
  uri: Uri;
  languageId: string;
  version: number;
  text: string;
}

export interface Recorded {
  output: string[];
  statusTexts: string[];
  statusTooltips: string[];
  statusBarMessages: string[];
  messages: { level: "info" | "warning" | "error"; text: string; items: string[] }[];
  progress: string[];
  missing: Set<string>;
  commands: Map<string, (...args: unknown[]) => unknown>;
}

/** A stub namespace: known members as given, anything else a no-op returning a disposable. */
function namespace<T extends object>(name: string, known: T, missing: Set<string>): T {
  return new Proxy(known, {
    get(target, property, receiver) {
      if (property in target || typeof property === "symbol") {
        return Reflect.get(target, property, receiver);
      }
      missing.add(`${name}.${String(property)}`);
      if (name === "vscode" && /^[A-Z]/.test(String(property))) {
        // A class or an enum: a class that keeps what it was given serves both.
        const stub = class {
          constructor(...args: unknown[]) {
            Object.assign(this, { args });
          }
        };
        Reflect.set(target, property, stub);
        return stub;
      }
      return () => new Disposable();
    },
  });
}

/** Which button the user clicks on a message (undefined: dismissed), for tests of the choices. */
export type MessageAnswer = (level: "info" | "warning" | "error", text: string, items: string[]) => string | undefined;

export function createFakeVscode(options: {
  workspaceFolder: string;
  settings: Record<string, unknown>;
  documents: FakeDocument[];
  answer?: MessageAnswer;
}) {
  const recorded: Recorded = {
    output: [],
    statusTexts: [],
    statusTooltips: [],
    statusBarMessages: [],
    messages: [],
    progress: [],
    missing: new Set(),
    commands: new Map(),
  };
  const showMessage = (level: "info" | "warning" | "error", text: string, rawItems: unknown[]) => {
    // Buttons are strings, or MessageItems ({ title }); a leading options object is not one.
    const items = rawItems
      .map((item) => (typeof item === "string" ? item : (item as { title?: string } | undefined)?.title))
      .filter((item): item is string => typeof item === "string");
    recorded.messages.push({ level, text, items });
    return options.answer?.(level, text, items);
  };
  const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();
  const settings = options.settings; // flat, "codeexec.timeout" → value

  const getConfiguration = (section?: string) => {
    const prefix = section ? `${section}.` : "";
    const lookup = (key: string) => {
      const full = prefix + key;
      if (full in settings) {
        return settings[full];
      }
      // A whole section as a nested object, as VS Code returns it.
      const nested: Record<string, unknown> = {};
      let found = false;
      for (const [dotted, value] of Object.entries(settings)) {
        if (dotted.startsWith(`${full}.`)) {
          found = true;
          const parts = dotted.slice(full.length + 1).split(".");
          let node = nested;
          for (const part of parts.slice(0, -1)) {
            node = (node[part] ??= {}) as Record<string, unknown>;
          }
          node[parts[parts.length - 1]] = value;
        }
      }
      return found ? nested : undefined;
    };
    return {
      get: (key: string, fallback?: unknown) => lookup(key) ?? fallback,
      has: (key: string) => lookup(key) !== undefined,
      inspect: () => undefined,
      update: async () => undefined,
    };
  };

  const textDocuments = options.documents.map((doc) => ({
    uri: doc.uri,
    languageId: doc.languageId,
    version: doc.version,
    fileName: doc.uri.fsPath,
    isUntitled: doc.uri.scheme === "untitled",
    isClosed: false,
    isDirty: false,
    eol: 1,
    lineCount: doc.text.split("\n").length,
    getText: () => doc.text,
  }));

  const window = namespace(
    "window",
    {
      activeTextEditor: undefined as unknown,
      visibleTextEditors: [] as unknown[],
      tabGroups: { all: [], onDidChangeTabs: new EventEmitter<unknown>().event },
      onDidChangeActiveTextEditor: new EventEmitter<unknown>().event,
      onDidChangeVisibleTextEditors: new EventEmitter<unknown>().event,
      createOutputChannel: (name: string) =>
        namespace(
          "OutputChannel",
          {
            name,
            append: (text: string) => recorded.output.push(text),
            appendLine: (text: string) => recorded.output.push(`${text}\n`),
            replace: () => undefined,
            clear: () => undefined,
            show: () => undefined,
            hide: () => undefined,
            dispose: () => undefined,
          },
          recorded.missing,
        ),
      createStatusBarItem: () => {
        const item = {
          name: "",
          _tooltip: "" as unknown,
          get tooltip() {
            return this._tooltip;
          },
          set tooltip(value: unknown) {
            this._tooltip = value;
            recorded.statusTooltips.push(String(value));
          },
          command: undefined as unknown,
          show: () => undefined,
          hide: () => undefined,
          dispose: () => undefined,
          _text: "",
          get text() {
            return this._text;
          },
          set text(value: string) {
            this._text = value;
            recorded.statusTexts.push(value);
          },
        };
        return item;
      },
      setStatusBarMessage: (text: string) => {
        recorded.statusBarMessages.push(text);
        return new Disposable();
      },
      showInformationMessage: async (text: string, ...items: unknown[]) => showMessage("info", text, items),
      showWarningMessage: async (text: string, ...items: unknown[]) => showMessage("warning", text, items),
      showErrorMessage: async (text: string, ...items: unknown[]) => showMessage("error", text, items),
      withProgress: async (
        progressOptions: { title?: string },
        task: (progress: { report(value: unknown): void }, token: unknown) => Promise<unknown>,
      ) => {
        recorded.progress.push(progressOptions.title ?? "");
        return task({ report: () => undefined }, new CancellationTokenSource().token);
      },
      showTextDocument: async () => undefined,
    },
    recorded.missing,
  );

  const workspace = namespace(
    "workspace",
    {
      workspaceFolders: [{ uri: Uri.file(options.workspaceFolder), name: path.basename(options.workspaceFolder), index: 0 }],
      textDocuments,
      notebookDocuments: [],
      isTrusted: true,
      getConfiguration,
      getWorkspaceFolder: () => undefined,
      onDidChangeConfiguration: configurationChanged.event,
      createFileSystemWatcher: () => ({
        onDidCreate: new EventEmitter().event,
        onDidChange: new EventEmitter().event,
        onDidDelete: new EventEmitter().event,
        dispose: () => undefined,
      }),
      applyEdit: async () => false,
    },
    recorded.missing,
  );

  const diagnostics = new Map<string, Diagnostic[]>();
  const languages = namespace(
    "languages",
    {
      match: (selector: unknown, document: { uri: Uri; languageId: string }) => {
        const selectors = Array.isArray(selector) ? selector : [selector];
        return selectors.some((s: { scheme?: string; language?: string } | string) =>
          typeof s === "string"
            ? s === document.languageId
            : (!s.scheme || s.scheme === document.uri.scheme) && (!s.language || s.language === document.languageId),
        )
          ? 10
          : 0;
      },
      createDiagnosticCollection: (name: string) =>
        namespace(
          "DiagnosticCollection",
          {
            name,
            set: (uri: Uri, items: Diagnostic[]) => void diagnostics.set(uri.toString(), items ?? []),
            delete: (uri: Uri) => void diagnostics.delete(uri.toString()),
            clear: () => diagnostics.clear(),
            dispose: () => undefined,
          },
          recorded.missing,
        ),
      getDiagnostics: (uri: Uri) => diagnostics.get(uri.toString()) ?? [],
    },
    recorded.missing,
  );

  const commands = namespace(
    "commands",
    {
      registerCommand: (id: string, callback: (...args: unknown[]) => unknown) => {
        if (recorded.commands.has(id)) {
          throw new Error(`command '${id}' already exists`);
        }
        recorded.commands.set(id, callback);
        return new Disposable(() => recorded.commands.delete(id));
      },
      executeCommand: async (id: string, ...args: unknown[]) => {
        const command = recorded.commands.get(id);
        if (!command) {
          throw new Error(`command '${id}' not found`);
        }
        return command(...args);
      },
    },
    recorded.missing,
  );

  const vscode = {
    version: "1.85.0",
    env: namespace("env", { language: "en", appName: "fake", openExternal: async () => false }, recorded.missing),
    window,
    workspace,
    languages,
    commands,
    extensions: namespace("extensions", { getExtension: () => undefined }, recorded.missing),
    Uri,
    Position,
    Range,
    Selection,
    Location,
    Diagnostic,
    DiagnosticRelatedInformation,
    DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
    DiagnosticTag: { Unnecessary: 1, Deprecated: 2 },
    MarkdownString,
    Hover,
    CodeActionKind,
    CancellationTokenSource,
    CancellationError,
    Disposable,
    EventEmitter,
    TabInputText,
    TabInputTextDiff,
    TabInputCustom,
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    StatusBarAlignment: { Left: 1, Right: 2 },
    TextDocumentSaveReason: { Manual: 1, AfterDelay: 2, FocusOut: 3 },
    ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  };

  const fireConfigurationChange = (changed: string[]) =>
    configurationChanged.fire({
      affectsConfiguration: (section: string) => changed.some((key) => key === section || key.startsWith(`${section}.`)),
    });

  return { vscode: namespace("vscode", vscode, recorded.missing), recorded, settings, fireConfigurationChange, textDocuments };
}

/** Make `require("vscode")` return `fake` for modules loaded from now on. */
export function installFakeVscode(fake: unknown): () => void {
  const id = path.join(__dirname, "__fake_vscode__.js");
  const moduleApi = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
    _cache: Record<string, unknown>;
  };
  const original = moduleApi._resolveFilename;
  moduleApi._resolveFilename = function (request: string, ...rest: unknown[]) {
    return request === "vscode" ? id : original.call(this, request, ...rest);
  };
  const cached = { id, filename: id, loaded: true, exports: fake, children: [], paths: [] };
  (require.cache as Record<string, unknown>)[id] = cached;
  return () => {
    moduleApi._resolveFilename = original;
    delete (require.cache as Record<string, unknown>)[id];
  };
}
