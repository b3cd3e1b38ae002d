// Bundle the extension and its one runtime dependency (vscode-languageclient) into
// dist/extension.js, so the .vsix ships one file instead of node_modules.
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");
const options = {
  entryPoints: ["src/extension.ts"],
  bundle: true,
  outfile: "dist/extension.js",
  format: "cjs",
  platform: "node",
  target: "node18",
  external: ["vscode"],
  sourcemap: true,
  sourcesContent: false,
  minify: !watch,
  keepNames: true,
  logLevel: "warning",
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
