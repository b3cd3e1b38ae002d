"""Drive a running code-server with Playwright and write down what a user would see.

Run by tests/vscode/test_real_vscode.py with the Python of the Playwright venv that
tests/vscode/setup.sh made (so the project's own environment needs no Playwright):

    python driver.py PARAMS.json

PARAMS names the code-server URL, the chromium binary, the workspace and an output dir.
Each step does what a user does (command palette, keys, mouse, the Ctrl+. list), waits
(bounded) for what should appear, and records what the page shows: Problems rows, the
line under a squiggle, hover and inlay-hint text, status bar, notifications, tabs. The
test asserts on that record (OUT/observed.json); this script asserts nothing. A step that
raises is recorded with its error; every step leaves a screenshot in OUT.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Locator, Page, sync_playwright

T = TypeVar("T")
NBSP = "\u00a0"
STEP_WAIT = 30.0  # seconds one step waits for what it expects; the test's timeout is longer


def text_of(locator: Locator) -> str:
    """inner_text with the editor's non-breaking spaces as spaces."""
    try:
        return locator.inner_text(timeout=2000).replace(NBSP, " ")
    except Exception:
        return ""


def texts_of(locator: Locator) -> list[str]:
    return [text.replace(NBSP, " ") for text in locator.all_inner_texts()]


def wait_until(read: Callable[[], T], good: Callable[[T], bool], timeout: float = STEP_WAIT) -> T:
    """Read until `good` holds or the time is up; return the last reading either way."""
    end = time.monotonic() + timeout
    value = read()
    while not good(value) and time.monotonic() < end:
        time.sleep(0.2)
        value = read()
    return value


class Workbench:
    """The bits of the VS Code workbench the steps use, by what the user sees."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def status_bar(self) -> str:
        return text_of(self.page.locator("[id='workbench.parts.statusbar']"))

    def editor(self) -> Locator:
        return self.page.locator(".editor-group-container.active .monaco-editor").first

    def editor_text(self) -> str:
        """The active editor's rendered lines (inlay hints included), one per line, in order.

        Read until two readings 150 ms apart agree: while Monaco re-renders after an edit,
        a line can be in the DOM with no text for a moment (CI once read a fixed function's
        new lines as empty), and a test must judge what the user sees, not that moment.
        """
        reading = self._rendered_lines()
        for _ in range(20):
            self.page.wait_for_timeout(150)
            again = self._rendered_lines()
            if again == reading:
                break
            reading = again
        return reading

    def _rendered_lines(self) -> str:
        lines = self.editor().locator(".view-lines .view-line")
        rows: list[tuple[float, str]] = []
        for index in range(lines.count()):
            line = lines.nth(index)
            # Monaco places each line by its `top` style; DOM order is not line order, and a
            # line being re-rendered (an inlay hint arriving) has no bounding box for a moment.
            top = line.evaluate("element => parseFloat(element.style.top)")
            rows.append((float(top), text_of(line)))
        return "\n".join(text for _, text in sorted(rows))

    def squiggled_lines(self) -> list[str]:
        """The text of each editor line that has an error squiggle under it."""
        editor = self.editor()
        lines = editor.locator(".view-lines .view-line")
        boxes = []
        for index in range(lines.count()):
            box = lines.nth(index).bounding_box()
            if box:
                boxes.append((box["y"], box["height"], text_of(lines.nth(index))))
        found = []
        squiggles = editor.locator(".squiggly-error")
        for index in range(squiggles.count()):
            box = squiggles.nth(index).bounding_box()
            if not box:
                continue
            middle = box["y"] + box["height"] / 2
            for top, height, text in boxes:
                if top <= middle < top + height:
                    found.append(text)
        return found

    def problems(self) -> list[str]:
        return texts_of(self.page.locator(".markers-panel .monaco-list-row"))

    def notifications(self) -> list[dict[str, Any]]:
        toasts = self.page.locator(".notifications-toasts .notification-toast")
        out = []
        for index in range(toasts.count()):
            toast = toasts.nth(index)
            out.append(
                {
                    "text": text_of(toast.locator(".notification-list-item-message")),
                    "buttons": texts_of(toast.locator(".monaco-button")),
                }
            )
        return out

    def tabs(self) -> list[str]:
        return texts_of(self.page.locator(".tabs-container .tab .label-name"))

    def groups(self) -> int:
        return self.page.locator(".editor-group-container").count()

    def quick_input(self, text: str) -> None:
        """Type into the open quick input and accept the first row once it matches."""
        box = self.page.locator(".quick-input-widget .quick-input-box input:visible").first
        box.wait_for(state="visible", timeout=10000)
        box.fill(text)
        rows = self.page.locator(".quick-input-widget .quick-input-list .monaco-list-row:visible")
        rows.first.wait_for(state="visible", timeout=10000)
        time.sleep(0.3)  # the list filters as you type; let it settle on the match
        self.page.keyboard.press("Enter")

    def command(self, title: str) -> None:
        """Run a command from the palette (F1), as a user types it (the selection stays)."""
        self.page.keyboard.press("F1")
        self.quick_input(">" + title)

    def open_file(self, name: str) -> None:
        self.page.keyboard.press("Control+P")
        self.quick_input(name)
        wait_until(self.tabs, lambda tabs: name in tabs)
        self.focus_editor()

    def focus_editor(self) -> None:
        lines = self.editor().locator(".view-lines")
        if lines.count():
            lines.click(position={"x": 400, "y": 5}, force=True)
        self.page.keyboard.press("Escape")

    def close_all_editors(self) -> None:
        """Close every editor in every group, and wait until they are gone.

        Focus goes to an editor first: a Markdown preview is a webview, and keys pressed while
        it has the focus never reach the workbench (CI once kept the last step's tabs)."""
        for _ in range(3):
            self.focus_editor()
            self.page.keyboard.press("Control+K")
            self.page.keyboard.press("Control+W")
            if not wait_until(self.tabs, lambda tabs: not tabs, 5):
                return
        self.command("View: Close All Editors")
        wait_until(self.tabs, lambda tabs: not tabs, 5)

    def go_to_line(self, line: int) -> None:
        self.page.keyboard.press("Control+G")
        self.quick_input(f":{line}")  # Go to Line is Quick Open with its ":" prefix

    def select_lines(self, first: int, last: int) -> None:
        """Select whole lines first..last (1-based), as Shift+Down does."""
        self.go_to_line(first)
        self.page.keyboard.press("Home")
        self.page.keyboard.press("Home")  # past the indentation to column 1
        for _ in range(last - first + 1):
            self.page.keyboard.press("Shift+ArrowDown")

    def hover_over(self, target: Locator, expect: str) -> str:
        """Rest the mouse on `target`; the hover's text once it has `expect` (or at the end).

        The hover fills in parts: the diagnostic's own part at once, the server's
        textDocument/hover when it answers.
        """
        box = target.bounding_box()
        if box is None:
            return ""
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        hover = self.page.locator(".monaco-editor .monaco-hover:visible")
        return wait_until(lambda: text_of(hover.first), lambda text: expect in text, timeout=10)

    def close_hover(self) -> None:
        self.page.mouse.move(5, 5)
        self.page.keyboard.press("Escape")


def run(params: dict[str, Any]) -> dict[str, Any]:
    out = Path(params["out"])
    out.mkdir(parents=True, exist_ok=True)
    workspace = Path(params["workspace"])
    settings_file = workspace / ".vscode" / "settings.json"
    base_settings: dict[str, Any] = params["settings"]
    observed: dict[str, Any] = {"steps": {}}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=params["chromium"], args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        bench = Workbench(page)

        def step(name: str, action: Callable[[], dict[str, Any]]) -> None:
            started = time.monotonic()
            record: dict[str, Any] = {"error": None}
            try:
                record.update(action())
            except Exception:
                record["error"] = traceback.format_exc()
            record["seconds"] = round(time.monotonic() - started, 1)
            screenshot = out / f"{len(observed['steps']):02d}-{name}.png"
            try:
                page.screenshot(path=str(screenshot))
                record["screenshot"] = str(screenshot)
            except Exception as exc:
                record["screenshot"] = f"none: {exc}"
            observed["steps"][name] = record
            (out / "observed.json").write_text(json.dumps(observed, indent=2, ensure_ascii=False))

        def start() -> dict[str, Any]:
            page.goto(params["url"], timeout=60000)
            page.locator(".monaco-workbench").wait_for(timeout=60000)
            page.locator("[id='workbench.parts.statusbar']").wait_for(timeout=60000)
            bench.open_file("demo.py")
            status = wait_until(bench.status_bar, lambda s: "codeexec: session" in s, 60)
            return {"status_bar": status, "tabs": bench.tabs()}

        def keybinding_run() -> dict[str, Any]:
            # lines 10-11: `answer = 6 * 7` / `answer` -> the value 42
            bench.select_lines(10, 11)
            page.keyboard.press("Control+Alt+R")
            text = wait_until(bench.editor_text, lambda t: "→ 42" in t)
            status = wait_until(bench.status_bar, lambda s: "ran in" in s, 10)
            return {"editor_text": text, "status_bar": status}

        def palette_run() -> dict[str, Any]:
            bench.focus_editor()
            page.keyboard.press("Control+A")
            bench.command("codeexec: Run Selection")
            squiggled = wait_until(bench.squiggled_lines, bool)
            text = wait_until(bench.editor_text, lambda t: "✗ ZeroDivisionError" in t)
            status = wait_until(bench.status_bar, lambda s: "ZeroDivisionError" in s, 10)
            page.keyboard.press("Control+Shift+M")  # Problems
            problems = wait_until(bench.problems, bool, 10)
            page.keyboard.press("Control+Shift+M")  # toggles it closed again
            return {
                "squiggled_lines": squiggled,
                "editor_text": text,
                "status_bar": status,
                "problems": problems,
            }

        def hover() -> dict[str, Any]:
            bench.focus_editor()
            page.keyboard.press("Escape")
            squiggle = bench.editor().locator(".squiggly-error").first
            text = bench.hover_over(squiggle, expect="raised")
            bench.close_hover()
            return {"hover": text}

        def quick_fix_list() -> dict[str, Any]:
            bench.go_to_line(2)
            page.keyboard.press("End")
            page.keyboard.press("Control+.")
            rows = page.locator(".action-widget .monaco-list-row")
            items = wait_until(
                lambda: texts_of(rows), lambda t: any("Fix with LLM" in r for r in t), 15
            )
            page.keyboard.press("Escape")
            return {"actions": items}

        def fix() -> dict[str, Any]:
            rows = page.locator(".action-widget .monaco-list-row")
            focused_row = page.locator(".action-widget .monaco-list-row.focused")
            focused = ""
            # On a loaded machine the list can open before any row takes the focus, so the
            # arrow keys move nothing: open it again (at most three times) until they do.
            for _ in range(3):
                bench.go_to_line(2)
                page.keyboard.press("End")
                page.keyboard.press("Control+.")
                wait_until(
                    lambda: texts_of(rows), lambda t: any("Fix with LLM" in r for r in t), 15
                )
                # The rows are covered by an overlay that takes the clicks: move the focus
                # with the arrow keys to "Fix with LLM" and press Enter, as a keyboard user
                # does.
                for _ in range(20):
                    if focused_row.count() == 0:
                        page.keyboard.press("ArrowDown")
                        page.wait_for_timeout(250)
                        continue
                    focused = text_of(focused_row.first)
                    if "Fix with LLM" in focused:
                        break
                    page.keyboard.press("ArrowDown")
                if "Fix with LLM" in focused:
                    break
                page.keyboard.press("Escape")
            page.keyboard.press("Enter")
            text = wait_until(bench.editor_text, lambda t: "return 0.0" in t, 45)
            squiggled = wait_until(bench.squiggled_lines, lambda s: not s, 15)
            page.keyboard.press("Control+Shift+M")
            problems = wait_until(bench.problems, lambda p: not p, 10)
            page.keyboard.press("Control+Shift+M")
            # VS Code saves a file changed by a workspace edit (files.refactoring.autoSave):
            # shortly after the edit, not with it.
            on_disk = wait_until(
                lambda: (workspace / "demo.py").read_text(encoding="utf-8"),
                lambda text: "if count == 0" in text,
                10,
            )
            dirty = page.locator(".tabs-container .tab.active.dirty").count() > 0
            return {
                "focused_before_enter": focused,
                "editor_text": text,
                "squiggled_lines": squiggled,
                "problems": problems,
                "tab_dirty": dirty,
                "on_disk": on_disk,
            }

        def explain() -> dict[str, Any]:
            groups_before = bench.groups()
            bench.select_lines(10, 11)
            bench.command("codeexec: Explain Selection")
            tabs = wait_until(bench.tabs, lambda t: any(tab.endswith(".md") for tab in t))
            text = wait_until(bench.editor_text, lambda t: params["explain_token"] in t, 15)
            return {
                "tabs": tabs,
                "groups_before": groups_before,
                "groups_after": bench.groups(),
                "active_editor_text": text,
            }

        def explain_placements() -> dict[str, Any]:
            """Explain again (the server answers from its cache) with the other placements."""
            found: dict[str, Any] = {}
            for placement in ("preview", "active"):

                def opened(tab: str, placement: str = placement) -> bool:
                    preview = tab.startswith("Preview ")
                    return tab.endswith(".md") and preview == (placement == "preview")

                bench.close_all_editors()  # one empty group
                settings_file.write_text(
                    json.dumps({**base_settings, "codeexec.explanation.openIn": placement})
                )
                time.sleep(1.5)  # the settings file is read live, not instantly
                bench.open_file("demo.py")
                bench.select_lines(10, 11)
                bench.command("codeexec: Explain Selection")
                tabs = wait_until(bench.tabs, lambda t: any(opened(tab) for tab in t), 20)
                found[placement] = {"tabs": tabs, "groups": bench.groups()}
            settings_file.write_text(json.dumps(base_settings))
            return found

        def plot_hover() -> dict[str, Any]:
            """Run a plot by its key, then rest the mouse on its first line: the hover
            should hold the figure itself (the server embeds a data: PNG for VS Code)."""
            bench.close_all_editors()  # one group, plot.py alone
            bench.open_file("plot.py")
            bench.select_lines(1, 2)
            page.keyboard.press("Control+Alt+R")
            text = wait_until(bench.editor_text, lambda t: "figure" in t, 45)
            bench.focus_editor()
            page.keyboard.press("Escape")
            first_line = bench.editor().locator(".view-lines .view-line").first
            box = first_line.bounding_box()
            images = page.locator(".monaco-editor .monaco-hover:visible img")
            found: list[dict[str, Any]] = []
            hover_text = ""
            # The hover widget comes after editor.hover.delay; move again if it did not.
            for attempt in range(5):
                if box is not None:
                    page.mouse.move(box["x"] + 40 + attempt * 7, box["y"] + box["height"] / 2)
                found = wait_until(
                    lambda: images.evaluate_all(
                        "els => els.map(e => ({src: e.getAttribute('src') || '',"
                        " complete: e.complete, width: e.naturalWidth,"
                        " height: e.naturalHeight}))"
                    ),
                    lambda rows: any(row["complete"] and row["width"] > 0 for row in rows),
                    8,
                )
                hover_text = text_of(page.locator(".monaco-editor .monaco-hover:visible").first)
                if any(row["complete"] and row["width"] > 0 for row in found):
                    break
                bench.close_hover()
            bench.close_hover()
            return {
                "editor_text": text,
                "hover_text": hover_text,
                "images": [
                    {**row, "src": row["src"][:40], "src_length": len(row["src"])} for row in found
                ],
            }

        def settings_live() -> dict[str, Any]:
            bench.close_all_editors()  # a clean slate, one group
            settings_file.write_text(
                json.dumps({**base_settings, "codeexec.executor": "local", "codeexec.timeout": 1})
            )
            status = wait_until(bench.status_bar, lambda s: "codeexec: local" in s)
            bench.open_file("slow.py")
            bench.command("codeexec: Run File")
            text = wait_until(bench.editor_text, lambda t: "timed out" in t, 20)
            status_after = wait_until(bench.status_bar, lambda s: "timed out" in s, 5)
            return {"status_bar": status, "editor_text": text, "status_bar_after_run": status_after}

        def broken_server() -> dict[str, Any]:
            found: dict[str, Any] = {}
            for name, command in params["broken_commands"].items():
                settings_file.write_text(
                    json.dumps({**base_settings, "codeexec.server.command": command})
                )
                program: str = command[0]

                def names_program(toasts: list[dict[str, Any]], program: str = program) -> bool:
                    return any(
                        "did not start" in t["text"] and program in t["text"] for t in toasts
                    )

                toasts = wait_until(bench.notifications, names_program)
                found[name] = {"notifications": toasts, "status_bar": bench.status_bar()}
                bench.command("Notifications: Clear All Notifications")
            return found

        step("start", start)
        step("keybinding_run", keybinding_run)
        step("palette_run", palette_run)
        step("hover", hover)
        step("quick_fix_list", quick_fix_list)
        step("fix", fix)
        step("explain", explain)
        step("explain_placements", explain_placements)
        step("plot_hover", plot_hover)
        step("settings_live", settings_live)
        step("broken_server", broken_server)
        observed["console_errors"] = [
            line for line in console if line.startswith("error") and "vsda" not in line
        ][:50]
        browser.close()
    return observed


def main() -> int:
    params = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    observed = run(params)
    (Path(params["out"]) / "observed.json").write_text(
        json.dumps(observed, indent=2, ensure_ascii=False)
    )
    failed = [name for name, record in observed["steps"].items() if record["error"]]
    print(f"driver: {len(observed['steps'])} steps, failed: {failed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
