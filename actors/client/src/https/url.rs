//! API URLs from kinds: the core group under `/api/v1`, the others under `/apis/<g>/<v>`,
//! namespaced kinds under `namespaces/<ns>`, objects and their subresources below. Path
//! segments and query values are percent-encoded by `Url`.

use navarch_model::kinds::Kind;
use reqwest::Url;

fn push_segments(url: &mut Url, segments: &[&str]) {
    // A base URL is always hierarchical (checked when the client is built).
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
}

/// `/api/v1[/namespaces/<ns>]/<plural>`. A namespace is ignored for cluster-scoped kinds;
/// without one a namespaced kind's URL spans all namespaces.
pub fn collection(base: &Url, kind: &Kind, namespace: Option<&str>) -> Url {
    let mut url = base.clone();
    let mut segs: Vec<&str> = if kind.group.is_empty() {
        vec!["api", kind.version]
    } else {
        vec!["apis", kind.group, kind.version]
    };
    if let Some(ns) = namespace.filter(|_| kind.namespaced) {
        segs.extend(["namespaces", ns]);
    }
    segs.push(kind.plural);
    push_segments(&mut url, &segs);
    url
}

/// The URL of one object, or of its subresource.
pub fn object(
    base: &Url,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
    subresource: Option<&str>,
) -> Url {
    let mut url = collection(base, kind, namespace);
    push_segments(&mut url, &[name]);
    if let Some(sub) = subresource {
        push_segments(&mut url, &[sub]);
    }
    url
}

/// Appends query pairs (nothing, not even `?`, when there are none).
pub fn with_query(mut url: Url, pairs: &[(String, String)]) -> Url {
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    url
}

/// `base` joined with a path-and-query such as `/version` or `/api/v1/pods?limit=1`.
pub fn raw(base: &Url, path_and_query: &str) -> Url {
    let mut url = base.clone();
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url.set_query(query);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_model::kinds::lookup;

    fn base() -> Url {
        Url::parse("https://127.0.0.1:6443").unwrap()
    }

    #[test]
    fn core_and_group_kinds_namespaced_or_not() {
        let pods = lookup("", "v1", "pods").unwrap();
        let deps = lookup("apps", "v1", "deployments").unwrap();
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(
            collection(&base(), pods, Some("shop")).as_str(),
            "https://127.0.0.1:6443/api/v1/namespaces/shop/pods"
        );
        assert_eq!(
            collection(&base(), pods, None).as_str(),
            "https://127.0.0.1:6443/api/v1/pods"
        );
        assert_eq!(
            object(&base(), deps, Some("shop"), "web", Some("scale")).as_str(),
            "https://127.0.0.1:6443/apis/apps/v1/namespaces/shop/deployments/web/scale"
        );
        assert_eq!(
            object(&base(), nodes, Some("ignored"), "n1", Some("status")).as_str(),
            "https://127.0.0.1:6443/api/v1/nodes/n1/status"
        );
    }

    #[test]
    fn segments_and_queries_are_encoded_and_prefixes_kept() {
        let pods = lookup("", "v1", "pods").unwrap();
        let b = Url::parse("https://h:1/proxy/").unwrap();
        let u = with_query(
            object(&b, pods, Some("a b"), "x/y", None),
            &[("labelSelector".into(), "app=web,tier in (a,b)".into())],
        );
        assert_eq!(
            u.as_str(),
            "https://h:1/proxy/api/v1/namespaces/a%20b/pods/x%2Fy?labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29"
        );
        assert_eq!(with_query(base(), &[]).as_str(), "https://127.0.0.1:6443/");
        assert_eq!(
            raw(&b, "/api/v1/pods?limit=1").as_str(),
            "https://h:1/proxy/api/v1/pods?limit=1"
        );
        assert_eq!(
            raw(&base(), "version").as_str(),
            "https://127.0.0.1:6443/version"
        );
    }
}
