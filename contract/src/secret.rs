//! Values that must never reach a log, an error message or a result.

use std::fmt;
use std::path::Path;

/// A credential (token, JWT, S3 key). `Debug` and `Display` print a
/// placeholder, so it can sit in any struct without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to the value: greppable, so every use is easy to review.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a credential file (a mounted Secret key), trimming the trailing
    /// newline that editors and `kubectl create secret --from-file` leave.
    /// `what` names the option the file came from, for the error message.
    pub fn from_file(path: &Path, what: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))?;
        let value = text.trim();
        if value.is_empty() {
            return Err(format!("{what} file {} is empty", path.display()));
        }
        Ok(Self::new(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("s.hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "s.hunter2");
    }

    #[test]
    fn file_is_trimmed_and_empty_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(
            Secret::from_file(&path, "--token-file").unwrap().expose(),
            "abc"
        );
        std::fs::write(&path, " \n").unwrap();
        let err = Secret::from_file(&path, "--token-file").unwrap_err();
        assert!(
            err.contains("--token-file") && err.contains("empty"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
