//! Kafka principals (`User:alice`) and `ssl.principal.mapping.rules`, as
//! Kafka's `SslPrincipalMapper` applies them to a client certificate's
//! subject, written the way Java's `X500Principal.getName()` writes it
//! (RFC 2253: the most specific name first, `CN=alice,OU=eng,O=acme`).
use regex::Regex;
use std::fmt;
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A Kafka principal: its type (always `User` so far) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: "User".to_string(),
            name: name.into(),
        }
    }

    /// Who an unauthenticated connection is, as in Kafka.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PrincipalMappingError {
    #[error("ssl.principal.mapping.rules: {0}")]
    BadRules(String),
    #[error("no ssl.principal.mapping.rules rule matches {0}")]
    NoMatchingRule(String),
    #[error("the client certificate cannot be read: {0}")]
    BadCertificate(String),
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// The whole subject, unchanged.
    Default,
    /// `RULE:pattern/replacement/[LU]`: applies when `pattern` matches the
    /// whole subject.
    Replace {
        whole: Regex,
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// The parsed rules, tried in order; the first that yields a name wins.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

impl SslPrincipalMapper {
    pub fn parse(text: &str) -> Result<SslPrincipalMapper, PrincipalMappingError> {
        let mut rules = Vec::new();
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (rule, after) = parse_replace_rule(after)?;
                rules.push(rule);
                rest = after;
            } else {
                return Err(PrincipalMappingError::BadRules(format!(
                    "cannot read {rest:?}"
                )));
            }
            if !(rest.is_empty() || rest.starts_with(',') || rest.starts_with(char::is_whitespace))
            {
                return Err(PrincipalMappingError::BadRules(format!(
                    "unexpected {rest:?}"
                )));
            }
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(SslPrincipalMapper { rules })
    }

    /// The principal name of the subject `dn` (RFC 2253 form).
    pub fn name_of(&self, dn: &str) -> Result<String, PrincipalMappingError> {
        for rule in &self.rules {
            let name = match rule {
                Rule::Default => dn.to_string(),
                Rule::Replace {
                    whole,
                    pattern,
                    replacement,
                    case,
                } => {
                    if !whole.is_match(dn) {
                        continue;
                    }
                    let replaced = pattern.replace_all(dn, replacement.as_str()).into_owned();
                    match case {
                        Case::Keep => replaced,
                        Case::Lower => replaced.to_lowercase(),
                        Case::Upper => replaced.to_uppercase(),
                    }
                }
            };
            if !name.is_empty() {
                return Ok(name);
            }
        }
        Err(PrincipalMappingError::NoMatchingRule(dn.to_string()))
    }

    /// The principal of a client that presented `certificate` (DER).
    pub fn principal_of(&self, certificate: &[u8]) -> Result<Principal, PrincipalMappingError> {
        Ok(Principal::user(
            self.name_of(&subject_rfc2253(certificate)?)?,
        ))
    }
}

/// `pattern/replacement/[LU]` up to the end of the rule.
fn parse_replace_rule(text: &str) -> Result<(Rule, &str), PrincipalMappingError> {
    let bad = |m: &str| PrincipalMappingError::BadRules(m.to_string());
    let (pattern, rest) =
        until_unescaped_slash(text).ok_or_else(|| bad("RULE: without its closing /"))?;
    let (replacement, rest) =
        until_unescaped_slash(rest).ok_or_else(|| bad("RULE: without its closing /"))?;
    let (case, rest) = match rest.chars().next() {
        Some('L') => (Case::Lower, &rest[1..]),
        Some('U') => (Case::Upper, &rest[1..]),
        _ => (Case::Keep, rest),
    };
    let compile =
        |p: &str| Regex::new(p).map_err(|e| PrincipalMappingError::BadRules(e.to_string()));
    let rule = Rule::Replace {
        whole: compile(&format!("^(?:{pattern})$"))?,
        pattern: compile(&pattern)?,
        replacement: java_replacement(&replacement),
        case,
    };
    Ok((rule, rest))
}

/// The text up to the next `/` not escaped as `\/` (unescaped), and what
/// follows that slash.
fn until_unescaped_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references in Rust's regex syntax (`${1}`), with `\$`
/// a literal dollar.
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The subject of a DER certificate as Java's RFC 2253 form writes it.
pub fn subject_rfc2253(certificate: &[u8]) -> Result<String, PrincipalMappingError> {
    let (_, cert) = X509Certificate::from_der(certificate)
        .map_err(|e| PrincipalMappingError::BadCertificate(e.to_string()))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for attribute in rdn.iter() {
            let oid = attribute.attr_type().to_id_string();
            let value = match attribute.as_str() {
                Ok(text) => escape_rfc2253(text),
                Err(_) => format!("#{}", hex(attribute.attr_value().as_bytes())),
            };
            parts.push(match keyword(&oid) {
                Some(keyword) => format!("{keyword}={value}"),
                None => format!("{oid}={value}"),
            });
        }
        rdns.push(parts.join("+"));
    }
    // The certificate holds the least specific name first; RFC 2253 writes
    // the most specific first.
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The attribute keywords Java's RFC 2253 form uses; others print as OIDs.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DN: &str = "CN=alice,OU=ServiceUsers,O=Acme,C=US";

    #[test]
    fn default_is_the_whole_subject() {
        let m = SslPrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(m.name_of(DN).unwrap(), DN);
        assert_eq!(
            SslPrincipalMapper::parse("").unwrap().name_of(DN).unwrap(),
            DN
        );
    }

    #[test]
    fn kafka_style_rules_with_case_and_fallback() {
        // The example of Kafka's documentation, in spirit.
        let rules = r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT";
        let m = SslPrincipalMapper::parse(rules).unwrap();
        assert_eq!(m.name_of(DN).unwrap(), "alice");
        assert_eq!(
            m.name_of("CN=Bob,OU=Eng,O=Acme,L=Paris,ST=IDF,C=FR")
                .unwrap(),
            "bob@eng"
        );
        assert_eq!(m.name_of("CN=carol,O=Other").unwrap(), "CN=carol,O=Other");
        let upper = SslPrincipalMapper::parse(r"RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(upper.name_of(DN).unwrap(), "ALICE");
        assert!(matches!(
            upper.name_of("OU=nobody"),
            Err(PrincipalMappingError::NoMatchingRule(_))
        ));
    }

    #[test]
    fn escaped_slashes_and_bad_rules() {
        let m = SslPrincipalMapper::parse(r"RULE:^CN=([^,]*),.*$/team\/$1/").unwrap();
        assert_eq!(m.name_of(DN).unwrap(), "team/alice");
        for bad in ["RULE:^CN=(.*)$/$1", "NOPE", "RULE:(/x/", "DEFAULTX"] {
            assert!(SslPrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_escaped_as_rfc_2253_asks() {
        assert_eq!(escape_rfc2253("Acme, Inc."), r"Acme\, Inc.");
        assert_eq!(escape_rfc2253("#1 "), r"\#1\ ");
        assert_eq!(java_replacement(r"$1x\$2"), "${1}x$$2");
    }

    #[test]
    fn a_certificate_subject_reads_most_specific_first() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
        let mut params = CertificateParams::default();
        // Encoded in this order: least specific first.
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "ServiceUsers");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dn = subject_rfc2253(cert.der()).unwrap();
        assert_eq!(dn, r"CN=alice,OU=ServiceUsers,O=Acme\, Inc.,C=US");
        let rules = SslPrincipalMapper::parse(r"RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/").unwrap();
        assert_eq!(
            rules.principal_of(cert.der()).unwrap().to_string(),
            "User:alice"
        );
        assert!(subject_rfc2253(b"not a certificate").is_err());
    }
}
