//! Kafka's JAAS login module entries, as its `sasl.jaas.config` keys hold
//! them (`<LoginModule class> required key="value" ...;`): the options of
//! the entry, and the user name and password a client logs in with. Read
//! for a broker's own inter-broker login, the OAUTHBEARER provider's
//! truststore, and the CLI's `--command-config`. Pure.

/// The `username` and `password` options of a JAAS login module entry,
/// `<LoginModule class> required username="u" password="p";` (values in
/// double quotes with backslash escapes, or bare words, as Kafka's
/// `JaasConfig` tokenizes them). Other options (PLAIN's `user_<name>`) are
/// ignored: users are the SCRAM credentials in the quorum.
pub fn credentials(text: &str) -> Result<(String, String), String> {
    let options = options(text)?;
    let find = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match (find("username"), find("password")) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok((u, p)),
        _ => Err("the login module needs username=\"...\" and password=\"...\"".to_string()),
    }
}

/// The `key=value` options of the first login module entry.
pub fn options(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut tokens = tokens(text)?.into_iter();
    let (Some(_class), Some(flag)) = (tokens.next(), tokens.next()) else {
        return Err("expected `<LoginModule class> required key=\"value\" ...;`".to_string());
    };
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!("{flag}: expected the control flag `required`"));
    }
    let mut options = Vec::new();
    let mut rest: Vec<String> = tokens.collect();
    if rest.last().map(String::as_str) == Some(";") {
        rest.pop();
    }
    let mut i = 0;
    while i < rest.len() {
        match (rest.get(i + 1).map(String::as_str), rest.get(i + 2)) {
            (Some("="), Some(value)) => options.push((rest[i].clone(), value.clone())),
            _ => return Err(format!("{}: expected key=\"value\"", rest[i])),
        }
        i += 3;
    }
    Ok(options)
}

/// Words, quoted strings, `=` and `;`.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' | ';' => {
                tokens.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("an unterminated quoted value".to_string()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("an unterminated quoted value".to_string()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(value);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_entries_give_the_user_and_password() {
        assert_eq!(
            credentials(
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="p\"w;x";"#
            ),
            Ok(("broker".to_string(), "p\"w;x".to_string()))
        );
        assert_eq!(
            credentials(
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="s" user_admin="s" user_alice="a";"#
            ),
            Ok(("admin".to_string(), "s".to_string()))
        );
        assert!(credentials(r#"X required username="a";"#).is_err());
        assert!(credentials(r#"X required username="a" password="unterminated;"#).is_err());
        assert!(credentials("X banana username=a password=b;").is_err());
        assert!(credentials("").is_err());
    }
}
