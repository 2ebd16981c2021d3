//! The server's credentials file: which login ID owns which key.
//!
//! Format (documented in natlens-server(1) under `--credentials`): one `ID KEY` pair per line,
//! separated by whitespace; blank lines and lines starting with `#` are ignored. The ID follows
//! the login-ID rules (1 to 64 printable bytes, no spaces); the key is any non-empty run of
//! printable characters without spaces. A malformed line is an error naming its line number, so
//! an operator never runs with half a file.
//!
//! Keys are turned into HMAC keys the RFC 8489 §9.2.2 long-term way,
//! MD5(ID ":" realm ":" key), so a standard STUN library can speak to the server with the same
//! file entry.

use std::collections::HashMap;
use std::fmt;

use crate::wire::integrity;
use crate::wire::natlens::validate_name;

/// The realm every natlens server announces. One fixed value: credentials are per server (a
/// call is authenticated at the caller's own server), so a realm per deployment would only make
/// the key derivation depend on one more setting to get wrong.
pub const REALM: &str = "natlens";

/// ID → key, as read from a credentials file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

// Keys never reach logs, not even in a debug print.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({} IDs)", self.keys.len())
    }
}

/// A malformed credentials file: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for CredentialsError {}

impl Credentials {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, CredentialsError> {
        let mut keys = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |problem: String| CredentialsError {
                line: index + 1,
                problem,
            };
            let mut fields = line.split_whitespace();
            let (Some(id), Some(key), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(fail(
                    "expected `ID KEY` (two fields separated by spaces)".into(),
                ));
            };
            validate_name(id).map_err(|_| {
                fail(format!(
                    "{id:?} is not a valid ID (1 to 64 printable bytes, no spaces)"
                ))
            })?;
            if key.chars().any(char::is_control) {
                return Err(fail(format!("the key of {id:?} has control characters")));
            }
            if keys.insert(id.to_owned(), key.to_owned()).is_some() {
                return Err(fail(format!("{id:?} is listed twice")));
            }
        }
        Ok(Credentials { keys })
    }

    /// A credentials set from pairs (tests and benches).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Credentials {
            keys: pairs
                .into_iter()
                .map(|(id, key)| (id.to_owned(), key.to_owned()))
                .collect(),
        }
    }

    /// The HMAC key for `id`, or `None` for an unknown ID.
    pub fn hmac_key(&self, id: &str) -> Option<[u8; 16]> {
        self.keys.get(id).map(|key| hmac_key(id, key))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The HMAC key both ends derive from an ID and its key (RFC 8489 §9.2.2 long-term key).
pub fn hmac_key(id: &str, key: &str) -> [u8; 16] {
    integrity::long_term_key(id, REALM, key)
}

/// Reads a client's key file: the first non-blank, non-comment line, trimmed. A file rather
/// than a flag value, so the key never shows in `ps` or shell history.
pub fn parse_key_file(text: &str) -> Result<String, CredentialsError> {
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(CredentialsError {
                line: index + 1,
                problem: "the key has spaces or control characters".into(),
            });
        }
        return Ok(line.to_owned());
    }
    Err(CredentialsError {
        line: text.lines().count().max(1),
        problem: "no key in the file (only blank or # lines)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_comments_and_blank_lines_parses() {
        let creds =
            Credentials::parse("# operators\n\nalice  s3cret\n  bob\tother-key \n").unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds.hmac_key("alice"), Some(hmac_key("alice", "s3cret")));
        assert_eq!(creds.hmac_key("bob"), Some(hmac_key("bob", "other-key")));
        assert_eq!(creds.hmac_key("carol"), None);
        assert_ne!(hmac_key("alice", "s3cret"), hmac_key("alice", "s3creT"));
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let cases = [
            ("alice key\nbob\n", 2, "expected"),
            ("alice key extra\n", 1, "expected"),
            ("# c\n\n\u{7}bell key\n", 3, "not a valid ID"),
            ("alice key\nalice other\n", 2, "listed twice"),
            (&format!("{} key\n", "x".repeat(65)), 1, "not a valid ID"),
        ];
        for (text, line, words) in cases {
            let err = Credentials::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let creds = Credentials::from_pairs([("alice", "topsecret")]);
        assert_eq!(format!("{creds:?}"), "Credentials(1 IDs)");
    }

    #[test]
    fn key_files_take_the_first_real_line() {
        assert_eq!(parse_key_file("# mine\n\n  k3y \n").unwrap(), "k3y");
        assert_eq!(parse_key_file("\n# nothing\n").unwrap_err().line, 2);
        assert!(parse_key_file("").is_err());
    }
}
