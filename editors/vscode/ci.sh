#!/usr/bin/env bash
# Build, test and package the VS Code extension: npm ci, compile, test, .vsix.
# Works offline once the npm cache has the packages (no VS Code download is needed).
# The tests against the real server run when `codeexec-lsp` is on PATH (or
# CODEEXEC_LSP_COMMAND='["python3","-m","codeexec_lsp"]'); otherwise they are skipped,
# and CODEEXEC_REQUIRE_SERVER=1 turns that skip into a failure.
set -euo pipefail
cd "$(dirname "$0")"

start=$(date +%s)
echo "+ npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "+ npm run compile"
npm run --silent compile
echo "+ npm test"
npm test
echo "+ npm run package"
npm run --silent package

vsix=$(ls -t ./*.vsix | head -n 1)
echo "+ contents of $vsix"
node -e '
const fs = require("fs");
const buf = fs.readFileSync(process.argv[1]);
// List the zip central directory: name and size of every entry.
let eocd = buf.length - 22;
while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
if (eocd < 0) { console.error("not a zip file"); process.exit(1); }
const count = buf.readUInt16LE(eocd + 10);
let offset = buf.readUInt32LE(eocd + 16);
const names = [];
for (let i = 0; i < count; i++) {
  const size = buf.readUInt32LE(offset + 24);
  const nameLength = buf.readUInt16LE(offset + 28);
  const extra = buf.readUInt16LE(offset + 30);
  const comment = buf.readUInt16LE(offset + 32);
  const name = buf.toString("utf8", offset + 46, offset + 46 + nameLength);
  names.push(name);
  console.log(String(size).padStart(10) + "  " + name);
  offset += 46 + nameLength + extra + comment;
}
const lower = names.map((name) => name.toLowerCase()); // vsce writes readme.md, LICENSE.txt
for (const wanted of ["extension/package.json", "extension/dist/extension.js", "extension/readme.md", "extension/license.txt"]) {
  if (!lower.includes(wanted)) {
    console.error("missing from the .vsix: " + wanted);
    process.exit(1);
  }
}
if (names.some((name) => name.includes("node_modules/"))) {
  console.error("node_modules must not be in the .vsix (the bundle includes what is needed)");
  process.exit(1);
}
console.log(`${count} files, ${fs.statSync(process.argv[1]).size} bytes`);
' "$vsix"
echo "editors/vscode: built, tested and packaged in $(( $(date +%s) - start )) s"
