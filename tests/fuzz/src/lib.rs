//! What the fuzz targets share: the fixed test keys, a section scanner of our
//! own, a re-signer, and the structure-aware mutator of sealed files.
//!
//! Only sealed-format's public API and its documented byte layout
//! (`docs/FORMAT.md`) are used here, never its internals, so the targets keep
//! working whatever the crate's section scanner becomes.

use std::ops::Range;

use std::sync::LazyLock;

use k256::ecdsa::SigningKey;
use sealed_format::{Address, Manifest, Opened, SealOptions};
use sha2::{Digest, Sha256};

/// The journal's counter-file reader, compiled in from the runtime's source:
/// the runtime crate (wasmtime, alloy, aya, SQLite) is far too big to build
/// under the sanitizers, and this file depends on std, memmap2 and libc only.
#[path = "../../../runtime/src/journal/counter.rs"]
#[allow(dead_code, clippy::all)]
pub mod counter;

/// The tariff ABI (batch, answer, `decode`), compiled in from the runtime's
/// source for the same reason.
#[path = "../../../runtime/src/event_meter/tariff/abi.rs"]
#[allow(dead_code, clippy::all)]
pub mod tariff_abi;

/// The 8-byte Wasm module header.
pub const HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";

/// Private key bytes of the test keys (never real keys: `[n; 32]`).
pub const VENDOR: u8 = 0x11;
/// Co-signer test key.
pub const COSIGNER: u8 = 0x22;
/// Recipient test key (encrypted fixtures are sealed for it and [`OTHER_RECIPIENT`]).
pub const RECIPIENT: u8 = 0x33;
/// Second recipient.
pub const OTHER_RECIPIENT: u8 = 0x44;
/// A key that is on no recipient list and signs nothing.
pub const STRANGER: u8 = 0x55;

/// The test key `[byte; 32]`.
pub fn key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32].into()).expect("a valid scalar")
}

/// The password the keystore seeds are written with; the target tries another.
pub const KEYSTORE_PASSWORD: &str = "fuzz-right-password";

/// One section: id, the whole section's range, and the range of its contents
/// (after the size; for custom sections this includes the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sect {
    /// Section id.
    pub id: u8,
    /// Id, size and contents.
    pub whole: Range<usize>,
    /// Contents only.
    pub contents: Range<usize>,
}

/// Reads an unsigned LEB128 u32.
pub fn read_leb(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u32::from(byte & 0x7f).checked_shl(7 * i)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Appends `value` as unsigned LEB128.
pub fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Splits a module into sections (framing only); `None` when it is not framed.
pub fn sections(bytes: &[u8]) -> Option<Vec<Sect>> {
    if bytes.get(..8)? != HEADER {
        return None;
    }
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = read_leb(bytes, &mut pos)? as usize;
        let end = pos.checked_add(size).filter(|&e| e <= bytes.len())?;
        out.push(Sect {
            id,
            whole: start..end,
            contents: pos..end,
        });
        pos = end;
    }
    Some(out)
}

/// A section with id `id` and `contents`.
pub fn section(id: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    write_leb(&mut out, contents.len() as u32);
    out.extend_from_slice(contents);
    out
}

/// A custom section `name` with `payload`.
pub fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut contents = Vec::new();
    write_leb(&mut contents, name.len() as u32);
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    section(0, &contents)
}

/// The name and payload of a custom section's contents.
pub fn custom_parts(contents: &[u8]) -> Option<(&str, &[u8])> {
    let mut pos = 0;
    let len = read_leb(contents, &mut pos)? as usize;
    let end = pos.checked_add(len).filter(|&e| e <= contents.len())?;
    Some((
        std::str::from_utf8(&contents[pos..end]).ok()?,
        &contents[end..],
    ))
}

/// The `signature` section payload (docs/FORMAT.md §2) over `hash`, signed by
/// each key in order.
pub fn signature_payload(hash: &[u8; 32], keys: &[SigningKey]) -> Vec<u8> {
    let mut m = Sha256::new();
    m.update(b"wasmsig");
    m.update([1u8, 1, 1]);
    m.update(hash);
    let digest: [u8; 32] = m.finalize().into();
    let mut set = Vec::new();
    write_leb(&mut set, 1);
    set.extend_from_slice(hash);
    write_leb(&mut set, keys.len() as u32);
    for key in keys {
        let (sig, recid) = key.sign_prehash_recoverable(&digest).expect("signs");
        let address = sealed_format::Address::from_public_key(key.verifying_key());
        let mut record = Vec::new();
        write_leb(&mut record, 20);
        record.extend_from_slice(address.as_slice());
        record.push(0xEC);
        write_leb(&mut record, 65);
        record.extend_from_slice(&sig.to_bytes());
        record.push(recid.to_byte());
        write_leb(&mut set, record.len() as u32);
        set.extend_from_slice(&record);
    }
    let mut out = vec![1u8, 1, 1];
    write_leb(&mut out, 1);
    write_leb(&mut out, set.len() as u32);
    out.extend_from_slice(&set);
    out
}

/// Replaces the signature section of `sealed` (if it starts with one) by a
/// fresh one from `keys` over everything after it.
pub fn resign(sealed: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    let mut rest_start = 8.min(sealed.len());
    if let Some(secs) = sections(sealed)
        && let Some(first) = secs.first()
        && first.id == 0
        && custom_parts(&sealed[first.contents.clone()]).is_some_and(|(n, _)| n == "signature")
    {
        rest_start = first.whole.end;
    }
    let rest = &sealed[rest_start..];
    let hash: [u8; 32] = Sha256::digest(rest).into();
    let mut out = HEADER.to_vec();
    out.extend_from_slice(&custom_section(
        "signature",
        &signature_payload(&hash, keys),
    ));
    out.extend_from_slice(rest);
    out
}

/// The test keys, derived once.
pub static KEYS: LazyLock<[SigningKey; 5]> =
    LazyLock::new(|| [VENDOR, COSIGNER, RECIPIENT, OTHER_RECIPIENT, STRANGER].map(key));

/// The cached test key `[byte; 32]` (one of the five constants).
pub fn test_key(byte: u8) -> &'static SigningKey {
    let i = [VENDOR, COSIGNER, RECIPIENT, OTHER_RECIPIENT, STRANGER]
        .iter()
        .position(|&b| b == byte)
        .expect("a test key");
    &KEYS[i]
}

/// The address of a test key.
pub fn address(byte: u8) -> Address {
    Address::from_public_key(test_key(byte).verifying_key())
}

/// A small deterministic generator for the mutator's choices.
pub struct Rng(u64);

impl Rng {
    /// Seeded from libFuzzer's seed.
    pub fn new(seed: u32) -> Self {
        Self(u64::from(seed) ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// The next 64 random bits (splitmix64).
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.bits() % n as u64) as usize
        }
    }
}

/// Everything after the header, as a list of whole sections.
fn split(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    Some(
        sections(bytes)?
            .into_iter()
            .map(|s| bytes[s.whole].to_vec())
            .collect(),
    )
}

fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out
}

/// Id and contents of one whole section.
fn unframe(whole: &[u8]) -> (u8, Vec<u8>) {
    let mut pos = 1;
    let _ = read_leb(whole, &mut pos);
    (whole[0], whole[pos.min(whole.len())..].to_vec())
}

/// The index of the custom section `name`.
fn find_custom(parts: &[Vec<u8>], name: &str) -> Option<usize> {
    parts.iter().position(|p| {
        let (id, contents) = unframe(p);
        id == 0 && custom_parts(&contents).is_some_and(|(n, _)| n == name)
    })
}

/// Edits the manifest JSON in one way a vendor's tool (or an attacker) could.
fn edit_manifest(json: &mut serde_json::Value, rng: &mut Rng) {
    use serde_json::{Value, json};
    let Some(map) = json.as_object_mut() else {
        *json = json!({});
        return;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    let odd = |rng: &mut Rng| -> Value {
        match rng.below(10) {
            0 => Value::Null,
            1 => json!(0),
            2 => json!(u64::MAX),
            3 => json!(-1),
            4 => json!(""),
            5 => json!("0x"),
            6 => json!([]),
            7 => json!({}),
            8 => json!(1.5),
            _ => json!("x".repeat(rng.below(300))),
        }
    };
    match rng.below(12) {
        0 if !keys.is_empty() => {
            map.remove(&keys[rng.below(keys.len())]);
        }
        1 if !keys.is_empty() => {
            let v = odd(rng);
            map.insert(keys[rng.below(keys.len())].clone(), v);
        }
        2 => {
            map.insert("unknown_field".into(), json!(1));
        }
        3 => {
            // Rename, with the product id that goes with the new name.
            let names = ["a", "x y", " lead", "ünïcödé", "tab\there", "", "n"];
            let name = names[rng.below(names.len())].to_string() + &"z".repeat(rng.below(70));
            let vendor = map
                .get("vendor")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse::<Address>().ok())
                .unwrap_or_default();
            map.insert(
                "product_id".into(),
                json!(sealed_format::product_id(vendor, &name).to_string()),
            );
            map.insert("name".into(), json!(name));
        }
        4 => {
            let entries = map.entry("entry").or_insert(json!([]));
            if let Some(list) = entries.as_array_mut() {
                match rng.below(4) {
                    0 => list.clear(),
                    1 if !list.is_empty() => {
                        let first = list[0].clone();
                        list.push(first);
                    }
                    2 => list.push(json!("sealbox_alloc")),
                    _ => list.push(json!(["memory", "missing", "", "entry"][rng.below(4)])),
                }
            }
        }
        5 => {
            let field = ["max_memory_pages", "fuel", "deadline_ms"][rng.below(3)];
            let value = [0u64, 1, 65_536, 65_537, u64::from(u32::MAX), u64::MAX][rng.below(6)];
            if let Some(limits) = map.get_mut("limits").and_then(|l| l.as_object_mut()) {
                limits.insert(field.into(), json!(value));
            }
        }
        6 => {
            // The other signer becomes the vendor (signed by both in the seeds).
            let who = if rng.below(2) == 0 { COSIGNER } else { VENDOR };
            let k = test_key(who);
            let vendor = address(who);
            map.insert("vendor".into(), json!(vendor.to_string()));
            map.insert(
                "vendor_pubkey".into(),
                json!(hex::encode(
                    k.verifying_key().to_encoded_point(true).as_bytes()
                )),
            );
            if let Some(name) = map.get("name").and_then(|n| n.as_str()) {
                let id = sealed_format::product_id(vendor, name).to_string();
                map.insert("product_id".into(), json!(id));
            }
        }
        7 => {
            if let Some(enc) = map.get_mut("encryption").and_then(|e| e.as_object_mut()) {
                match rng.below(4) {
                    0 => {
                        if let Some(r) = enc.get_mut("recipients").and_then(|r| r.as_array_mut())
                            && !r.is_empty()
                        {
                            let i = rng.below(r.len());
                            r.remove(i);
                        }
                    }
                    1 => {
                        if let Some(r) = enc.get_mut("recipients").and_then(|r| r.as_array_mut())
                            && r.len() > 1
                        {
                            // Swap the two wrapped keys (or ephemeral keys).
                            let field = ["wrapped_key", "ephemeral_pubkey"][rng.below(2)];
                            let a = r[0][field].clone();
                            r[0][field] = r[1][field].clone();
                            r[1][field] = a;
                        }
                    }
                    2 => {
                        enc.insert(
                            "nonce".into(),
                            json!(hex::encode([rng.below(256) as u8; 12])),
                        );
                    }
                    _ => {
                        enc.insert("algorithm".into(), json!("aes-128-gcm"));
                    }
                }
            } else {
                map.insert("encryption".into(), Value::Null);
            }
        }
        8 => {
            let units = ["call", "tls_handshake", "Call", "", "a-b"];
            map.insert("unit".into(), json!(units[rng.below(units.len())]));
        }
        9 => {
            let m = ["kernel-required", "kernel-preferred", "none"];
            map.insert("metering".into(), json!(m[rng.below(m.len())]));
        }
        10 => {
            map.insert("format".into(), json!([1, 2, 0][rng.below(3)]));
        }
        _ => {
            let v = [0u64, 1, 31337, u64::MAX][rng.below(4)];
            map.insert("chain_id".into(), json!(v));
        }
    }
}

/// Sets the manifest's `code_hash` to the SHA-256 of the plaintext module
/// the sections after the manifest form (what a vendor's re-seal would do).
fn refresh_code_hash(parts: &mut [Vec<u8>]) {
    let Some(m) = find_custom(parts, "sealbox.manifest") else {
        return;
    };
    let mut module = HEADER.to_vec();
    parts[m + 1..]
        .iter()
        .for_each(|p| module.extend_from_slice(p));
    let hash = hex::encode(Sha256::digest(&module));
    with_manifest(parts, m, |json| {
        if let Some(map) = json.as_object_mut() {
            map.insert("code_hash".into(), serde_json::json!(format!("0x{hash}")));
        }
    });
}

fn with_manifest(parts: &mut [Vec<u8>], m: usize, edit: impl FnOnce(&mut serde_json::Value)) {
    let (_, contents) = unframe(&parts[m]);
    let Some((_, payload)) = custom_parts(&contents) else {
        return;
    };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    edit(&mut json);
    if let Ok(bytes) = serde_json::to_vec(&json) {
        parts[m] = custom_section("sealbox.manifest", &bytes);
    }
}

/// Signer lists the re-signer picks from (vendor first is what `seal` writes).
const SIGNER_SETS: [&[u8]; 6] = [
    &[VENDOR],
    &[VENDOR, COSIGNER],
    &[COSIGNER, VENDOR],
    &[COSIGNER],
    &[VENDOR, VENDOR],
    &[STRANGER],
];

/// Re-signs the parts (after dropping any signature section in front).
fn resign_parts(parts: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let set = SIGNER_SETS[rng.below(SIGNER_SETS.len())];
    let keys: Vec<SigningKey> = set.iter().map(|&b| test_key(b).clone()).collect();
    resign(&join(parts), &keys)
}

/// The structure-aware mutator of sealed files: flips bytes inside a section,
/// resizes, deletes, duplicates or swaps sections, edits the manifest JSON,
/// refreshes the code hash, then (most of the time) re-signs with the test
/// keys so that the mutation gets past the signature to the checks behind it.
/// Falls back to libFuzzer's own mutation (`default`) for unframed input.
pub fn mutate_sealed(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    mut default: impl FnMut(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng::new(seed);
    let Some(mut parts) = split(&data[..size]) else {
        return default(data, size, max_size);
    };
    let op = rng.below(10);
    if parts.is_empty() || op == 9 {
        return default(data, size, max_size);
    }
    let i = rng.below(parts.len());
    match op {
        0 => {
            let (id, mut c) = unframe(&parts[i]);
            if !c.is_empty() {
                let at = rng.below(c.len());
                c[at] ^= 1 << rng.below(8);
            }
            parts[i] = section(id, &c);
        }
        1 => {
            let (id, mut c) = unframe(&parts[i]);
            if rng.below(2) == 0 && !c.is_empty() {
                let cut = 1 + rng.below(c.len().min(64));
                let at = rng.below(c.len() - cut + 1);
                c.drain(at..at + cut);
            } else {
                let at = rng.below(c.len() + 1);
                let n = 1 + rng.below(16);
                let fill = (0..n).map(|_| rng.bits() as u8).collect::<Vec<_>>();
                c.splice(at..at, fill);
            }
            parts[i] = section(id, &c);
        }
        2 => {
            parts.remove(i);
        }
        3 => {
            let copy = parts[i].clone();
            let at = rng.below(parts.len() + 1);
            parts.insert(at, copy);
        }
        4 => {
            let j = rng.below(parts.len());
            parts.swap(i, j);
        }
        5 | 6 => {
            if let Some(m) = find_custom(&parts, "sealbox.manifest") {
                with_manifest(&mut parts, m, |json| edit_manifest(json, &mut rng));
            }
            if op == 6 {
                refresh_code_hash(&mut parts);
            }
        }
        7 => {
            // libFuzzer's mutation inside one code section, then a fresh code hash.
            let (id, c) = unframe(&parts[i]);
            let mut buf = c.clone();
            buf.resize(c.len() * 2 + 64, 0);
            let n = default(&mut buf, c.len(), c.len() * 2 + 64);
            buf.truncate(n);
            parts[i] = section(id, &buf);
            refresh_code_hash(&mut parts);
        }
        _ => {
            refresh_code_hash(&mut parts);
        }
    }
    let out = if rng.below(4) == 0 {
        join(&parts)
    } else {
        let unsigned: Vec<Vec<u8>> = match find_custom(&parts, "signature") {
            Some(0) => parts[1..].to_vec(),
            _ => parts,
        };
        resign_parts(&unsigned, &mut rng)
    };
    if out.len() > max_size {
        return default(data, size, max_size);
    }
    data[..out.len()].copy_from_slice(&out);
    out.len()
}

/// Splices the sections of two sealed files (a prefix of one, a suffix of the
/// other) and re-signs the result most of the time.
pub fn crossover_sealed(a: &[u8], b: &[u8], out: &mut [u8], seed: u32) -> usize {
    let mut rng = Rng::new(seed);
    let (Some(pa), Some(pb)) = (split(a), split(b)) else {
        let n = a.len().min(out.len());
        out[..n].copy_from_slice(&a[..n]);
        return n;
    };
    let mut parts: Vec<Vec<u8>> = pa[..rng.below(pa.len() + 1)].to_vec();
    parts.extend_from_slice(&pb[rng.below(pb.len() + 1)..]);
    let bytes = if rng.below(4) == 0 {
        join(&parts)
    } else {
        let unsigned: Vec<Vec<u8>> = match find_custom(&parts, "signature") {
            Some(0) => parts[1..].to_vec(),
            _ => parts,
        };
        resign_parts(&unsigned, &mut rng)
    };
    let n = bytes.len().min(out.len());
    out[..n].copy_from_slice(&bytes[..n]);
    n
}

/// Opens `data` and checks what `open` and `plaintext` promise whenever they
/// accept: the manifest is valid and re-parses to itself, the vendor signed,
/// and every key that decrypts gets the same module, hashing to `code_hash`.
/// Returns the opened module and its plaintext if some key (or none) opens it.
pub fn check_open(data: &[u8]) -> Option<(Opened<'_>, Option<Vec<u8>>)> {
    let opened = sealed_format::open(data).ok()?;
    assert_eq!(opened.sealed_len, data.len());
    opened
        .manifest
        .validate()
        .expect("open accepted a manifest that does not validate");
    assert!(opened.signers.contains(&opened.manifest.vendor));
    assert_eq!(
        Manifest::from_json(&opened.manifest_bytes).expect("open's manifest bytes re-parse"),
        opened.manifest
    );
    assert_eq!(opened.is_encrypted(), opened.manifest.encryption.is_some());
    let mut plain: Option<Vec<u8>> = None;
    for k in [None, Some(RECIPIENT), Some(OTHER_RECIPIENT), Some(STRANGER)] {
        let result = opened.plaintext(k.map(test_key));
        if k == Some(STRANGER) && opened.is_encrypted() {
            assert!(result.is_err(), "a stranger's key decrypted the module");
        }
        if let Ok(module) = result {
            assert_eq!(
                sealed_format::B256::from(<[u8; 32]>::from(Sha256::digest(&module))),
                opened.manifest.code_hash
            );
            if let Some(previous) = &plain {
                assert_eq!(previous, &module, "two keys decrypted two modules");
            }
            plain = Some(module);
        }
    }
    Some((opened, plain))
}

/// The differential check: a module `open` and `plaintext` accepted must be
/// valid Wasm, and sealing it again with the same options and keys (unless its
/// manifest lists entries off the ABI, which the runtime refuses) must give
/// a module that opens to the same manifest and code (byte for byte the same
/// file, for a plaintext module with a canonical manifest).
pub fn check_reseal(data: &[u8], opened: &Opened, module: &[u8]) {
    if let Err(e) = wasmparser::Validator::new().validate_all(module) {
        panic!("open + plaintext accepted a module wasmparser refuses: {e}");
    }
    // Re-sealing needs every signer's key: only the test keys can do it.
    let keys: Option<Vec<&SigningKey>> = opened
        .signers
        .iter()
        .map(|s| {
            [VENDOR, COSIGNER, STRANGER]
                .into_iter()
                .find(|&b| address(b) == *s)
                .map(test_key)
        })
        .collect();
    let Some(keys) = keys else { return };
    let m = &opened.manifest;
    let vendor = keys
        .iter()
        .find(|k| Address::from_public_key(k.verifying_key()) == m.vendor)
        .expect("the vendor signed");
    let cosigners: Vec<&SigningKey> = keys
        .iter()
        .copied()
        .filter(|k| Address::from_public_key(k.verifying_key()) != m.vendor)
        .collect();
    let mut opts = SealOptions::new(&m.name, &m.version, m.chain_id, m.registry);
    opts.unit = m.unit.clone();
    opts.metering = m.metering;
    opts.limits = m.limits;
    opts.entry = Some(m.entry.clone());
    opts.recipients = m
        .encryption
        .iter()
        .flat_map(|e| e.recipients.iter().map(|r| r.pubkey))
        .collect();
    opts.component = m.component.as_ref().map(|c| sealed_format::WorldSource {
        wit: c.wit.clone(),
        world: Some(c.world.clone()),
    });
    let resealed = match sealed_format::seal(module, &opts, vendor, &cosigners) {
        Ok(s) => s,
        // Entries off the ABI (hand-written manifest): `plaintext` leaves them to the runtime,
        // which refuses the module when it compiles it, before running or buying anything
        // (tests/tests/all/guest_faults.rs, manifest_entry_that_is_not_a_bytes_abi_export).
        Err(e) if e.check() == sealed_format::Check::Abi => return,
        // A component whose hand-written manifest names a world it does not implement: the
        // runtime finds the listed functions missing when it compiles it.
        Err(e) if e.check() == sealed_format::Check::World => return,
        Err(e) if e.check() == sealed_format::Check::Options && e.to_string().contains("entry") => {
            return;
        }
        Err(e) => panic!("open accepted a module that sealing it again refuses: {e}"),
    };
    let again = sealed_format::open(&resealed).expect("a fresh seal opens");
    let strip = |m: &Manifest| Manifest {
        encryption: None,
        ..m.clone()
    };
    assert_eq!(strip(&again.manifest), strip(m));
    let pubkeys = |m: &Manifest| -> Vec<_> {
        m.encryption
            .iter()
            .flat_map(|e| e.recipients.iter().map(|r| r.pubkey))
            .collect()
    };
    assert_eq!(pubkeys(&again.manifest), pubkeys(m));
    assert_eq!(again.signers.len(), opened.signers.len());
    let recipient = again.is_encrypted().then(|| {
        let own = |b: u8| k256::PublicKey::from(test_key(b).verifying_key());
        let list = pubkeys(m);
        [RECIPIENT, OTHER_RECIPIENT]
            .into_iter()
            .find(|&b| list.contains(&own(b)))
            .map(test_key)
    });
    if let Some(None) = recipient {
        return; // encrypted for keys we do not hold
    }
    assert_eq!(
        again.plaintext(recipient.flatten()).expect("decrypts"),
        module
    );
    if !opened.is_encrypted()
        && m.to_json().ok().as_deref() == Some(&opened.manifest_bytes[..])
        && again.signers == opened.signers
    {
        assert_eq!(
            resealed, data,
            "a re-seal of a canonical module is the same file"
        );
    }
}
