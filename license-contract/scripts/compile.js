#!/usr/bin/env node
// Compiles src/LicenseRegistry.sol with solc-js (exact version pinned in package.json) and writes the
// committed artifact artifacts/LicenseRegistry.json (abi, bytecode, deployedBytecode, method ids, settings).
//   node scripts/compile.js          write the artifact
//   node scripts/compile.js --check  compile and compare with the committed artifact; exit 1 if it differs
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
let solc;
try {
  solc = require(path.join(root, 'node_modules', 'solc'));
} catch (e) {
  console.error(`solc-js is not installed in ${root}/node_modules: run \`npm ci\` in license-contract/ (or scripts/setup).`);
  process.exit(2);
}

const CONTRACT = 'LicenseRegistry';
const SOURCE = `src/${CONTRACT}.sol`;
const ARTIFACT = path.join(root, 'artifacts', `${CONTRACT}.json`);
const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  viaIR: true,
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.methodIdentifiers'] } },
};

function compile() {
  const input = {
    language: 'Solidity',
    sources: { [SOURCE]: { content: fs.readFileSync(path.join(root, SOURCE), 'utf8') } },
    settings: SETTINGS,
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  let failed = false;
  for (const e of out.errors || []) {
    console.error(e.formattedMessage);
    if (e.severity === 'error') failed = true;
  }
  if (failed) process.exit(1);
  const c = out.contracts[SOURCE][CONTRACT];
  const artifact = {
    contractName: CONTRACT,
    sourceName: SOURCE,
    compiler: { name: 'solc-js', version: solc.version(), settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion } },
    abi: c.abi,
    bytecode: { object: '0x' + c.evm.bytecode.object },
    deployedBytecode: { object: '0x' + c.evm.deployedBytecode.object },
    methodIdentifiers: c.evm.methodIdentifiers,
  };
  return JSON.stringify(artifact, null, 1) + '\n';
}

const fresh = compile();
if (process.argv.includes('--check')) {
  let committed;
  try {
    committed = fs.readFileSync(ARTIFACT, 'utf8');
  } catch (e) {
    console.error(`missing ${path.relative(root, ARTIFACT)}: run \`node scripts/compile.js\` in license-contract/ and commit it`);
    process.exit(1);
  }
  if (committed !== fresh) {
    console.error(`${path.relative(root, ARTIFACT)} is stale: it differs from a fresh compile of ${SOURCE}.\n` +
      'Run `node scripts/compile.js` in license-contract/ and commit the artifact (the Rust bindings are generated from it).');
    process.exit(1);
  }
  console.log(`${path.relative(root, ARTIFACT)} matches a fresh compile (solc ${solc.version()})`);
} else {
  fs.mkdirSync(path.dirname(ARTIFACT), { recursive: true });
  fs.writeFileSync(ARTIFACT, fresh);
  const runtime = JSON.parse(fresh).deployedBytecode.object.length / 2 - 1;
  console.log(`wrote ${path.relative(root, ARTIFACT)} (solc ${solc.version()}, runtime code ${runtime} bytes)`);
}
