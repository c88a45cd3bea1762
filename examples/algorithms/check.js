// Host check of the built example modules through Node's WebAssembly API, the
// way a Sealbox runtime drives them (ABI v1): no imports, sealbox_alloc, write
// the input, call the entry, read (out_ptr << 32) | out_len from memory.
//
//   node check.js CREDIT_SCORE.wasm TEXT_REDACT.wasm
//
// Expected outputs are derived by hand from the crates' READMEs (see the
// comments), not copied from a run. Exits non-zero on the first failure.
'use strict';
const fs = require('fs');
const path = require('path');
const assert = require('assert/strict');

const inputs = path.join(__dirname, '..', 'inputs');
const [creditPath, redactPath] = process.argv.slice(2);
if (!creditPath || !redactPath) {
  console.error('usage: node check.js CREDIT_SCORE.wasm TEXT_REDACT.wasm');
  process.exit(2);
}

/** Compiles a module, checks its imports and exports, and instantiates it. */
function load(file, expectedExports) {
  const module = new WebAssembly.Module(fs.readFileSync(file));
  assert.deepEqual(WebAssembly.Module.imports(module), [], `${file}: imports nothing`);
  const exports = WebAssembly.Module.exports(module)
    .map((e) => `${e.kind} ${e.name}`)
    .sort();
  assert.deepEqual(exports, expectedExports, `${file}: exact export list`);
  return new WebAssembly.Instance(module, {}).exports;
}

/** One ABI v1 call: bytes in, bytes out. */
function call(guest, entry, input) {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const ptr = guest.sealbox_alloc(bytes.length) >>> 0;
  assert.notEqual(ptr, 0, 'sealbox_alloc succeeded');
  new Uint8Array(guest.memory.buffer, ptr, bytes.length).set(bytes);
  const packed = BigInt.asUintN(64, guest[entry](ptr, bytes.length));
  const outPtr = Number(packed >> 32n);
  const outLen = Number(packed & 0xffffffffn);
  assert.ok(outPtr + outLen <= guest.memory.buffer.byteLength, 'output inside memory');
  return Buffer.from(new Uint8Array(guest.memory.buffer, outPtr, outLen));
}

const results = [];
function check(name, f) {
  f();
  results.push(name);
}

// ---- credit-score -----------------------------------------------------------
const credit = load(creditPath, ['function score', 'function sealbox_alloc', 'memory memory']);
const score = (input) => call(credit, 'score', input).toString('utf8');

check('credit-score: sample applicant', () => {
  // README, "Worked example": z = 1250 + 800 − 1312 − 600 = 138,
  // score = 575 + floor(275 × 138 / 2138) = 592 → band D; costs 1600, 1312, 600, 500.
  assert.equal(
    score(fs.readFileSync(path.join(inputs, 'applicant.json'))),
    '{"score":592,"band":"D","reasons":["short_credit_history","high_debt_to_income","late_payments"]}',
  );
});

check('credit-score: strong applicant', () => {
  // z = 1500 + 2400 − 249 = 3651 → 575 + floor(1004025 / 5651) = 752 → A, no reasons.
  assert.equal(
    score('{"income":120000,"debt":10000,"age":50,"late_payments":0,"credit_history_months":240}'),
    '{"score":752,"band":"A","reasons":[]}',
  );
});

check('credit-score: malformed and invalid input get error objects', () => {
  const cases = [
    ['{"income":48000,"debt":}', 'malformed_json', 'malformed JSON at byte 23: expected a JSON value'],
    ['', 'malformed_json', 'malformed JSON at byte 0: expected a JSON value'],
    [Buffer.from([0x7b, 0xff]), 'malformed_json', 'malformed JSON at byte 1: input is not valid UTF-8'],
    ['{"income":1,"debt":1,"age":17,"late_payments":0,"credit_history_months":0}', 'invalid_input',
      '`age` must be a whole number from 18 to 120'],
    ['{"income":1,"debt":1,"age":30,"late_payments":0}', 'invalid_input', 'missing field `credit_history_months`'],
    ['[]', 'invalid_input', 'the input must be a JSON object, found an array'],
  ];
  for (const [input, error, message] of cases) {
    assert.deepEqual(JSON.parse(score(input)), { error, message }, String(input));
  }
});

check('credit-score: deep nesting is refused, not a stack overflow', () => {
  const deep = '['.repeat(100000) + ']'.repeat(100000);
  assert.equal(JSON.parse(score(deep)).error, 'malformed_json');
});

check('credit-score: 10000 calls on one instance do not grow memory', () => {
  const before = credit.memory.buffer.byteLength;
  const input = fs.readFileSync(path.join(inputs, 'applicant.json'));
  for (let i = 0; i < 10000; i++) score(input);
  assert.equal(credit.memory.buffer.byteLength, before);
});

check('credit-score: sealbox_alloc(-1) returns 0 instead of trapping', () => {
  assert.equal(credit.sealbox_alloc(-1), 0);
  assert.equal(JSON.parse(score('{}')).error, 'invalid_input');
});

// ---- text-redact ------------------------------------------------------------
const redactor = load(redactPath, [
  'function redact',
  'function sealbox_alloc',
  'function version',
  'memory memory',
]);
const redact = (input) => call(redactor, 'redact', input);

check('text-redact: version() is 1', () => {
  assert.equal(redactor.version(), 1);
});

check('text-redact: sample letter', () => {
  // letter.expected.txt was written by hand from the README's rules.
  assert.equal(
    redact(fs.readFileSync(path.join(inputs, 'letter.txt'))).toString('utf8'),
    fs.readFileSync(path.join(inputs, 'letter.expected.txt'), 'utf8'),
  );
});

check('text-redact: bytes outside the patterns pass through', () => {
  const input = Buffer.concat([Buffer.from([0xff, 0x20]), Buffer.from('✓ +49 30 1234567 é')]);
  const expected = Buffer.concat([Buffer.from([0xff, 0x20]), Buffer.from('✓ [PHONE] é')]);
  assert.deepEqual(redact(input), expected);
  assert.equal(redact('').length, 0);
});

check('text-redact: 4 MiB input grows memory and is redacted in one call', () => {
  // "12345678901" is 11 digits with a last group of at least 4: a phone.
  const line = 'card 12345678901\n';
  const n = Math.ceil((4 << 20) / line.length);
  const out = redact(line.repeat(n)).toString('utf8');
  assert.equal(out, 'card [PHONE]\n'.repeat(n));
});

for (const name of results) console.log(`ok  ${name}`);
console.log(`${results.length} checks passed`);
