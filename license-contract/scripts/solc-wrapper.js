#!/usr/bin/env node
// Native-solc stand-in for forge, backed by solc-js (npm "solc", pinned in package.json): no native solc
// binary exists in any registry this project may use. Supports --version and --standard-json (input on
// stdin, output on stdout); other flags (--allow-paths, --base-path, --include-path, ...) are accepted and
// paths are honoured by the import callback.
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));
const args = process.argv.slice(2);

if (args.includes('--version') || args.includes('-v')) {
  // foundry-compilers takes the last non-empty line and strips "Version: "
  const v = solc.version().replace('.Emscripten.clang', '.Linux.g++');
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${v}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write(`solc-wrapper: only --version and --standard-json are supported (got: ${args.join(' ')})\n`);
  process.exit(1);
}
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') roots.push(args[++i]);
  else if (args[i].startsWith('--base-path=') || args[i].startsWith('--include-path=')) roots.push(args[i].split('=')[1]);
}
function findImports(p) {
  for (const r of [''].concat(roots)) {
    const f = r ? path.resolve(r, p) : p;
    try { return { contents: fs.readFileSync(f, 'utf8') }; } catch (_) {}
  }
  return { error: `File not found: ${p}` };
}
const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
