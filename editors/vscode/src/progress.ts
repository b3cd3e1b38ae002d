/**
 * The server's work-done progress (`window/workDoneProgress/create` + `$/progress`),
 * shown so that it can be cancelled.
 *
 * vscode-languageclient's own progress feature shows server progress in the window's
 * status area, where VS Code offers no Cancel button, so a run could not be stopped from
 * the UI. This feature replaces it: every report goes to the shared `Activity` (the
 * status bar item spins), and work that lasts longer than `notifyAfterMs` also gets a
 * notification with a Cancel button, which sends `window/workDoneProgress/cancel`. Short
 * runs never flash a notification.
 */

import * as vscode from "vscode";
import {
  BaseLanguageClient,
  ClientCapabilities,
  FeatureState,
  StaticFeature,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateParams,
  WorkDoneProgressCreateRequest,
  WorkDoneProgressReport,
} from "vscode-languageclient/node";

import { Activity, ProgressToken } from "./activity";

/** True for vscode-languageclient's built-in progress feature, which this one replaces. */
export function isBuiltinProgressFeature(feature: { getState?: () => FeatureState }): boolean {
  try {
    const state = feature.getState?.();
    return state?.kind === "window" && state.id === WorkDoneProgressCreateRequest.method;
  } catch {
    return false;
  }
}

class ProgressPart {
  private readonly disposable: vscode.Disposable;
  private timer: NodeJS.Timeout | undefined;
  private finish: (() => void) | undefined;
  private reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
  private message: string | undefined;
  private reported = 0;
  private ended = false;

  constructor(
    private readonly client: BaseLanguageClient,
    private readonly token: ProgressToken,
    private readonly activity: Activity,
    private readonly notifyAfterMs: number,
    private readonly onDone: (part: ProgressPart) => void,
  ) {
    this.disposable = client.onProgress(WorkDoneProgress.type, token, (value) => {
      switch (value.kind) {
        case "begin":
          this.begin(value);
          break;
        case "report":
          this.report(value);
          break;
        case "end":
          this.done();
          break;
      }
    });
  }

  private begin(params: WorkDoneProgressBegin): void {
    if (this.ended) {
      return;
    }
    this.message = params.message;
    this.activity.beginProgress(this.token, params.title, params.cancellable === true, params.message);
    this.timer = setTimeout(() => this.notify(params), this.notifyAfterMs);
  }

  private notify(params: WorkDoneProgressBegin): void {
    if (this.ended) {
      return;
    }
    void vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: `codeexec: ${params.title}`,
        cancellable: params.cancellable === true,
      },
      (progress, cancellation) =>
        new Promise<void>((resolve) => {
          if (this.ended) {
            resolve();
            return;
          }
          this.reporter = progress;
          this.finish = resolve;
          cancellation.onCancellationRequested(() => this.cancel());
          if (this.message) {
            progress.report({ message: this.message });
          }
          if (this.reported) {
            progress.report({ increment: this.reported });
          }
        }),
    );
  }

  private report(params: WorkDoneProgressReport): void {
    if (params.message !== undefined) {
      this.message = params.message;
      this.activity.reportProgress(this.token, params.message);
    }
    let increment: number | undefined;
    if (typeof params.percentage === "number") {
      const percentage = Math.max(0, Math.min(100, params.percentage));
      increment = Math.max(0, percentage - this.reported);
      this.reported += increment;
    }
    this.reporter?.report({ message: params.message, increment });
  }

  cancel(): void {
    void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token: this.token });
  }

  done(): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.disposable.dispose();
    this.finish?.();
    this.activity.endProgress(this.token);
    this.onDone(this);
  }

  get id(): ProgressToken {
    return this.token;
  }
}

export class CancellableProgressFeature implements StaticFeature {
  private readonly parts = new Map<ProgressToken, ProgressPart>();

  constructor(
    private readonly client: BaseLanguageClient,
    private readonly activity: Activity,
    private readonly notifyAfterMs = 1500,
  ) {}

  getState(): FeatureState {
    return { kind: "window", id: WorkDoneProgressCreateRequest.method, registrations: this.parts.size > 0 };
  }

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }

  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, (params: WorkDoneProgressCreateParams) => {
      this.parts.get(params.token)?.done();
      const part = new ProgressPart(this.client, params.token, this.activity, this.notifyAfterMs, (done) =>
        this.parts.delete(done.id),
      );
      this.parts.set(params.token, part);
    });
  }

  /** Ask the server to cancel everything it reported as cancellable. */
  cancelAll(): number {
    const tokens = this.activity.cancellableTokens();
    for (const token of tokens) {
      this.parts.get(token)?.cancel();
    }
    return tokens.length;
  }

  clear(): void {
    for (const part of [...this.parts.values()]) {
      part.done();
    }
    this.parts.clear();
  }
}
