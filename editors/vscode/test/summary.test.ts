import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { summarizeFix, summarizeRun } from "../src/summary";

describe("summarizeRun", () => {
  it("summarizes each RunResult status", () => {
    assert.deepEqual(summarizeRun({ status: "ok", value: "42", duration_ms: 12.4 }), { text: "$(check) ran in 12 ms → 42", level: "info" });
    assert.deepEqual(summarizeRun({ status: "ok", duration_ms: 2500 }), { text: "$(check) ran in 2.5 s", level: "info" });
    assert.deepEqual(
      summarizeRun({ status: "error", error: { type: "ZeroDivisionError", message: "division by zero", line: 4, column: 8 } }),
      { text: "$(error) ZeroDivisionError: division by zero (line 4)", level: "error" },
    );
    assert.equal(summarizeRun({ status: "timeout", duration_ms: 30000, message: "stopped after 30 s" }).text, "$(watch) timed out in 30.0 s: stopped after 30 s");
    assert.equal(summarizeRun({ status: "limit", message: "memory limit (1024 MiB)" }).level, "warning");
    assert.equal(summarizeRun({ status: "cancelled" }).text, "$(circle-slash) cancelled");
    assert.equal(summarizeRun({ status: "internal", message: "worker died" }).level, "error");
  });

  it("keeps it to one line", () => {
    const text = summarizeRun({ status: "ok", value: "x\n".repeat(200) }).text;
    assert.ok(!text.includes("\n"));
    assert.ok(text.length < 120);
  });

  it("copes with answers that are not RunResults", () => {
    assert.equal(summarizeRun(null).level, "warning");
    assert.equal(summarizeRun({ status: 3 }).level, "warning");
  });
});

describe("summarizeFix", () => {
  it("says whether a fix was applied and verified", () => {
    assert.equal(summarizeFix({ applied: true, verified: true }).text, "$(check) fix applied and verified");
    assert.equal(summarizeFix({ applied: true, verified: false }).level, "warning");
    assert.match(summarizeFix({ applied: false, message: "nothing to fix" }).text, /no fix applied: nothing to fix/);
  });
});
