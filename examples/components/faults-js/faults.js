// Misbehaving functions of `sealbox:faults/faults@0.1.0` (../wit/faults.wit), in
// JavaScript, for the runtime's tests: an uncaught exception, an endless loop,
// and allocation without bound. Built by ../build.sh with
// ../credit-score-js/componentize.mjs.

// Kept at module level so nothing allocated by `hog` can be collected.
const held = [];

const MIB = 1 << 20;

// `raise-error` returns a plain string, not a result: the exception is
// uncaught, and the component traps.
export function raiseError(message) {
  throw new Error(message);
}

export function spin() {
  let n = 0n;
  for (;;) {
    n = (n + 1n) & 0xffff_ffff_ffff_ffffn;
  }
}

export function hog(megabytes) {
  while (megabytes === 0 || held.length < megabytes) {
    // fill() touches every byte, so the pages are really used.
    held.push(new Uint8Array(MIB).fill(held.length & 0xff));
  }
  return held.length;
}
