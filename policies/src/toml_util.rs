//! Small helpers for reading validated TOML by hand, so that every error names the file and the
//! exact key path (`ask.labor[2]`), which serde's messages do not.

use std::path::Path;

use toml::{Table, Value};

use crate::error::PolicyError;

/// Parse a TOML file into a table; a syntax error names the file and TOML's line and column.
pub(crate) fn parse(file: &Path, src: &str) -> Result<Table, PolicyError> {
    src.parse::<Table>().map_err(|e| {
        let key = match e.span() {
            Some(span) => {
                let (line, col) = crate::error::line_col(src, span.start);
                format!("line {line}, column {col}")
            }
            None => "(document)".into(),
        };
        PolicyError::toml(file, key, format!("TOML syntax: {}", e.message()))
    })
}

/// Refuse keys outside `allowed`.
pub(crate) fn only_keys(
    file: &Path,
    prefix: &str,
    table: &Table,
    allowed: &[&str],
) -> Result<(), PolicyError> {
    for k in table.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(PolicyError::toml(
                file,
                join(prefix, k),
                format!("unknown key (allowed: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(crate) fn required<'a>(
    file: &Path,
    prefix: &str,
    table: &'a Table,
    key: &str,
) -> Result<&'a Value, PolicyError> {
    table
        .get(key)
        .ok_or_else(|| PolicyError::toml(file, join(prefix, key), "required key is missing"))
}

pub(crate) fn table<'a>(file: &Path, key: &str, v: &'a Value) -> Result<&'a Table, PolicyError> {
    v.as_table().ok_or_else(|| {
        PolicyError::toml(file, key, format!("must be a table, got {}", v.type_str()))
    })
}

pub(crate) fn string<'a>(file: &Path, key: &str, v: &'a Value) -> Result<&'a str, PolicyError> {
    v.as_str().ok_or_else(|| {
        PolicyError::toml(file, key, format!("must be a string, got {}", v.type_str()))
    })
}

pub(crate) fn boolean(file: &Path, key: &str, v: &Value) -> Result<bool, PolicyError> {
    v.as_bool().ok_or_else(|| {
        PolicyError::toml(
            file,
            key,
            format!("must be true or false, got {}", v.type_str()),
        )
    })
}

/// An integer in `min..=max`.
pub(crate) fn int(
    file: &Path,
    key: &str,
    v: &Value,
    min: i64,
    max: i64,
) -> Result<i64, PolicyError> {
    let n = v.as_integer().ok_or_else(|| {
        PolicyError::toml(
            file,
            key,
            format!("must be an integer, got {}", v.type_str()),
        )
    })?;
    if n < min || n > max {
        return Err(PolicyError::toml(
            file,
            key,
            format!("{n} is out of range {min}..={max}"),
        ));
    }
    Ok(n)
}

/// An array of strings, each returned with its key path (`prefix[i]`).
pub(crate) fn strings<'a>(
    file: &Path,
    key: &str,
    v: &'a Value,
) -> Result<Vec<(String, &'a str)>, PolicyError> {
    let arr = v.as_array().ok_or_else(|| {
        PolicyError::toml(
            file,
            key,
            format!("must be an array of strings, got {}", v.type_str()),
        )
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            let k = format!("{key}[{i}]");
            let s = string(file, &k, item)?;
            Ok((k, s))
        })
        .collect()
}
