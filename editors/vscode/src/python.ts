/**
 * The interpreter selected in the Python extension (`ms-python.python`), when it is
 * installed. Optional: without it the server command falls back to `python3`.
 *
 * Only the small, stable part of its API is used, typed here so that the extension
 * needs no dependency on `@vscode/python-extension`.
 */

import * as vscode from "vscode";

interface EnvironmentPath {
  id: string;
  path: string;
}

interface ResolvedEnvironment {
  executable?: { uri?: vscode.Uri };
}

interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): EnvironmentPath;
    resolveEnvironment(environment: EnvironmentPath | string): Promise<ResolvedEnvironment | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: {
    // The older API, still present.
    getExecutionDetails?(resource?: vscode.Uri): { execCommand: string[] | undefined };
  };
}

const PYTHON_EXTENSION_ID = "ms-python.python";

async function api(timeoutMs: number): Promise<PythonExtensionApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (!extension) {
    return undefined;
  }
  if (extension.isActive) {
    return extension.exports;
  }
  // Do not let a slow or broken Python extension hold up our server.
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs));
  try {
    return await Promise.race([Promise.resolve(extension.activate()), timeout]);
  } catch {
    return undefined;
  }
}

/** The selected interpreter's path for `resource`, or undefined. Never throws. */
export async function selectedInterpreter(resource: vscode.Uri | undefined, timeoutMs = 5000): Promise<string | undefined> {
  try {
    const python = await api(timeoutMs);
    const environments = python?.environments;
    if (environments) {
      const active = environments.getActiveEnvironmentPath(resource);
      const resolved = await environments.resolveEnvironment(active);
      const executable = resolved?.executable?.uri?.fsPath;
      if (executable) {
        return executable;
      }
      if (active?.path && /python[0-9.]*(\.exe)?$/i.test(active.path)) {
        return active.path;
      }
    }
    const command = python?.settings?.getExecutionDetails?.(resource).execCommand;
    return command && command.length === 1 ? command[0] : undefined;
  } catch {
    return undefined;
  }
}

/** Call `listener` when the user selects another interpreter. */
export function onDidChangeInterpreter(listener: () => void): vscode.Disposable {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  const event = extension?.isActive ? extension.exports?.environments?.onDidChangeActiveEnvironmentPath : undefined;
  return event ? event(() => listener()) : new vscode.Disposable(() => undefined);
}
