//! Printing for `navctl get`: a server-side Table as aligned columns (as kubectl's
//! tabwriter does), and cells as text.

use serde_json::Value;

/// Rows of text under headers, ready to align.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TextTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A cell as text: strings as they are, `<none>` for null.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        other => other.to_string(),
    }
}

impl TextTable {
    /// The columns of a `meta.k8s.io/v1` Table: priority 0 only unless `wide`, with a
    /// NAMESPACE column (from each row's object metadata) first when `with_namespace`.
    pub fn from_table(table: &Value, wide: bool, with_namespace: bool) -> TextTable {
        let columns: Vec<(usize, String)> = table["columnDefinitions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, c)| wide || c["priority"].as_u64().unwrap_or(0) == 0)
            .map(|(i, c)| (i, c["name"].as_str().unwrap_or("").to_uppercase()))
            .collect();
        let mut t = TextTable::default();
        if with_namespace {
            t.headers.push("NAMESPACE".into());
        }
        t.headers.extend(columns.iter().map(|(_, n)| n.clone()));
        t.push_rows(table, wide, with_namespace);
        t
    }

    /// Appends the rows of another Table of the same kind.
    pub fn push_rows(&mut self, table: &Value, wide: bool, with_namespace: bool) {
        let keep: Vec<usize> = table["columnDefinitions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, c)| wide || c["priority"].as_u64().unwrap_or(0) == 0)
            .map(|(i, _)| i)
            .collect();
        for row in table["rows"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let cells = row["cells"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut out = Vec::with_capacity(keep.len() + 1);
            if with_namespace {
                out.push(
                    row["object"]["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                );
            }
            out.extend(
                keep.iter()
                    .map(|&i| cells.get(i).map(cell).unwrap_or_default()),
            );
            self.rows.push(out);
        }
    }

    /// Headers and rows, each column padded to its widest cell plus three spaces (the last
    /// column unpadded), one line each.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths = vec![0usize; n];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (w, c) in widths.iter_mut().zip(line) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, c) in line.iter().enumerate().take(n) {
                text.push_str(c);
                if i + 1 < n {
                    let pad = widths[i] + 3 - c.chars().count();
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Value {
        json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "priority": 0},
                {"name": "Ready", "priority": 0},
                {"name": "Up-to-date", "priority": 0},
                {"name": "Images", "priority": 1},
            ],
            "rows": [
                {"cells": ["web", "0/2", 0, "nginx"], "object": {"metadata": {"namespace": "demo"}}},
                {"cells": ["api-server", "1/1", 1, null], "object": {"metadata": {"namespace": "default"}}},
            ],
        })
    }

    #[test]
    fn prints_priority_zero_columns_aligned() {
        let t = TextTable::from_table(&table(), false, false);
        assert_eq!(t.headers, ["NAME", "READY", "UP-TO-DATE"]);
        assert_eq!(
            t.render(),
            "NAME         READY   UP-TO-DATE\n\
             web          0/2     0\n\
             api-server   1/1     1\n"
        );
    }

    #[test]
    fn wide_and_all_namespaces() {
        let t = TextTable::from_table(&table(), true, true);
        assert_eq!(
            t.headers,
            ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "IMAGES"]
        );
        assert_eq!(t.rows[0], ["demo", "web", "0/2", "0", "nginx"]);
        assert_eq!(t.rows[1][4], "<none>");
        let mut t = TextTable::from_table(&table(), false, false);
        t.push_rows(&table(), false, false);
        assert_eq!(t.rows.len(), 4);
    }
}
