use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::*;

/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000;
/// Secret key of RFC 8032 section 7.1, test 1.
const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5,
    0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
/// Public key of `SEED`, standard base64.
const PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
/// `issue(signing_key(), &claims())`. Ed25519 is deterministic, so a change
/// of this string means the token format changed.
const TOKEN: &str = "v1.eyJraWQiOiJqZW5raW5zLTIwMjYiLCJ1c2VyIjoiYWxpY2UiLCJlbnYiOiJwcm9kIiwiaWF0IjoxNzgwMjcxNDAwLCJleHAiOjE3ODAyNzUwMDAsImpvYl9uYW1lIjoibmlnaHRseS1ldGwiLCJqdXN0aWZpY2F0aW9uIjoiQ0hHLTEyMzQgcmVydW4gb2YgdGhlIG5pZ2h0bHkgRVRMIn0.c9u49fdsDVy46zwFsjbjSccf4fDSTesQj0P9bMsD1P7VVD41sFKNkVxCTUMcKUD2sqKJAACQ6lt7chjzOGzzAA";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&SEED)
}

fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn keys() -> BTreeMap<String, VerifyingKey> {
    BTreeMap::from([
        ("jenkins-2026".to_string(), signing_key().verifying_key()),
        ("ops".to_string(), other_key().verifying_key()),
    ])
}

fn claims() -> Claims {
    Claims {
        kid: "jenkins-2026".to_string(),
        user: "alice".to_string(),
        env: "prod".to_string(),
        iat: NOW - 600,
        exp: NOW + 3000,
        job_name: Some("nightly-etl".to_string()),
        justification: Some("CHG-1234 rerun of the nightly ETL".to_string()),
    }
}

/// Builds a token from raw claims JSON, signed with `key`.
fn token_from_json(key: &SigningKey, claims_json: &str) -> String {
    let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(claims_json));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn verify_now(token: &str) -> Result<Claims, TicketError> {
    verify(token, &keys(), 24, NOW)
}

fn error_text(token: &str) -> String {
    match verify_now(token) {
        Ok(claims) => panic!("expected an error, got {claims:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn fixed_vector_public_key() {
    assert_eq!(STANDARD.encode(signing_key().verifying_key().to_bytes()), PUBLIC_KEY);
    assert_eq!(parse_public_key(PUBLIC_KEY).unwrap(), signing_key().verifying_key());
}

#[test]
fn rfc8032_test_1_signature() {
    // Signature of the empty message from RFC 8032 section 7.1, test 1.
    let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    let signature = signing_key().sign(b"");
    let hex: String = signature.to_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(hex, expected);
}

#[test]
fn fixed_vector_token() {
    assert_eq!(issue(&signing_key(), &claims()), TOKEN);
    assert_eq!(verify_now(TOKEN), Ok(claims()));
}

#[test]
fn token_layout() {
    let parts: Vec<&str> = TOKEN.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], "v1");
    let json = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    assert_eq!(
        String::from_utf8(json).unwrap(),
        r#"{"kid":"jenkins-2026","user":"alice","env":"prod","iat":1780271400,"exp":1780275000,"job_name":"nightly-etl","justification":"CHG-1234 rerun of the nightly ETL"}"#
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);
}

#[test]
fn optional_claims_are_omitted() {
    let mut minimal = claims();
    minimal.job_name = None;
    minimal.justification = None;
    let token = issue(&signing_key(), &minimal);
    let json = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(json).unwrap(),
        r#"{"kid":"jenkins-2026","user":"alice","env":"prod","iat":1780271400,"exp":1780275000}"#
    );
    assert_eq!(verify_now(&token), Ok(minimal));
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert_eq!(verify_now(&format!("{TOKEN}\n")), Ok(claims()));
}

#[test]
fn forged_signature_is_rejected() {
    // Same claims, signed by another key that claims to be jenkins-2026.
    let forged = issue(&other_key(), &claims());
    assert_eq!(
        error_text(&forged),
        "approval ticket signature is not valid for key `jenkins-2026`: the ticket was altered or signed with \
         another key; ask for a new ticket with `guardctl ticket issue`"
    );
}

#[test]
fn tampered_claims_are_rejected() {
    let mut tampered = claims();
    tampered.user = "mallory".to_string();
    let genuine_signature = TOKEN.rsplit('.').next().unwrap();
    let claims_part = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap());
    let token = format!("v1.{claims_part}.{genuine_signature}");
    assert!(matches!(verify_now(&token), Err(TicketError::BadSignature { kid }) if kid == "jenkins-2026"));

    // A flipped signature bit fails as well.
    let mut signature = URL_SAFE_NO_PAD.decode(genuine_signature).unwrap();
    signature[10] ^= 1;
    let token = format!("{}.{}", TOKEN.rsplit_once('.').unwrap().0, URL_SAFE_NO_PAD.encode(signature));
    assert!(matches!(verify_now(&token), Err(TicketError::BadSignature { .. })));
}

#[test]
fn unknown_key_lists_known_keys() {
    let mut unknown = claims();
    unknown.kid = "laptop".to_string();
    let token = issue(&signing_key(), &unknown);
    assert_eq!(
        error_text(&token),
        "approval ticket is signed with key `laptop`, which is not in the policy's approvals.keys \
         (known keys: jenkins-2026, ops); ask for a new ticket with `guardctl ticket issue` signed with a listed key"
    );
    assert_eq!(
        verify(&token, &BTreeMap::new(), 24, NOW).unwrap_err().to_string(),
        "approval ticket is signed with key `laptop`, which is not in the policy's approvals.keys \
         (known keys: none); ask for a new ticket with `guardctl ticket issue` signed with a listed key"
    );
}

#[test]
fn expiry_is_exclusive() {
    let mut expiring = claims();
    expiring.exp = NOW;
    let token = issue(&signing_key(), &expiring);
    assert_eq!(
        error_text(&token),
        "approval ticket expired at 2026-06-01T00:00:00Z (0 s ago); ask for a new ticket with `guardctl ticket issue`"
    );
    assert_eq!(verify(&token, &keys(), 24, NOW - 1), Ok(expiring.clone()));
    assert_eq!(
        verify(&token, &keys(), 24, NOW + 90).unwrap_err(),
        TicketError::Expired { exp: NOW, now: NOW + 90 }
    );
}

#[test]
fn clock_skew_allows_five_minutes() {
    let mut early = claims();
    early.iat = NOW + 300;
    early.exp = NOW + 3600;
    assert_eq!(verify_now(&issue(&signing_key(), &early)), Ok(early.clone()));

    early.iat = NOW + 301;
    assert_eq!(
        error_text(&issue(&signing_key(), &early)),
        "approval ticket is issued at 2026-06-01T00:05:01Z, 301 s in the future, more than the 300 s allowed \
         for clock differences; check the clocks of the issuing host and this node, or ask for a new ticket \
         with `guardctl ticket issue`"
    );
}

#[test]
fn lifetime_is_limited_by_max_ttl_hours() {
    let mut long = claims();
    long.iat = NOW - 60;
    long.exp = long.iat + 24 * 3600;
    assert_eq!(verify_now(&issue(&signing_key(), &long)), Ok(long.clone()));

    long.exp += 1;
    assert_eq!(
        error_text(&issue(&signing_key(), &long)),
        "approval ticket is valid for 86401 s (exp - iat), more than the policy's max_ttl_hours of 24 h \
         (86400 s); ask for a new ticket with a shorter `guardctl ticket issue --ttl`"
    );
    // The same ticket passes a policy that allows two days.
    assert_eq!(verify(&issue(&signing_key(), &long), &keys(), 48, NOW), Ok(long));
}

#[test]
fn expiry_before_issue_is_malformed() {
    let mut backwards = claims();
    backwards.iat = NOW + 200;
    backwards.exp = NOW + 100;
    assert_eq!(
        error_text(&issue(&signing_key(), &backwards)),
        "approval ticket is malformed: its expiry time exp is not after its issue time iat; \
         ask for a new ticket with `guardctl ticket issue`"
    );
}

#[test]
fn extreme_times_do_not_overflow() {
    let mut extreme = claims();
    extreme.iat = i64::MIN;
    extreme.exp = i64::MAX;
    let error = verify_now(&issue(&signing_key(), &extreme)).unwrap_err();
    assert_eq!(error, TicketError::LifetimeTooLong { lifetime_seconds: i64::MAX, max_ttl_hours: 24 });
    assert!(verify(&issue(&signing_key(), &claims()), &keys(), 24, i64::MAX).is_err());
    assert!(verify(&issue(&signing_key(), &claims()), &keys(), u32::MAX, i64::MIN).is_err());
}

#[test]
fn malformed_tokens_say_what_is_wrong() {
    let signature = TOKEN.rsplit('.').next().unwrap();
    let hint = "ask for a new ticket with `guardctl ticket issue`";
    let cases: Vec<(String, String)> = vec![
        ("".to_string(), "expected three parts `v1.<claims>.<signature>` separated by dots".to_string()),
        ("nodots".to_string(), "expected three parts `v1.<claims>.<signature>` separated by dots".to_string()),
        ("v1.onlyone".to_string(), "expected three parts `v1.<claims>.<signature>` separated by dots".to_string()),
        (format!("{TOKEN}.extra"), "it has more than three dot-separated parts".to_string()),
        (format!("v1.***.{signature}"), "the claims part is not base64url without padding".to_string()),
        (format!("v1.e30=.{signature}"), "the claims part is not base64url without padding".to_string()),
        ("v1.e30.!!!".to_string(), "the signature part is not base64url without padding".to_string()),
        ("v1.e30.AAAA".to_string(), "the signature is 3 bytes, expected 64".to_string()),
        (
            format!("v1.{}.{signature}", URL_SAFE_NO_PAD.encode("not json")),
            "the claims are not valid ticket claims: expected ident at line 1 column 2".to_string(),
        ),
        (
            format!("v1.{}.{signature}", URL_SAFE_NO_PAD.encode(r#"{"kid":"jenkins-2026"}"#)),
            "the claims are not valid ticket claims: missing field `user` at line 1 column 22".to_string(),
        ),
        ("Bearer.x.y".to_string(), "it does not start with `v1.`".to_string()),
        ("x".repeat(9000), "it is longer than 8192 bytes".to_string()),
    ];
    for (token, problem) in cases {
        assert_eq!(
            error_text(&token),
            format!("approval ticket is malformed: {problem}; {hint}"),
            "token {:?}",
            token.get(..40).unwrap_or(&token)
        );
    }
}

#[test]
fn unknown_claim_field_is_rejected_even_when_signed() {
    let json = r#"{"kid":"jenkins-2026","user":"alice","env":"prod","iat":1780271400,"exp":1780275000,"admin":true}"#;
    let token = token_from_json(&signing_key(), json);
    let text = error_text(&token);
    assert!(
        text.starts_with("approval ticket is malformed: the claims are not valid ticket claims: unknown field `admin`"),
        "{text}"
    );
}

#[test]
fn other_versions_are_named() {
    let v2 = TOKEN.replacen("v1.", "v2.", 1);
    assert_eq!(
        error_text(&v2),
        "approval ticket has version `v2`, but only `v1` tickets are accepted; ask for a new ticket with `guardctl ticket issue`"
    );
    assert!(matches!(verify_now(&TOKEN.replacen("v1.", "V1.", 1)), Err(TicketError::Malformed { .. })));
}

#[test]
fn messages_never_contain_token_or_signature() {
    let signature = TOKEN.rsplit('.').next().unwrap();
    let claims_part = TOKEN.split('.').nth(1).unwrap();
    let mut expired = claims();
    expired.exp = NOW - 1;
    let mut bad_tokens = vec![
        issue(&other_key(), &claims()),
        issue(&signing_key(), &expired),
        format!("v1.{claims_part}.{}", &signature[..20]),
        format!("{TOKEN}.x"),
        TOKEN.replacen("v1.", "v9.", 1),
        format!("{TOKEN}xyz"),
    ];
    bad_tokens.push(TOKEN.replace('.', ""));
    for token in bad_tokens {
        let text = error_text(&token);
        let token_signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(token_signature), "{text}");
        assert!(!text.contains(signature), "{text}");
        assert!(!text.contains(claims_part), "{text}");
    }
}

#[test]
fn binding_accepts_matching_request() {
    let claims = claims();
    assert_eq!(check_binding(&claims, "alice", &["prod", "production"], Some("nightly-etl")), Ok(()));
    // Environment names compare case-insensitively and through aliases.
    assert_eq!(check_binding(&claims, "alice", &["PROD"], Some("nightly-etl")), Ok(()));
    let mut by_alias = claims.clone();
    by_alias.env = "Production".to_string();
    assert_eq!(check_binding(&by_alias, "alice", &["prod", "production"], Some("nightly-etl")), Ok(()));
    // Without job_name the ticket is valid for any job name.
    let mut any_job = claims;
    any_job.job_name = None;
    assert_eq!(check_binding(&any_job, "alice", &["prod"], None), Ok(()));
    assert_eq!(check_binding(&any_job, "alice", &["prod"], Some("whatever")), Ok(()));
}

#[test]
fn binding_rejects_other_user() {
    let error = check_binding(&claims(), "bob", &["prod"], Some("nightly-etl")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "approval ticket is for user `alice`, not `bob`; ask for a new ticket with `guardctl ticket issue --user bob`"
    );
    // User names are compared exactly.
    assert!(check_binding(&claims(), "Alice", &["prod"], Some("nightly-etl")).is_err());
}

#[test]
fn binding_rejects_other_environment() {
    let error = check_binding(&claims(), "alice", &["staging", "stage"], Some("nightly-etl")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "approval ticket is for environment `prod`, not `staging`; ask for a new ticket with `guardctl ticket issue --env staging`"
    );
}

#[test]
fn binding_rejects_other_job_name() {
    let error = check_binding(&claims(), "alice", &["prod"], Some("adhoc")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "approval ticket is for job name `nightly-etl`, but this job is named `adhoc`; set the job name with \
         `--job-name nightly-etl` or ask for a new ticket with `guardctl ticket issue`"
    );
    let error = check_binding(&claims(), "alice", &["prod"], None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "approval ticket is for job name `nightly-etl`, but this job has no name; set the job name with \
         `--job-name nightly-etl` or ask for a new ticket with `guardctl ticket issue`"
    );
}

#[test]
fn public_key_errors() {
    assert_eq!(
        parse_public_key("not base64!").unwrap_err(),
        "invalid Ed25519 public key: not standard base64 (A-Z a-z 0-9 + / with = padding)"
    );
    assert_eq!(
        parse_public_key(&STANDARD.encode([1u8; 31])).unwrap_err(),
        "invalid Ed25519 public key: decodes to 31 bytes, expected 32"
    );
    // The identity point has small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        parse_public_key(&STANDARD.encode(identity)).unwrap_err(),
        "invalid Ed25519 public key: it is a weak (small-order) key that would accept forged signatures"
    );
    assert_eq!(parse_public_key(&format!("  {PUBLIC_KEY}\n")).unwrap(), signing_key().verifying_key());
}

#[test]
fn keypair_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("approver");
    write_keypair(&out).unwrap();

    let private_mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(private_mode, 0o600);
    let public_path = dir.path().join("approver.pub");
    assert_eq!(public_key_path(&out), public_path);
    let public_text = fs::read_to_string(&public_path).unwrap();
    assert!(public_text.ends_with('\n'));
    assert_eq!(public_text.trim_end().len(), 44);

    let key = read_signing_key(&out).unwrap();
    assert_eq!(parse_public_key(&public_text).unwrap(), key.verifying_key());

    // A ticket issued with the file's key verifies with the .pub key.
    let mut claims = claims();
    claims.kid = "approver".to_string();
    let keys = BTreeMap::from([("approver".to_string(), parse_public_key(&public_text).unwrap())]);
    assert_eq!(verify(&issue(&key, &claims), &keys, 24, NOW), Ok(claims));
}

#[test]
fn keypair_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("approver");
    fs::write(&out, "precious\n").unwrap();
    let error = write_keypair(&out).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(error.to_string(), format!("`{}` already exists; remove it or choose another output path", out.display()));
    assert_eq!(fs::read_to_string(&out).unwrap(), "precious\n");

    // An existing .pub file also stops it before anything is written.
    let other = dir.path().join("second");
    fs::write(dir.path().join("second.pub"), "old\n").unwrap();
    let error = write_keypair(&other).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(!other.exists());
    assert_eq!(fs::read_to_string(dir.path().join("second.pub")).unwrap(), "old\n");
}

#[test]
fn keypair_seeds_differ() {
    let dir = tempfile::tempdir().unwrap();
    write_keypair(&dir.path().join("a")).unwrap();
    write_keypair(&dir.path().join("b")).unwrap();
    assert_ne!(fs::read(dir.path().join("a")).unwrap(), fs::read(dir.path().join("b")).unwrap());
}

#[test]
fn signing_key_file_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    fs::write(&path, format!("{}\n", STANDARD.encode(SEED))).unwrap();

    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(
        read_signing_key(&path).unwrap_err(),
        format!(
            "key file `{0}` is accessible by group or others (mode 0640); run `chmod 600 {0}`",
            path.display()
        )
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_signing_key(&path).unwrap().to_bytes(), SEED);

    fs::write(&path, "c2hvcnQ=\n").unwrap();
    assert_eq!(
        read_signing_key(&path).unwrap_err(),
        format!("key file `{}` is not a private key: it decodes to 5 bytes, expected 32", path.display())
    );
    fs::write(&path, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    assert_eq!(
        read_signing_key(&path).unwrap_err(),
        format!(
            "key file `{}` is not a private key: expected one line of base64 (from `guardctl ticket keygen`)",
            path.display()
        )
    );

    let missing = dir.path().join("missing");
    assert_eq!(
        read_signing_key(&missing).unwrap_err(),
        format!("cannot read key file `{}`: No such file or directory (os error 2)", missing.display())
    );
}
