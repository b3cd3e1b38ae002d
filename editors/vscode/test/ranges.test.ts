import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  DiagnosticLike,
  SERVER_COMMANDS,
  commandArguments,
  isEmptyRange,
  normalizeRange,
  pickDiagnostic,
  toWireRange,
  touches,
} from "../src/ranges";

const r = (sl: number, sc: number, el: number, ec: number) => ({
  start: { line: sl, character: sc },
  end: { line: el, character: ec },
});
const uri = "file:///proj/demo.py";

describe("commandArguments", () => {
  it("builds each server command's arguments", () => {
    const selection = r(2, 0, 5, 0);
    assert.deepEqual(commandArguments("runSelection", uri, selection), [uri, selection]);
    assert.deepEqual(commandArguments("runFile", uri, selection), [uri]);
    assert.deepEqual(commandArguments("explainSelection", uri, selection), [uri, selection]);
    assert.deepEqual(commandArguments("fixSelection", uri, selection), [uri, selection]);
    const diagnostic = { range: r(3, 4, 3, 9), message: "ZeroDivisionError: division by zero", source: "codeexec", code: "ZeroDivisionError" };
    assert.deepEqual(commandArguments("fixSelection", uri, selection, diagnostic), [uri, selection, diagnostic]);
    assert.deepEqual(commandArguments("restartSession", uri, selection), []);
  });

  it("sends a cursor as an empty range (the server runs the cell or statement there)", () => {
    const args = commandArguments("runSelection", uri, r(7, 3, 7, 3));
    assert.ok(isEmptyRange(args[1] as ReturnType<typeof r>));
  });

  it("sends plain, normalized JSON ranges", () => {
    const backwards = r(9, 2, 4, 1);
    const [, sent] = commandArguments("runSelection", uri, backwards);
    assert.deepEqual(sent, r(4, 1, 9, 2));
    assert.equal(JSON.stringify(sent), '{"start":{"line":4,"character":1},"end":{"line":9,"character":2}}');
  });

  it("maps to the server's command names", () => {
    assert.deepEqual(SERVER_COMMANDS, {
      runSelection: "codeexec.run",
      runFile: "codeexec.run",
      explainSelection: "codeexec.explain",
      fixSelection: "codeexec.fix",
      restartSession: "codeexec.restart",
    });
  });
});

describe("toWireRange", () => {
  it("rejects positions that are not non-negative integers", () => {
    assert.throws(() => toWireRange(r(-1, 0, 0, 0)), RangeError);
    assert.throws(() => toWireRange(r(0, 0.5, 0, 1)), RangeError);
  });

  it("drops extra properties", () => {
    const vscodeLike = { start: { line: 1, character: 2, extra: true }, end: { line: 1, character: 4 }, isEmpty: false };
    assert.deepEqual(toWireRange(vscodeLike), r(1, 2, 1, 4));
  });

  it("normalizes", () => {
    assert.deepEqual(normalizeRange(r(1, 5, 1, 2)), r(1, 2, 1, 5));
  });
});

describe("touches", () => {
  it("matches a cursor on any line of the diagnostic", () => {
    assert.ok(touches(r(3, 4, 4, 0), r(3, 0, 3, 0)));
    assert.ok(touches(r(3, 4, 4, 0), r(4, 0, 4, 0)));
    assert.ok(!touches(r(3, 4, 4, 0), r(5, 0, 5, 0)));
  });

  it("matches overlapping line ranges, treating an end at column 0 as the line before", () => {
    assert.ok(touches(r(3, 4, 3, 9), r(1, 0, 4, 0)));
    assert.ok(!touches(r(4, 4, 4, 9), r(1, 0, 4, 0)));
    assert.ok(touches(r(4, 0, 4, 0), r(4, 2, 4, 6)));
  });
});

describe("pickDiagnostic", () => {
  const diagnostics: DiagnosticLike[] = [
    { range: r(3, 0, 3, 5), message: "lint", source: "ruff", severity: 1 },
    { range: r(5, 0, 5, 5), message: "NameError: y", source: "codeexec", code: "NameError", severity: 1 },
    { range: r(3, 4, 3, 9), message: "warning from a run", source: "codeexec", severity: 2 },
    { range: r(3, 2, 3, 9), message: "ZeroDivisionError: division by zero", source: "codeexec", code: { value: "ZeroDivisionError" }, severity: 1 },
  ];

  it("picks this server's error on the target, errors first", () => {
    assert.deepEqual(pickDiagnostic(diagnostics, r(3, 0, 3, 0)), {
      range: r(3, 2, 3, 9),
      message: "ZeroDivisionError: division by zero",
      source: "codeexec",
      code: "ZeroDivisionError",
    });
  });

  it("ignores other sources and other lines", () => {
    assert.equal(pickDiagnostic(diagnostics, r(8, 0, 9, 0)), undefined);
    assert.equal(pickDiagnostic([diagnostics[0]], r(3, 0, 3, 0)), undefined);
  });

  it("works for a selection spanning several diagnostics: the first error by position", () => {
    assert.equal(pickDiagnostic(diagnostics, r(0, 0, 10, 0))?.message, "ZeroDivisionError: division by zero");
  });
});
