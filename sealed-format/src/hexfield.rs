//! Strict `0x`-prefixed lowercase hex for manifest fields, as serde adapters.
//!
//! One spelling per value: signed JSON is compared byte for byte, so the format refuses
//! upper-case digits, missing prefixes and wrong lengths instead of normalising them.

use serde::{Deserialize, Deserializer, Serializer};

/// `0x` followed by lowercase hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Parses exactly `0x` + `2 * N` lowercase hex digits.
pub(crate) fn parse_fixed<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("{text:?} does not start with 0x"))?;
    if digits.len() != 2 * N {
        return Err(format!(
            "{text:?} has {} hex digits, expected {}",
            digits.len(),
            2 * N
        ));
    }
    if !digits
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!("{text:?} is not lowercase hex"));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(out)
}

fn de_fixed<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    let text = String::deserialize(d)?;
    parse_fixed::<N>(&text).map_err(serde::de::Error::custom)
}

/// Serde adapter for [`alloy_primitives::Address`] (`0x` + 40 lowercase hex digits).
pub(crate) mod address {
    use super::*;
    use alloy_primitives::Address;

    pub fn serialize<S: Serializer>(v: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v.as_slice()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        de_fixed::<D, 20>(d).map(Address::from)
    }
}

/// Serde adapter for [`alloy_primitives::B256`] (`0x` + 64 lowercase hex digits).
pub(crate) mod b256 {
    use super::*;
    use alloy_primitives::B256;

    pub fn serialize<S: Serializer>(v: &B256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v.as_slice()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<B256, D::Error> {
        de_fixed::<D, 32>(d).map(B256::from)
    }
}

/// Serde adapter for fixed-size byte arrays.
pub(crate) mod bytes {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        de_fixed::<D, N>(d)
    }
}

/// Serde adapter for a secp256k1 public key as compressed SEC1 (`0x02…`/`0x03…`, 33 bytes).
pub(crate) mod pubkey {
    use super::*;
    use k256::PublicKey;
    use k256::elliptic_curve::sec1::ToEncodedPoint;

    pub fn serialize<S: Serializer>(v: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v.to_encoded_point(true).as_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        let bytes = de_fixed::<D, 33>(d)?;
        if bytes[0] != 0x02 && bytes[0] != 0x03 {
            return Err(serde::de::Error::custom(
                "public key is not compressed SEC1 (must start with 02 or 03)",
            ));
        }
        PublicKey::from_sec1_bytes(&bytes)
            .map_err(|_| serde::de::Error::custom("public key is not a point on secp256k1"))
    }
}

/// Deserializes an `Option` that must be present (as `null` or a value), unlike serde's default
/// of treating a missing `Option` field as `None`.
pub(crate) fn required_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fixed_is_strict() {
        assert_eq!(parse_fixed::<2>("0x0aff"), Ok([0x0a, 0xff]));
        assert!(parse_fixed::<2>("0aff").is_err());
        assert!(parse_fixed::<2>("0x0AFF").is_err());
        assert!(parse_fixed::<2>("0x0af").is_err());
        assert!(parse_fixed::<2>("0x0aff00").is_err());
        assert!(parse_fixed::<2>("0x0agf").is_err());
    }
}
