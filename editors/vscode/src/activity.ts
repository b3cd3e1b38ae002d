/**
 * What the server is busy with: the extension's own command invocations and the
 * server's `$/progress` work-done reports. The status bar spins while anything is in
 * flight. Pure (no `vscode` import), so `npm test` covers it.
 */

export type ProgressToken = string | number;

export interface ActivityItem {
  id: string;
  title: string;
  message?: string;
  started: number;
  /** A server work-done progress token, when the item came from `$/progress`. */
  token?: ProgressToken;
  cancellable: boolean;
}

const COMMAND_TITLES: Record<string, string> = {
  "codeexec.run": "Running",
  "codeexec.explain": "Explaining",
  "codeexec.fix": "Fixing",
  "codeexec.applyFix": "Applying fix",
  "codeexec.restart": "Restarting session",
};

export function commandTitle(command: string): string {
  return COMMAND_TITLES[command] ?? command;
}

export class Activity {
  private readonly items = new Map<string, ActivityItem>();
  private readonly listeners = new Set<() => void>();
  private nextId = 0;

  constructor(private readonly now: () => number = Date.now) {}

  onDidChange(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private changed(): void {
    for (const listener of [...this.listeners]) {
      listener();
    }
  }

  /** A command sent to the server; call the returned function when it has answered. */
  beginCommand(command: string): () => void {
    const id = `command:${this.nextId++}`;
    this.items.set(id, { id, title: commandTitle(command), started: this.now(), cancellable: false });
    this.changed();
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.items.delete(id);
        this.changed();
      }
    };
  }

  beginProgress(token: ProgressToken, title: string, cancellable: boolean, message?: string): void {
    const id = `progress:${String(token)}`;
    this.items.set(id, { id, title, message, token, cancellable, started: this.now() });
    this.changed();
  }

  reportProgress(token: ProgressToken, message?: string): void {
    const item = this.items.get(`progress:${String(token)}`);
    if (item && message !== undefined) {
      item.message = message;
      this.changed();
    }
  }

  endProgress(token: ProgressToken): void {
    if (this.items.delete(`progress:${String(token)}`)) {
      this.changed();
    }
  }

  /** Forget everything, e.g. when the server stops. */
  clear(): void {
    if (this.items.size) {
      this.items.clear();
      this.changed();
    }
  }

  get busy(): boolean {
    return this.items.size > 0;
  }

  /** Newest first: progress reports (they have the better titles) before bare commands. */
  active(): ActivityItem[] {
    return [...this.items.values()].sort(
      (a, b) => Number(b.token !== undefined) - Number(a.token !== undefined) || b.started - a.started,
    );
  }

  /** Tokens the user may cancel. */
  cancellableTokens(): ProgressToken[] {
    return this.active()
      .filter((item) => item.token !== undefined && item.cancellable)
      .map((item) => item.token as ProgressToken);
  }
}

export type ServerState = "starting" | "running" | "stopped";

export interface StatusView {
  text: string;
  tooltip: string;
  /** The command a click runs. */
  command: string;
}

/** The status bar item for the executor in use, the server's state and what is in flight. */
export function statusView(executor: string, server: ServerState, activity: readonly ActivityItem[], serverSource?: string): StatusView {
  const from = serverSource ? `\nServer: ${serverSource}.` : "";
  if (server === "stopped") {
    return {
      text: "$(circle-slash) codeexec",
      tooltip: `codeexec: the language server is not running.${from}\nClick to start it.`,
      command: "codeexec.restartServer",
    };
  }
  if (server === "starting") {
    return {
      text: `$(loading~spin) codeexec: ${executor}`,
      tooltip: `codeexec: starting the language server.${from}`,
      command: "codeexec.showLog",
    };
  }
  const restartHint =
    executor === "session"
      ? "Click to restart the session (its variables and imports are lost)."
      : `Click to restart the session (the ${executor} executor keeps none, so there is nothing to lose).`;
  if (activity.length > 0) {
    const current = activity[0];
    const what = current.message ? `${current.title}: ${current.message}` : current.title;
    const more = activity.length > 1 ? ` (+${activity.length - 1} more)` : "";
    return {
      text: `$(sync~spin) codeexec: ${executor}`,
      tooltip: `codeexec: ${what}${more}.${from}\n${restartHint}`,
      command: "codeexec.restartSession",
    };
  }
  return {
    text: `$(play) codeexec: ${executor}`,
    tooltip: `codeexec: runs Python with the ${executor} executor.${from}\n${restartHint}`,
    command: "codeexec.restartSession",
  };
}

/**
 * When the server keeps exiting: restart it at most `maxRestarts` times within
 * `windowMs`, then stop and say why (VS Code's language client default is 4 in 3 min).
 */
export class RestartPolicy {
  private readonly restarts: number[] = [];

  constructor(
    private readonly maxRestarts = 4,
    private readonly windowMs = 3 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Record an exit; true when the server should be started again. */
  shouldRestart(): boolean {
    const now = this.now();
    while (this.restarts.length && now - this.restarts[0] > this.windowMs) {
      this.restarts.shift();
    }
    if (this.restarts.length >= this.maxRestarts) {
      return false;
    }
    this.restarts.push(now);
    return true;
  }

  reset(): void {
    this.restarts.length = 0;
  }
}
