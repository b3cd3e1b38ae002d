import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Activity, RestartPolicy, commandTitle, statusView } from "../src/activity";

function clock(start = 1000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("Activity", () => {
  it("is busy while a command is in flight; done() is idempotent", () => {
    const activity = new Activity();
    let changes = 0;
    activity.onDidChange(() => changes++);
    const done = activity.beginCommand("codeexec.run");
    assert.ok(activity.busy);
    assert.equal(activity.active()[0].title, "Running");
    done();
    done();
    assert.ok(!activity.busy);
    assert.equal(changes, 2);
  });

  it("tracks $/progress begin, report and end by token", () => {
    const t = clock();
    const activity = new Activity(t.now);
    activity.beginProgress("tok-1", "Running lines 3-5", true, "/usr/bin/python3");
    t.advance(10);
    activity.reportProgress("tok-1", "still going");
    assert.equal(activity.active()[0].message, "still going");
    assert.deepEqual(activity.cancellableTokens(), ["tok-1"]);
    activity.endProgress("tok-1");
    assert.ok(!activity.busy);
    activity.endProgress("tok-1"); // a second end is harmless
    activity.reportProgress("unknown", "x");
    assert.ok(!activity.busy);
  });

  it("lists progress (better titles) before bare commands, newest first", () => {
    const t = clock();
    const activity = new Activity(t.now);
    activity.beginCommand("codeexec.run");
    t.advance(5);
    activity.beginProgress(7, "Explaining selection", false);
    t.advance(5);
    activity.beginProgress(8, "Running cell", true);
    assert.deepEqual(
      activity.active().map((item) => item.title),
      ["Running cell", "Explaining selection", "Running"],
    );
    assert.deepEqual(activity.cancellableTokens(), [8]);
    activity.clear();
    assert.ok(!activity.busy);
  });

  it("names the server's commands", () => {
    assert.equal(commandTitle("codeexec.fix"), "Fixing");
    assert.equal(commandTitle("other.command"), "other.command");
  });
});

describe("statusView", () => {
  it("shows the executor, and restarts the session on click", () => {
    const view = statusView("session", "running", []);
    assert.equal(view.text, "$(play) codeexec: session");
    assert.equal(view.command, "codeexec.restartSession");
    assert.match(view.tooltip, /session executor/);
  });

  it("spins while something is in flight and says what", () => {
    const activity = new Activity();
    activity.beginProgress("t", "Running lines 1-3", true, "python3");
    activity.beginCommand("codeexec.run");
    const view = statusView("local", "running", activity.active(), "codeexec-lsp on PATH");
    assert.equal(view.text, "$(sync~spin) codeexec: local");
    assert.match(view.tooltip, /Running lines 1-3: python3 \(\+1 more\)/);
    assert.match(view.tooltip, /Server: codeexec-lsp on PATH/);
    assert.equal(view.command, "codeexec.restartSession");
  });

  it("offers to start a stopped server", () => {
    const view = statusView("session", "stopped", []);
    assert.equal(view.command, "codeexec.restartServer");
    assert.match(view.text, /circle-slash/);
    assert.match(statusView("session", "starting", []).text, /loading~spin/);
  });
});

describe("RestartPolicy", () => {
  it("allows 4 restarts in 3 minutes, then stops; old ones expire", () => {
    const t = clock();
    const policy = new RestartPolicy(4, 180_000, t.now);
    for (let i = 0; i < 4; i++) {
      assert.ok(policy.shouldRestart());
      t.advance(1000);
    }
    assert.ok(!policy.shouldRestart());
    t.advance(180_000);
    assert.ok(policy.shouldRestart());
    policy.reset();
    assert.ok(policy.shouldRestart());
  });
});
