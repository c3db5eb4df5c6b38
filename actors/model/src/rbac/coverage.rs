//! Whether one set of rules covers another (Kubernetes' `validation.Covers`): the basis of
//! escalation prevention and of the bootstrap reconcile's "missing rules".

use super::rule::{PolicyRule, ALL};

/// Splits a rule into atomic rules of one group, resource, verb and (if any) resource name,
/// or one non-resource URL and verb (Kubernetes' `BreakdownRule`).
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let atom = PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(atom);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: vec![name.clone()],
                            ..atom.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

fn urls_cover(owner: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|p| owner.iter().any(|o| url_covers(o, p)))
}

/// Whether `owner` covers the atomic rule `sub` (Kubernetes' `ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = urls_cover(&owner.non_resource_urls, &sub.non_resource_urls);
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// Whether `owner` covers every permission of `wanted`; the atomic rules it does not cover.
pub fn covers(owner: &[PolicyRule], wanted: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = wanted
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

/// Merges rules of one group and resource (and at most one name) that differ only in their
/// verbs, for messages (Kubernetes' `CompactRules`).
pub fn compact(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let is_simple = rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty();
        if !is_simple {
            out.push(rule.clone());
            continue;
        }
        let same = |r: &&mut PolicyRule| {
            r.api_groups == rule.api_groups
                && r.resources == rule.resources
                && r.resource_names == rule.resource_names
        };
        match simple.iter_mut().find(same) {
            Some(existing) => {
                for verb in &rule.verbs {
                    if !has(&existing.verbs, verb) {
                        existing.verbs.push(verb.clone());
                    }
                }
            }
            None => simple.push(rule.clone()),
        }
    }
    out.extend(simple);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule::resources(verbs, groups, resources)
    }

    #[test]
    fn coverage_cases() {
        let cases: &[(&[PolicyRule], &[PolicyRule], bool)] = &[
            (
                &[r(&["*"], &["*"], &["*"])],
                &[r(&["get", "delete"], &["apps"], &["deployments/scale"])],
                true,
            ),
            (
                &[r(&["get", "list"], &[""], &["pods"])],
                &[r(&["get"], &[""], &["pods"])],
                true,
            ),
            (
                &[r(&["get"], &[""], &["pods"])],
                &[r(&["get", "list"], &[""], &["pods"])],
                false,
            ),
            (
                &[
                    r(&["get"], &[""], &["pods"]),
                    r(&["list"], &[""], &["pods"]),
                ],
                &[r(&["get", "list"], &[""], &["pods"])],
                true,
            ),
            (
                &[r(&["get"], &["*"], &["pods"])],
                &[r(&["get"], &["", "apps"], &["pods"])],
                true,
            ),
            (
                &[r(&["get"], &[""], &["pods"])],
                &[r(&["get"], &["apps"], &["pods"])],
                false,
            ),
            (
                &[r(&["get"], &[""], &["*/status"])],
                &[r(&["get"], &[""], &["pods/status", "nodes/status"])],
                true,
            ),
            (
                &[r(&["get"], &[""], &["*/status"])],
                &[r(&["get"], &[""], &["pods"])],
                false,
            ),
            (
                &[r(&["get"], &[""], &["pods"])],
                &[r(&["get"], &[""], &["pods/log"])],
                false,
            ),
            // Names: an unrestricted owner covers named rules, not the other way round.
            (
                &[r(&["get"], &[""], &["pods"])],
                &[r(&["get"], &[""], &["pods"]).named(&["a"])],
                true,
            ),
            (
                &[r(&["get"], &[""], &["pods"]).named(&["a", "b"])],
                &[r(&["get"], &[""], &["pods"]).named(&["b"])],
                true,
            ),
            (
                &[r(&["get"], &[""], &["pods"]).named(&["a"])],
                &[r(&["get"], &[""], &["pods"]).named(&["c"])],
                false,
            ),
            (
                &[r(&["get"], &[""], &["pods"]).named(&["a"])],
                &[r(&["get"], &[""], &["pods"])],
                false,
            ),
            // URLs, with trailing stars.
            (
                &[PolicyRule::urls(&["get"], &["/api/*"])],
                &[PolicyRule::urls(&["get"], &["/api/v1"])],
                true,
            ),
            (
                &[PolicyRule::urls(&["get"], &["/api"])],
                &[PolicyRule::urls(&["get"], &["/api/v1"])],
                false,
            ),
            (
                &[PolicyRule::urls(&["*"], &["*"])],
                &[PolicyRule::urls(&["post"], &["/x"])],
                true,
            ),
            (
                &[r(&["*"], &["*"], &["*"])],
                &[PolicyRule::urls(&["get"], &["/healthz"])],
                false,
            ),
            // Nothing is covered by nothing, and nothing needs no cover.
            (&[], &[r(&["get"], &[""], &["pods"])], false),
            (&[], &[], true),
        ];
        for (owner, wanted, want) in cases {
            assert_eq!(
                covers(owner, wanted).0,
                *want,
                "{owner:?} covers {wanted:?}"
            );
        }
        let (ok, missing) = covers(
            &[r(&["get"], &[""], &["pods"])],
            &[r(&["get", "delete"], &[""], &["pods", "services"])],
        );
        assert!(!ok);
        assert_eq!(missing.len(), 3);
        let compacted = compact(&missing);
        let shown: Vec<String> = compacted.iter().map(PolicyRule::compact_string).collect();
        assert_eq!(
            shown,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["services"], Verbs:["get" "delete"]}"#,
            ]
        );
    }
}
