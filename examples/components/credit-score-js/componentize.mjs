// Builds a component from one ES module with componentize-js:
//
//   node componentize.mjs SOURCE.js WIT_FILE WORLD OUT.wasm
//
// The componentize-js package is taken from $COMPONENTIZE_JS_DIR (build.sh
// installs package.json + package-lock.json of this directory into a cache
// and points it there). With COMPONENTIZE_JS_WASI=none (build.sh's default)
// every WASI feature is disabled, so the component imports nothing but what
// its world imports; with COMPONENTIZE_JS_WASI=stdio, 'stdio' stays (an
// uncaught exception's message then goes to stderr, at the price of 14 WASI
// imports: see ../README.md).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// Without 'stdio', an uncaught exception is reported by nothing but a bare trap
// (componentize-js's README); without 'random', Math.random() is deterministic;
// without 'clocks', Date.now() and timers do not work. The examples use none.
const WITHOUT_STDIO = ['random', 'clocks', 'http', 'fetch-event'];
const wasi = process.env.COMPONENTIZE_JS_WASI ?? 'none';
if (wasi !== 'none' && wasi !== 'stdio') {
  console.error('componentize.mjs: COMPONENTIZE_JS_WASI must be none or stdio');
  process.exit(2);
}
const DISABLED = wasi === 'stdio' ? WITHOUT_STDIO : ['stdio', ...WITHOUT_STDIO];

const [source, witPath, worldName, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node componentize.mjs SOURCE.js WIT_FILE WORLD OUT.wasm');
  process.exit(2);
}
const dir = process.env.COMPONENTIZE_JS_DIR;
if (!dir) {
  console.error('componentize.mjs: set COMPONENTIZE_JS_DIR to the installed @bytecodealliance/componentize-js');
  process.exit(2);
}
const { componentize } = await import(pathToFileURL(join(dir, 'src', 'componentize.js')).href);
const { component } = await componentize({
  sourcePath: source,
  witPath,
  worldName,
  disableFeatures: DISABLED,
});
await writeFile(out, component);
