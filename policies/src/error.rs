//! 策略加载错误: why a policy directory was refused.
//!
//! Every error names the file it came from and, for Cedar sources, the line and column (Cedar's
//! byte offsets are mapped back to the file they were parsed from); for TOML files, the key path.
//! Errors carry no personal data: policy sources, profiles and standards hold none.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem at a place in a Cedar source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The file, as given to the loader (directory joined with the file name).
    pub file: PathBuf,
    /// 1-based line; 0 when Cedar gave no location.
    pub line: usize,
    /// 1-based column (in characters); 0 when Cedar gave no location.
    pub column: usize,
    /// Cedar's message, with its help text when it has one.
    pub message: String,
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why a policy directory, a profile or a standards file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A required file or directory is missing or empty.
    #[error("{}: {what}", path.display())]
    Missing { path: PathBuf, what: String },
    /// Cedar sources that do not parse, do not validate against the schema (strict mode), or break
    /// the house conventions (`@id` on every policy, `@reason_zh`/`@reason_en` on every forbid).
    #[error("invalid policy set ({} problem(s)):\n{}", problems.len(), list(problems))]
    Cedar { problems: Vec<SourceProblem> },
    /// A TOML file (purpose profile or local standard) with a bad key or value.
    #[error("{}: {key}: {message}", file.display())]
    Toml {
        file: PathBuf,
        /// Dotted key path, e.g. `departments.labor[2]`.
        key: String,
        message: String,
    },
}

fn list(problems: &[SourceProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PolicyError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        PolicyError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn toml(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Toml {
            file: file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// The Cedar problems, when this is a Cedar error (empty otherwise).
    pub fn problems(&self) -> &[SourceProblem] {
        match self {
            PolicyError::Cedar { problems } => problems,
            _ => &[],
        }
    }
}

/// Map a byte offset in `src` to a 1-based (line, column in characters).
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let mut cut = offset;
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &src[..cut];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Turn a miette diagnostic from Cedar into problems located in `file` (whose text is `src`).
/// A diagnostic with several labels yields one problem per label; without a label, the fallback
/// offset is used (or line 0 when there is none).
pub(crate) fn located(
    file: &Path,
    src: &str,
    diag: &dyn miette::Diagnostic,
    fallback: Option<usize>,
) -> Vec<SourceProblem> {
    let mut message = diag.to_string();
    if let Some(help) = diag.help() {
        message.push_str(" (help: ");
        message.push_str(&help.to_string());
        message.push(')');
    }
    let offsets: Vec<usize> = diag
        .labels()
        .map(|labels| labels.map(|l| l.offset()).collect())
        .unwrap_or_default();
    let offsets = if offsets.is_empty() {
        fallback.into_iter().collect()
    } else {
        offsets
    };
    if offsets.is_empty() {
        return vec![SourceProblem {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message,
        }];
    }
    // One problem per distinct location; keep the first label only when several point at one line.
    let mut out: Vec<SourceProblem> = Vec::new();
    for off in offsets {
        let (line, column) = line_col(src, off);
        if out.iter().any(|p| p.line == line) {
            continue;
        }
        out.push(SourceProblem {
            file: file.to_owned(),
            line,
            column,
            message: message.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, offset: usize, expected: (usize, usize)) {
        assert_eq!(line_col(src, offset), expected, "{src:?} @ {offset}");
    }

    #[test]
    fn offsets_map_to_lines_and_character_columns() {
        check("abc", 0, (1, 1));
        check("abc\ndef", 4, (2, 1));
        check("abc\ndef", 6, (2, 3));
        // Chinese comment: columns count characters, not bytes.
        check("// 中文\nx", 9, (1, 6));
        check("// 中文\nx", 10, (2, 1));
        // offsets past the end clamp to the end
        check("ab", 99, (1, 3));
    }
}
