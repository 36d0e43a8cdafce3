//! Minimal CSV reading (comma-separated, optional double quotes, header row) and writing.
use crate::EvalError;
use std::path::Path;

/// Splits one CSV line; fields may be double-quoted (with `""` for a quote inside).
fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// Reads a CSV with a header. Returns, for each data row, its 1-based line number and the values
/// of the `required` columns followed by the `optional` ones (empty string when absent).
pub(crate) fn read_csv_with(
    path: &Path,
    required: &[&str],
    optional: &[&str],
) -> Result<Vec<(usize, Vec<String>)>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) =
        lines.next().ok_or_else(|| EvalError::BadTable { path: path.into(), reason: "empty file".into() })?;
    let header: Vec<String> = split_line(header.trim_start_matches('\u{feff}'))
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut cols = Vec::new();
    for name in required {
        let c = header.iter().position(|h| h == name).ok_or_else(|| EvalError::BadTable {
            path: path.into(),
            reason: format!("missing column {name:?} (header: {})", header.join(",")),
        })?;
        cols.push(Some(c));
    }
    for name in optional {
        cols.push(header.iter().position(|h| h == name));
    }
    let mut rows = Vec::new();
    for (n, line) in lines {
        let fields = split_line(line);
        let mut row = Vec::with_capacity(cols.len());
        for (x, c) in cols.iter().enumerate() {
            match c {
                Some(c) => match fields.get(*c) {
                    Some(v) => row.push(v.clone()),
                    None if x >= required.len() => row.push(String::new()),
                    None => {
                        return Err(EvalError::BadTable {
                            path: path.into(),
                            reason: format!(
                                "line {}: {} fields, expected at least {}",
                                n + 1,
                                fields.len(),
                                c + 1
                            ),
                        })
                    }
                },
                None => row.push(String::new()),
            }
        }
        rows.push((n + 1, row));
    }
    Ok(rows)
}

/// [`read_csv_with`] without optional columns.
pub(crate) fn read_csv(path: &Path, required: &[&str]) -> Result<Vec<(usize, Vec<String>)>, EvalError> {
    read_csv_with(path, required, &[])
}

/// Quotes a CSV field when needed.
pub(crate) fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number for CSV: empty for `None` (undefined), full precision otherwise.
pub(crate) fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        Some(x) => format!("{x}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields() {
        assert_eq!(split_line(r#"a,"b,c",  d ,"e""f""#), vec!["a", "b,c", "d", "e\"f"]);
        assert_eq!(field("x,y"), "\"x,y\"");
        assert_eq!(num(None), "");
    }
}
