/** The logic modules must load without VS Code: that is what lets `npm test` run here. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { EXTENSION_ROOT } from "./helpers";

const PURE = ["settings", "serverCommand", "ranges", "activity", "summary"];

describe("pure modules", () => {
  for (const name of PURE) {
    it(`${name} imports neither vscode nor vscode-languageclient`, () => {
      const source = fs.readFileSync(path.join(EXTENSION_ROOT, "src", `${name}.ts`), "utf8");
      const imports = [...source.matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]);
      for (const spec of imports) {
        assert.ok(spec.startsWith("./") || spec.startsWith("node:"), `${name}.ts imports ${spec}`);
      }
    });
  }
});
