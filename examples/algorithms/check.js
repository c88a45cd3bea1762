// Host check of the built example modules through Node's WebAssembly API, the
// way a Sealbox runtime drives them (ABI v1): no imports, sealbox_alloc, write
// the input, call the entry, read (out_ptr << 32) | out_len from memory.
//
//   node check.js CREDIT_SCORE.wasm TEXT_REDACT.wasm TLS_TARIFF.wasm
//
// Expected outputs are derived by hand from the crates' READMEs (see the
// comments), not copied from a run; the tariff's are computed here with BigInt
// from its README's formula. Exits non-zero on the first failure.
'use strict';
const fs = require('fs');
const path = require('path');
const assert = require('assert/strict');

const inputs = path.join(__dirname, '..', 'inputs');
const [creditPath, redactPath, tariffPath] = process.argv.slice(2);
if (!creditPath || !redactPath || !tariffPath) {
  console.error('usage: node check.js CREDIT_SCORE.wasm TEXT_REDACT.wasm TLS_TARIFF.wasm');
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

// ---- tls-tariff -------------------------------------------------------------
// Tariff ABI v1 (docs/METERING.md): input 16 + 24·T + 24·E bytes, output
// 16 + 16·T bytes, little-endian. Expected units come from the README's tiers,
// computed here with exact BigInt arithmetic and clamped at 2^64 − 1.
const tariffExports = ['function bill', 'function sealbox_alloc', 'memory memory'];
const tariff = load(tariffPath, tariffExports);
const U64_MAX = (1n << 64n) - 1n;
const min = (a, b) => (a < b ? a : b);
/** Units for a tenant's first n handshakes: 2 each up to 10 000, 1 each after. */
const owed = (n) => min(2n * min(n, 10000n) + (n > 10000n ? n - 10000n : 0n), U64_MAX);
/** Units for handshakes before+1 ..= before+count. */
const expectedUnits = (before, count) => owed(min(before + count, U64_MAX)) - owed(before);

/** Encodes a batch; header words can be overridden to break it. */
function batch(tenants, events = [], header = {}) {
  const h = { version: 1, t: tenants.length, e: events.length, reserved: 0, ...header };
  const buf = Buffer.alloc(16 + 24 * tenants.length + 24 * events.length);
  buf.writeUInt32LE(h.version, 0);
  buf.writeUInt32LE(h.t, 4);
  buf.writeUInt32LE(h.e, 8);
  buf.writeUInt32LE(h.reserved, 12);
  let at = 16;
  for (const [a, b, c] of [...tenants, ...events]) {
    for (const v of [a, b, c]) {
      buf.writeBigUInt64LE(BigInt(v), at);
      at += 8;
    }
  }
  return buf;
}

/** Calls bill and decodes the answer, checking its header. */
function bill(tenants, events = [], guest = tariff) {
  const out = call(guest, 'bill', batch(tenants, events));
  assert.equal(out.length, 16 + 16 * tenants.length, 'output length');
  assert.deepEqual(
    [0, 4, 8, 12].map((at) => out.readUInt32LE(at)),
    [1, 0, tenants.length, 0],
    'header: version 1, flags 0 (no overage), T, reserved 0',
  );
  const records = [];
  for (let i = 0; i < tenants.length; i++) {
    records.push([out.readBigUInt64LE(16 + 16 * i), out.readBigUInt64LE(24 + 16 * i)]);
  }
  return records;
}

/** What bill should answer for these tenants, computed in JS. */
const expectedBill = (tenants) =>
  tenants.map(([t, before, count]) => [BigInt(t), expectedUnits(BigInt(before), BigInt(count))]);

check('tls-tariff: worked example (README), byte for byte', () => {
  // Tenant 7: f(3) − f(0) = 6. Tenant 4242: f(10 001) − f(9 999) = 20 001 − 19 998 = 3.
  // One event of tenant 7 was dropped: E = 4 < Σ count = 5; count is authoritative.
  const input = batch(
    [[7, 0, 3], [4242, 9999, 2]],
    [[7, 1, 1000], [7, 3, 3000], [4242, 10000, 3500], [4242, 10001, 4000]],
  );
  assert.equal(input.length, 16 + 2 * 24 + 4 * 24);
  const output = call(tariff, 'bill', input);
  assert.equal(
    output.toString('hex'),
    '01000000' + '00000000' + '02000000' + '00000000' +
      '0700000000000000' + '0600000000000000' +
      '9210000000000000' + '0300000000000000',
  );
});

check('tls-tariff: a batch crossing the tier boundary', () => {
  // Handshake 10 000 costs 2, handshake 10 001 costs 1.
  assert.deepEqual(bill([[1, 9999, 2]]), [[1n, 3n]]);
  assert.deepEqual(bill([[1, 9999, 2]]), expectedBill([[1, 9999, 2]]));
  assert.deepEqual(bill([[1, 0, 10001]]), [[1n, 20001n]]);
  assert.deepEqual(bill([[1, 9000, 3000]]), [[1n, 2000n + 2000n]]);
});

check('tls-tariff: two tenants, answered in the input order', () => {
  const tenants = [[0x10, 12000, 500], [0x1_0000_0000_0000n, 100, 50]];
  assert.deepEqual(bill(tenants), [[0x10n, 500n], [0x1_0000_0000_0000n, 100n]]);
  assert.deepEqual(bill(tenants), expectedBill(tenants));
});

check('tls-tariff: zero-event price query and zero count', () => {
  // E = 0: the host asks for a price (or inverts the tariff by bisection).
  assert.deepEqual(bill([[5, 5000, 20000]]), [[5n, 25000n]]);
  // count = 0 owes 0, whatever before is.
  assert.deepEqual(bill([[1, 0, 0], [2, 9999, 0], [3, U64_MAX, 0]]), [[1n, 0n], [2n, 0n], [3n, 0n]]);
  assert.deepEqual(bill([]), []);
});

check('tls-tariff: no wrap-around near 2^64', () => {
  const tenants = [[1, U64_MAX - 10001n, 5], [2, U64_MAX, U64_MAX], [3, 0, U64_MAX], [4, 1, U64_MAX]];
  assert.deepEqual(bill(tenants), [[1n, 1n], [2n, 0n], [3n, U64_MAX], [4n, U64_MAX - 2n]]);
  assert.deepEqual(bill(tenants), expectedBill(tenants));
});

check('tls-tariff: random batches and splits match the formula', () => {
  // A fixed linear congruential generator: the same cases on every run.
  let seed = 12345n;
  const rand = (n) => {
    seed = (seed * 6364136223846793005n + 1442695040888963407n) & U64_MAX;
    return (seed >> 33n) % BigInt(n);
  };
  for (let round = 0; round < 200; round++) {
    const t = Number(rand(6)) + 1;
    const tenants = [];
    let id = 0n;
    for (let i = 0; i < t; i++) {
      id += rand(1000) + 1n;
      tenants.push([id, rand(15000), rand(3000)]);
    }
    assert.deepEqual(bill(tenants), expectedBill(tenants));
    // The same handshakes, cut into batches at random, owe the same in total.
    for (const [tenant, before, count] of tenants) {
      let billed = before;
      let total = 0n;
      while (billed < before + count) {
        const n = min(rand(700), before + count - billed);
        total += bill([[tenant, billed, n]])[0][1];
        billed += n;
      }
      assert.equal(total, expectedUnits(before, count), `split ${tenant} ${before} ${count}`);
    }
  }
});

check('tls-tariff: malformed batches trap instead of answering', () => {
  const bad = [
    ['version 2', batch([[1, 0, 1]], [], { version: 2 })],
    ['reserved 1', batch([[1, 0, 1]], [], { reserved: 1 })],
    ['T too large for the length', batch([[1, 0, 1]], [], { t: 2 })],
    ['E too large for the length', batch([[1, 0, 1]], [], { e: 1 })],
    ['one byte too many', Buffer.concat([batch([[1, 0, 1]]), Buffer.from([0])])],
    ['no header', Buffer.from([1, 0, 0, 0])],
    ['empty', Buffer.alloc(0)],
    ['tenants repeated', batch([[5, 0, 1], [5, 0, 1]])],
    ['tenants descending', batch([[9, 0, 1], [3, 0, 1]])],
  ];
  for (const [what, input] of bad) {
    // A fresh instance per call, as the host runs the tariff.
    const guest = load(tariffPath, tariffExports);
    assert.throws(() => call(guest, 'bill', input), WebAssembly.RuntimeError, what);
  }
});

check('tls-tariff: 10000 calls on one instance do not grow memory', () => {
  const before = tariff.memory.buffer.byteLength;
  const tenants = [[7, 0, 3], [4242, 9999, 2]];
  for (let i = 0; i < 10000; i++) bill(tenants);
  assert.equal(tariff.memory.buffer.byteLength, before);
});

for (const name of results) console.log(`ok  ${name}`);
console.log(`${results.length} checks passed`);
