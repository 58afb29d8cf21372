//! Feeds arbitrary strings to the ticket verifier with a fixed key set. Each
//! input is tried as a whole token, and also as claims JSON that is signed
//! with the listed key first, so the fuzzer reaches the checks after the
//! signature. Whatever verifies must satisfy the documented limits.

#![no_main]

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use policy_core::ticket::{self, Claims, MAX_CLOCK_SKEW_SECONDS};

/// 2026-06-01T00:00:00Z, the clock of every verification.
const NOW: i64 = 1_780_272_000;
const MAX_TTL_HOURS: u32 = 24;
const KID: &str = "fuzz";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn keys() -> BTreeMap<String, VerifyingKey> {
    BTreeMap::from([(KID.to_string(), signing_key().verifying_key())])
}

fn check_accepted(claims: &Claims) {
    assert_eq!(claims.kid, KID);
    assert!(claims.exp > NOW, "an expired ticket verified");
    assert!(claims.iat <= NOW + MAX_CLOCK_SKEW_SECONDS, "a future ticket verified");
    assert!(claims.exp > claims.iat, "a ticket with exp <= iat verified");
    assert!(claims.exp - claims.iat <= i64::from(MAX_TTL_HOURS) * 3600, "an over-long ticket verified");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = keys();

    match ticket::verify(text, &keys, MAX_TTL_HOURS, NOW) {
        Ok(claims) => check_accepted(&claims),
        Err(error) => {
            let message = error.to_string();
            // Messages never echo the token's signature part.
            if let Some((_, signature)) = text.rsplit_once('.') {
                if signature.len() >= 16 {
                    assert!(!message.contains(signature), "message contains the signature: {message}");
                }
            }
        }
    }

    // Sign the input as claims JSON, so parsing and the time checks are reached.
    if let Ok(claims) = parse_claims(text) {
        let token = ticket::issue(&signing_key(), &claims);
        match ticket::verify(&token, &keys, MAX_TTL_HOURS, NOW) {
            Ok(verified) => {
                check_accepted(&verified);
                assert_eq!(verified, claims, "verification changed the claims");
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
});

/// Parses the input as claims JSON, with the serde rules the verifier uses,
/// and points `kid` at the fuzz key.
fn parse_claims(text: &str) -> Result<Claims, ()> {
    let mut claims: Claims = serde_json::from_str(text).map_err(|_| ())?;
    claims.kid = KID.to_string();
    Ok(claims)
}
