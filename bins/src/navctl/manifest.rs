//! Manifests for `navctl apply -f` and `delete -f`: files, directories or stdin holding YAML
//! (several documents separated by `---`), JSON, or `kind: List` objects with `items`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// The objects of one manifest text, in order: documents split, empty documents skipped,
/// `List`s expanded into their items.
pub fn parse(text: &str) -> Result<Vec<Value>> {
    let mut docs: Vec<Value> = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            docs.push(v.context("invalid JSON")?);
        }
    } else {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let v = Value::deserialize(doc)
                .with_context(|| format!("invalid YAML in document {}", i + 1))?;
            docs.push(v);
        }
    }
    let mut out = Vec::new();
    for d in docs {
        expand(d, &mut out)?;
    }
    Ok(out)
}

fn expand(doc: Value, out: &mut Vec<Value>) -> Result<()> {
    match doc {
        Value::Null => Ok(()),
        Value::Array(items) => items.into_iter().try_for_each(|i| expand(i, out)),
        Value::Object(ref o)
            if o.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k == "List" || k.ends_with("List"))
                && o.get("items").is_some() =>
        {
            let Some(Value::Array(items)) = o.get("items").cloned() else {
                bail!("a List's items must be an array");
            };
            items.into_iter().try_for_each(|i| expand(i, out))
        }
        Value::Object(_) => {
            if doc["kind"].as_str().unwrap_or("").is_empty() {
                bail!("an object has no kind: {doc}");
            }
            if doc["apiVersion"].as_str().unwrap_or("").is_empty() {
                bail!("an object has no apiVersion: {doc}");
            }
            out.push(doc);
            Ok(())
        }
        other => bail!("a manifest document must be an object, got {other}"),
    }
}

/// The objects of `source`: a file, a directory (its `.yaml`, `.yml` and `.json` files in
/// name order, not recursing), or `-` for stdin.
pub fn read(source: &str) -> Result<Vec<Value>> {
    if source == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("read stdin")?;
        return parse(&text).context("stdin");
    }
    let path = Path::new(source);
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            })
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.extend(read_file(&f)?);
        }
        return Ok(out);
    }
    read_file(path)
}

fn read_file(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("the path {:?} does not exist or cannot be read", path))?;
    parse(&text).with_context(|| format!("error parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_yaml_documents() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\n\
                    # a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n\
                    spec:\n  replicas: 2\n";
        let objs = parse(text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["kind"], "Namespace");
        assert_eq!(objs[1]["spec"]["replicas"], json!(2));
    }

    #[test]
    fn reads_json_and_lists() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"b"}}]}"#;
        let objs = parse(text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["metadata"]["name"], "b");
        let yaml_list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n";
        assert_eq!(parse(yaml_list).unwrap()[0]["kind"], "Pod");
        let two = r#"{"apiVersion":"v1","kind":"Pod"} {"apiVersion":"v1","kind":"Service"}"#;
        assert_eq!(parse(two).unwrap().len(), 2);
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert!(parse("just text").is_err());
        assert!(parse("metadata: {name: x}\n").is_err());
        assert!(parse("kind: [").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
