//! SASL/OAUTHBEARER (KIP-255, RFC 7628) on the server side, as Kafka's
//! OAuthBearerValidatorCallbackHandler does it (KIP-768): the client's
//! message carries a JWT; its signature is checked against the provider's
//! keys (a JWKS), then its expiry, issuer and audience; the principal is
//! `User:` plus its subject claim. RS256/384/512 and ES256/384 are
//! accepted; `none` and HMAC algorithms never. Pure: the caller loads the
//! JWKS and gives the time.
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a token was refused (logged by the broker; the client gets
/// SASL_AUTHENTICATION_FAILED with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("the client message is not an OAUTHBEARER initial response")]
    Malformed,
    #[error("the token is not a signed JWT: {0}")]
    NotJwt(&'static str),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("no key {0:?} in the JWKS")]
    UnknownKey(Option<String>),
    #[error("the signature does not verify")]
    Signature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("issuer {0:?} is not the expected one")]
    Issuer(Option<String>),
    #[error("no expected audience in the token")]
    Audience,
    #[error("no {0} claim")]
    Subject(String),
}

/// One verification key of a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (0x04 || x || y) and the curve's name.
    Ec {
        point: Vec<u8>,
        curve: String,
    },
}

/// A JSON Web Key Set: the provider's public keys, by `kid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<(Option<String>, Key)>,
}

fn b64url(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`); keys of a type it cannot
    /// use (symmetric, other curves) are skipped, as a JWKS may carry them.
    pub fn parse(json: &str) -> Result<Jwks, String> {
        let doc: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no \"keys\" array")?;
        let mut parsed = Vec::new();
        for key in keys {
            let field = |name: &str| key.get(name).and_then(Value::as_str);
            let bytes = |name: &str| field(name).and_then(b64url);
            let kid = field("kid").map(String::from);
            let usable = match field("kty") {
                Some("RSA") => match (bytes("n"), bytes("e")) {
                    (Some(n), Some(e)) => Some(Key::Rsa { n, e }),
                    _ => None,
                },
                Some("EC") => match (field("crv"), bytes("x"), bytes("y")) {
                    (Some(curve @ ("P-256" | "P-384")), Some(x), Some(y)) => {
                        let mut point = vec![0x04];
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        Some(Key::Ec {
                            point,
                            curve: curve.to_string(),
                        })
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(k) = usable {
                parsed.push((kid, k));
            }
        }
        if parsed.is_empty() {
            return Err("no RSA or EC (P-256, P-384) key".into());
        }
        Ok(Jwks { keys: parsed })
    }

    fn key(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key),
            // Without a kid, the only key (never a guess among several).
            None if self.keys.len() == 1 => Some(&self.keys[0].1),
            None => None,
        }
    }
}

/// What a valid token must say, from KIP-768's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// `sasl.oauthbearer.expected.audience`: one of these must be in `aud`
    /// (empty: not checked).
    pub audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer` (unset: not checked).
    pub issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name` (default `sub`).
    pub subject_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds` (default 30).
    pub clock_skew_s: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            audience: Vec::new(),
            issuer: None,
            subject_claim: "sub".into(),
            clock_skew_s: 30,
        }
    }
}

/// The token of an OAUTHBEARER initial client response:
/// `n,[a=authzid],` then `\x01`-separated `key=value` pairs with
/// `auth=Bearer <token>`, ended by `\x01\x01` (RFC 7628 §3.1).
pub fn bearer_token(message: &[u8]) -> Result<&str, TokenError> {
    let text = std::str::from_utf8(message).map_err(|_| TokenError::Malformed)?;
    let rest = text.strip_prefix("n,").ok_or(TokenError::Malformed)?;
    let (_authzid, pairs) = rest.split_once(',').ok_or(TokenError::Malformed)?;
    let pairs = pairs
        .strip_prefix('\u{1}')
        .and_then(|p| p.strip_suffix("\u{1}\u{1}"))
        .ok_or(TokenError::Malformed)?;
    pairs
        .split('\u{1}')
        .find_map(|pair| pair.strip_prefix("auth="))
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::Malformed)
}

/// Who a valid token speaks for, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub subject: String,
    /// Its `exp`, in seconds since the epoch.
    pub expires_at_s: u64,
}

/// Verifies `token` at `now_s` (seconds since the epoch).
pub fn validate(
    token: &str,
    jwks: &Jwks,
    rules: &TokenRules,
    now_s: u64,
) -> Result<TokenIdentity, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::NotJwt("expected three dot-separated parts"));
    };
    let json = |part: &str| -> Result<BTreeMap<String, Value>, TokenError> {
        let bytes = b64url(part).ok_or(TokenError::NotJwt("a part is not base64url"))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| TokenError::NotJwt("a part is not a JSON object"))
    };
    let head = json(header)?;
    let alg = head.get("alg").and_then(Value::as_str).unwrap_or("none");
    let kid = head.get("kid").and_then(Value::as_str);
    let key = jwks
        .key(kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.map(String::from)))?;
    let signature = b64url(sig).ok_or(TokenError::NotJwt("the signature is not base64url"))?;
    let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
    verify(alg, key, signed, &signature)?;
    check_claims(&json(payload)?, rules, now_s)
}

fn verify(alg: &str, key: &Key, signed: &[u8], signature: &[u8]) -> Result<(), TokenError> {
    let refused = || TokenError::Algorithm(alg.to_string());
    let ok = match (alg, key) {
        ("RS256" | "RS384" | "RS512", Key::Rsa { n, e }) => {
            let params = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            signature::RsaPublicKeyComponents { n, e }
                .verify(params, signed, signature)
                .is_ok()
        }
        ("ES256", Key::Ec { point, curve }) if curve == "P-256" => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, signature)
                .is_ok()
        }
        ("ES384", Key::Ec { point, curve }) if curve == "P-384" => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(signed, signature)
                .is_ok()
        }
        _ => return Err(refused()),
    };
    ok.then_some(()).ok_or(TokenError::Signature)
}

fn check_claims(
    claims: &BTreeMap<String, Value>,
    rules: &TokenRules,
    now_s: u64,
) -> Result<TokenIdentity, TokenError> {
    let number = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_f64)
            .map(|v| v.max(0.0) as u64)
    };
    let skew = rules.clock_skew_s;
    // Kafka requires an expiry.
    let expires_at_s = match number("exp") {
        Some(exp) if exp.saturating_add(skew) > now_s => exp,
        _ => return Err(TokenError::Expired),
    };
    if number("nbf").is_some_and(|nbf| nbf > now_s.saturating_add(skew)) {
        return Err(TokenError::NotYetValid);
    }
    if let Some(expected) = &rules.issuer {
        let issuer = claims.get("iss").and_then(Value::as_str);
        if issuer != Some(expected.as_str()) {
            return Err(TokenError::Issuer(issuer.map(String::from)));
        }
    }
    if !rules.audience.is_empty() {
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences
            .iter()
            .any(|a| rules.audience.iter().any(|e| e == a))
        {
            return Err(TokenError::Audience);
        }
    }
    let subject = claims
        .get(&rules.subject_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .ok_or_else(|| TokenError::Subject(rules.subject_claim.clone()))?;
    Ok(TokenIdentity {
        subject,
        expires_at_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn enc(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An ES256 key, its JWKS, and a signer of claims.
    struct Provider {
        key: EcdsaKeyPair,
        jwks: Jwks,
    }

    impl Provider {
        fn new() -> Provider {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let point = key.public_key().as_ref();
            let jwks = format!(
                r#"{{"keys":[{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"EC","crv":"P-256","kid":"k1","x":"{}","y":"{}"}}]}}"#,
                enc(&point[1..33]),
                enc(&point[33..65])
            );
            Provider {
                key,
                jwks: Jwks::parse(&jwks).unwrap(),
            }
        }

        fn token(&self, header: &str, claims: &str) -> String {
            let signed = format!("{}.{}", enc(header.as_bytes()), enc(claims.as_bytes()));
            let sig = self
                .key
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap();
            format!("{signed}.{}", enc(sig.as_ref()))
        }
    }

    const NOW: u64 = 1_800_000_000;
    const HEADER: &str = r#"{"alg":"ES256","kid":"k1"}"#;

    #[test]
    fn a_signed_token_gives_its_subject_and_bad_ones_are_refused() {
        let p = Provider::new();
        let rules = TokenRules {
            audience: vec!["kafka".into()],
            issuer: Some("https://idp".into()),
            ..TokenRules::default()
        };
        let claims = |exp: u64, aud: &str, iss: &str| {
            format!(r#"{{"sub":"alice","exp":{exp},"aud":{aud},"iss":"{iss}"}}"#)
        };
        let good = p.token(HEADER, &claims(NOW + 60, r#"["x","kafka"]"#, "https://idp"));
        assert_eq!(
            validate(&good, &p.jwks, &rules, NOW),
            Ok(TokenIdentity {
                subject: "alice".into(),
                expires_at_s: NOW + 60
            })
        );
        let check = |token: String| validate(&token, &p.jwks, &rules, NOW).unwrap_err();
        assert_eq!(
            check(p.token(HEADER, &claims(NOW - 60, r#""kafka""#, "https://idp"))),
            TokenError::Expired
        );
        assert_eq!(
            check(p.token(HEADER, &claims(NOW + 60, r#""other""#, "https://idp"))),
            TokenError::Audience
        );
        assert!(matches!(
            check(p.token(HEADER, &claims(NOW + 60, r#""kafka""#, "evil"))),
            TokenError::Issuer(_)
        ));
        assert!(matches!(
            check(p.token(
                r#"{"alg":"ES256","kid":"k2"}"#,
                &claims(NOW + 60, r#""kafka""#, "https://idp")
            )),
            TokenError::UnknownKey(_)
        ));
        // alg none, and a tampered payload.
        let unsigned = format!(
            "{}.{}.",
            enc(br#"{"alg":"none","kid":"k1"}"#),
            enc(claims(NOW + 60, r#""kafka""#, "https://idp").as_bytes())
        );
        assert!(matches!(
            check(unsigned),
            TokenError::Algorithm(_) | TokenError::NotJwt(_)
        ));
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        parts[1] = enc(claims(NOW + 60, r#""kafka""#, "https://idp")
            .replace("alice", "admin")
            .as_bytes());
        assert_eq!(check(parts.join(".")), TokenError::Signature);
        // Absurd times are numbers like any other, never an overflow.
        let far = r#"{"sub":"alice","exp":1e300,"nbf":-5,"aud":"kafka","iss":"https://idp"}"#;
        assert_eq!(
            validate(&p.token(HEADER, far), &p.jwks, &rules, NOW),
            Ok(TokenIdentity {
                subject: "alice".into(),
                expires_at_s: u64::MAX
            })
        );
    }

    #[test]
    fn the_client_message_carries_the_token() {
        assert_eq!(
            bearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01ext=1\x01\x01"),
            Ok("t")
        );
        assert!(bearer_token(b"n,,\x01auth=Basic t\x01\x01").is_err());
        assert!(bearer_token(b"garbage").is_err());
        assert!(bearer_token(b"\x01").is_err());
    }
}
