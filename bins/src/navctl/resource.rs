//! Resolving what a user types (`deploy`, `Deployments`, `deployment.apps`, `deploy/web`) to
//! one of the kinds navarch serves, and how kubectl names it back.

use anyhow::{anyhow, bail, Result};
use navarch_model::kinds::{Kind, KINDS};

/// The kind named by `name`: its plural, singular, a short name or the kind itself, in any
/// case, optionally qualified by its group (`deployments.apps`).
pub fn resolve(name: &str) -> Result<&'static Kind> {
    let lower = name.to_ascii_lowercase();
    let (res, group) = match lower.split_once('.') {
        Some((r, g)) => (r, Some(g)),
        None => (lower.as_str(), None),
    };
    KINDS
        .iter()
        .find(|k| {
            group.is_none_or(|g| k.group == g)
                && (k.plural == res
                    || k.singular == res
                    || k.kind.eq_ignore_ascii_case(res)
                    || k.short_names.contains(&res))
        })
        .ok_or_else(|| anyhow!("the server doesn't have a resource type \"{name}\""))
}

/// The kind of a manifest object from its `apiVersion` and `kind`.
pub fn for_manifest(api_version: &str, kind: &str) -> Result<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
        .ok_or_else(|| anyhow!("no matches for kind \"{kind}\" in version \"{api_version}\""))
}

/// Resources and names as `get`, `delete` and `describe` take them: `TYPE [NAME...]`,
/// `TYPE1,TYPE2` or a category such as `all` (no names), or `TYPE/NAME...`. Consecutive `TYPE/NAME`s of one kind are
/// grouped.
pub fn parse_args(args: &[String]) -> Result<Vec<(&'static Kind, Vec<String>)>> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource");
    };
    let mut out: Vec<(&'static Kind, Vec<String>)> = Vec::new();
    if first.contains('/') {
        for a in args {
            let Some((ty, name)) = a
                .split_once('/')
                .filter(|(t, n)| !t.is_empty() && !n.is_empty())
            else {
                bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'navctl get resource/<resource_name>' instead of 'navctl get resource resource/<resource_name>'): {a:?}");
            };
            let kind = resolve(ty)?;
            match out.last_mut() {
                Some((k, names)) if std::ptr::eq(*k, kind) => names.push(name.to_string()),
                _ => out.push((kind, vec![name.to_string()])),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    if let Some(n) = names.iter().find(|n| n.contains('/')) {
        bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form: {n:?}");
    }
    let types: Vec<&str> = first.split(',').filter(|t| !t.is_empty()).collect();
    if types.len() > 1 && !names.is_empty() {
        bail!("names cannot be given with several resource types; use TYPE/NAME instead");
    }
    for t in types {
        let in_category: Vec<&'static Kind> = KINDS
            .iter()
            .filter(|k| k.categories.contains(&t.to_ascii_lowercase().as_str()))
            .collect();
        if in_category.is_empty() {
            out.push((resolve(t)?, names.clone()));
        } else if !names.is_empty() {
            bail!("names cannot be given with the category {t:?}; use TYPE/NAME instead");
        } else {
            out.extend(in_category.into_iter().map(|k| (k, Vec::new())));
        }
    }
    Ok(out)
}

/// `deployment.apps` or `service`: how kubectl names a kind in its messages.
pub fn display(kind: &Kind) -> String {
    if kind.group.is_empty() {
        kind.singular.to_string()
    } else {
        format!("{}.{}", kind.singular, kind.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolves_every_spelling() {
        for s in [
            "deploy",
            "deployment",
            "deployments",
            "Deployment",
            "DEPLOYMENTS",
            "deployments.apps",
        ] {
            assert_eq!(resolve(s).unwrap().kind, "Deployment", "{s}");
        }
        assert_eq!(resolve("svc").unwrap().kind, "Service");
        assert_eq!(resolve("ns").unwrap().kind, "Namespace");
        assert_eq!(resolve("po").unwrap().kind, "Pod");
        assert!(resolve("pods.apps").is_err());
        assert_eq!(
            resolve("foos").unwrap_err().to_string(),
            "the server doesn't have a resource type \"foos\""
        );
        assert_eq!(
            for_manifest("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert!(for_manifest("v1", "Deployment").is_err());
    }

    #[test]
    fn parses_type_and_name_forms() {
        let a = parse_args(&strings(&["deploy", "a", "b"])).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0.kind, "Deployment");
        assert_eq!(a[0].1, strings(&["a", "b"]));
        let a = parse_args(&strings(&["deploy/web", "deploy/api", "svc/web"])).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].1, strings(&["web", "api"]));
        assert_eq!(a[1].0.kind, "Service");
        let a = parse_args(&strings(&["deploy,svc"])).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[1].1.is_empty());
        let all: Vec<&str> = parse_args(&strings(&["all"]))
            .unwrap()
            .iter()
            .map(|(k, _)| k.kind)
            .collect();
        assert_eq!(all, ["Pod", "Service", "Deployment", "ReplicaSet"]);
        assert!(parse_args(&strings(&["deploy", "svc/web"])).is_err());
        assert!(parse_args(&strings(&["deploy/"])).is_err());
        assert!(parse_args(&[]).is_err());
    }

    #[test]
    fn display_names() {
        assert_eq!(display(resolve("deploy").unwrap()), "deployment.apps");
        assert_eq!(display(resolve("svc").unwrap()), "service");
    }
}
