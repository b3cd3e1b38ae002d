import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  CLIENT_ONLY_KEYS,
  didChangeConfigurationPayload,
  executorOf,
  explanationPlacementOf,
  flattenSettings,
  isExplanationDocument,
  nestDotted,
  toServerSettings,
} from "../src/settings";
import { contributedDefaults } from "./helpers";

/** What VS Code's getConfiguration().get("codeexec") returns with nothing set by the user. */
function vscodeDefaults(): Record<string, unknown> {
  return nestDotted(contributedDefaults());
}

describe("toServerSettings", () => {
  it("maps the contributed defaults to an object the server validates without warnings", () => {
    const settings = toServerSettings(vscodeDefaults());
    assert.deepEqual(settings, {
      executor: "session",
      timeout: 30,
      memoryMb: 1024,
      maxOutputBytes: 1000000,
      maxFileMb: 512,
      maxOpenFiles: 1024,
      sandbox: "standard", // network: null is left out, so the profile decides
      hoverImages: "auto",
      envPassthrough: [],
      http: { tokenEnv: "CODEEXEC_API_TOKEN" },
      jupyter: { tokenEnv: "JUPYTER_TOKEN" },
      llm: {
        provider: "openai",
        timeout: 60,
        exclude: ["**/.env*", "**/*secret*", "**/*.pem", "**/*.key"],
      },
      fix: { verify: true, attempts: 3 },
    });
  });

  it("drops the keys only the extension reads", () => {
    const settings = toServerSettings({ server: { command: ["x"] }, trace: { server: "verbose" }, timeout: 5 });
    assert.deepEqual(settings, { timeout: 5 });
    for (const key of CLIENT_ONLY_KEYS) {
      assert.ok(!(key in settings));
    }
  });

  it("treats null, undefined and empty strings as unset", () => {
    const settings = toServerSettings({
      cpuSeconds: null,
      python: "",
      llm: { model: "", baseUrl: null, apiKeyEnv: undefined, provider: "anthropic" },
      http: { url: "", tokenEnv: "" },
    });
    assert.deepEqual(settings, { llm: { provider: "anthropic" } });
  });

  it("keeps user values, including false, 0 and empty lists, as they are", () => {
    const raw = {
      executor: "local",
      python: "/opt/py/bin/python",
      cpuSeconds: 2.5,
      timeout: 0,
      network: true,
      envPassthrough: [],
      fix: { verify: false, attempts: 1 },
      llm: { exclude: [], model: "qwen2.5-coder", baseUrl: "http://localhost:11434/v1" },
    };
    assert.deepEqual(toServerSettings(raw), raw);
  });

  it("passes keys it does not know through (a newer server may read them)", () => {
    assert.deepEqual(toServerSettings({ future: { knob: 3 } }), { future: { knob: 3 } });
  });

  it("does not share structure with its input", () => {
    const raw = { envPassthrough: ["A"], llm: { exclude: ["x"] } };
    const settings = toServerSettings(raw);
    (settings.envPassthrough as string[]).push("B");
    ((settings.llm as Record<string, unknown>).exclude as string[]).push("y");
    assert.deepEqual(raw, { envPassthrough: ["A"], llm: { exclude: ["x"] } });
  });

  it("unwraps a { codeexec: {...} } payload", () => {
    assert.deepEqual(toServerSettings({ codeexec: { timeout: 3, trace: { server: "off" } } }), { timeout: 3 });
  });

  it("answers anything that is not an object with an empty object", () => {
    for (const raw of [undefined, null, 3, "x", [1, 2], true]) {
      assert.deepEqual(toServerSettings(raw), {});
    }
  });
});

describe("didChangeConfigurationPayload", () => {
  it("wraps the mapped settings in the section, as the server's section_of expects", () => {
    assert.deepEqual(didChangeConfigurationPayload({ timeout: 9, server: { command: [] }, cpuSeconds: null }), {
      settings: { codeexec: { timeout: 9 } },
    });
  });
});

describe("nestDotted / flattenSettings", () => {
  it("round-trips the contributed settings", () => {
    const flat = contributedDefaults();
    const nested = nestDotted(flat);
    const back = flattenSettings(nested);
    assert.deepEqual(
      Object.keys(back).sort(),
      Object.keys(flat)
        .map((key) => key.slice("codeexec.".length))
        .sort(),
    );
    assert.equal((nested.llm as Record<string, unknown>).provider, "openai");
    assert.deepEqual((nested.server as Record<string, unknown>).command, []);
  });

  it("ignores keys of other sections", () => {
    assert.deepEqual(nestDotted({ "python.defaultInterpreterPath": "x", "codeexec.timeout": 3 }), { timeout: 3 });
  });
});

describe("executorOf", () => {
  it("reads the executor, defaulting to the server's default", () => {
    assert.equal(executorOf({ executor: "http" }), "http");
    assert.equal(executorOf({ executor: "" }), "session");
    assert.equal(executorOf(undefined), "session");
  });
});

describe("explanation placement", () => {
  it("defaults to beside, reads the setting, and ignores values it does not know", () => {
    assert.equal(explanationPlacementOf(vscodeDefaults()), "beside");
    assert.equal(explanationPlacementOf({ explanation: { openIn: "active" } }), "active");
    assert.equal(explanationPlacementOf({ explanation: { openIn: "preview" } }), "preview");
    assert.equal(explanationPlacementOf({ explanation: { openIn: "left" } }), "beside");
    assert.equal(explanationPlacementOf(undefined), "beside");
  });

  it("is the extension's own: not sent to the server", () => {
    assert.deepEqual(toServerSettings({ explanation: { openIn: "active" }, timeout: 3 }), { timeout: 3 });
  });

  it("recognizes the server's explanation documents and nothing else", () => {
    assert.ok(isExplanationDocument("file:///home/me/.cache/codeexec-lsp/explanations/documents/demo-lines-1-4.md"));
    assert.ok(!isExplanationDocument("file:///home/me/project/README.md"));
    assert.ok(!isExplanationDocument("https://example.com/explanations/documents/x.md"));
    assert.ok(!isExplanationDocument("file:///x/explanations/documents/demo.py"));
  });
});
