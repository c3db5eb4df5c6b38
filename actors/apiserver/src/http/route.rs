//! From an HTTP request line to a request head: the path decoded and normalized once (so
//! authorization sees exactly what is routed: `/%64ebug/faults` is `/debug/faults` for both),
//! the target kind, namespace, name and subresource, and Kubernetes' verb.

use navarch_model::kinds::{self, Kind};
use navarch_model::ApiError;

use crate::request::Target;

/// Decodes `%XX` escapes of one path segment; a segment that decodes to a `/`, or to bytes
/// that are not UTF-8, is refused (it would route differently than it reads).
fn decode_segment(seg: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid path segment {seg:?}"));
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = seg.get(i + 1..i + 3).ok_or_else(bad)?;
            let b = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| bad())?;
    if s.contains('/') || s == "." || s == ".." {
        return Err(bad());
    }
    Ok(s)
}

/// The decoded, normalized segments of a raw request path (empty segments dropped, as a
/// trailing or doubled slash).
pub fn segments(raw_path: &str) -> Result<Vec<String>, ApiError> {
    raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect()
}

/// Parses the segments after `/api/v1` or `/apis/<g>/<v>`.
fn parse_resource(group: &str, version: &str, segs: &[String]) -> Option<Target> {
    let served = |plural: &str| kinds::lookup(group, version, plural);
    let (namespace, rest): (Option<String>, Vec<&String>) = match segs {
        [ns_word, ns, plural, rest @ ..]
            if ns_word == "namespaces" && served(plural).is_some_and(|k| k.namespaced) =>
        {
            let mut v = vec![plural];
            v.extend(rest.iter());
            (Some(ns.clone()), v)
        }
        _ => (None, segs.iter().collect()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some((*n).clone()), None),
        [p, n, s] => (*p, Some((*n).clone()), Some((*s).clone())),
        _ => return None,
    };
    let kind: &'static Kind = served(plural)?;
    if kind.namespaced && namespace.is_none() && name.is_some() {
        return None;
    }
    if let Some(s) = &sub {
        if !kind.has_subresource(s) {
            return None;
        }
    }
    Some(Target::Resource {
        kind,
        namespace,
        name,
        subresource: sub,
    })
}

/// What a request addresses: a resource of a served kind, or else a non-resource path
/// (which the pipeline authorizes as such and answers 404 when nothing is there, as
/// Kubernetes does).
pub fn target(segs: &[String]) -> Target {
    let resource = match segs {
        [api, v, rest @ ..] if api == "api" && !rest.is_empty() => parse_resource("", v, rest),
        [apis, g, v, rest @ ..] if apis == "apis" && !rest.is_empty() => parse_resource(g, v, rest),
        _ => None,
    };
    resource.unwrap_or_else(|| Target::NonResource {
        path: format!("/{}", segs.join("/")),
    })
}

fn flag(query: &[(String, String)], k: &str) -> bool {
    query
        .iter()
        .any(|(key, v)| key == k && (v == "true" || v == "1"))
}

/// Kubernetes' verb for `method` on `target`; 405 when the method does not apply.
pub fn verb(
    method: &str,
    target: &Target,
    query: &[(String, String)],
) -> Result<&'static str, ApiError> {
    let Target::Resource {
        kind,
        name,
        subresource,
        ..
    } = target
    else {
        return Ok(match method {
            "GET" | "HEAD" => "get",
            "POST" => "post",
            "PUT" => "put",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "unknown",
        });
    };
    let not_allowed = || {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {}{})",
            kind.qualified_resource(),
            subresource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        ))
    };
    let verb = match (method, name.is_some(), subresource.as_deref()) {
        ("GET", true, Some("log")) => "get",
        // exec takes GET (WebSocket) and POST (SPDY); binding takes POST.
        ("GET" | "POST", true, Some("exec")) => "create",
        ("POST", true, Some("binding" | "eviction" | "token")) => "create",
        // A Namespace's finalize takes PUT only, as Kubernetes serves it.
        ("PUT", true, Some("finalize")) => "update",
        (_, _, Some("log" | "exec" | "binding" | "eviction" | "token" | "finalize")) => {
            return Err(not_allowed())
        }
        ("GET", true, _) => "get",
        ("GET", false, None) if flag(query, "watch") => "watch",
        ("GET", false, None) => "list",
        ("POST", false, None) => "create",
        ("PUT", true, _) => "update",
        ("PATCH", true, _) => "patch",
        ("DELETE", true, None) => "delete",
        ("DELETE", false, None) => "deletecollection",
        _ => return Err(not_allowed()),
    };
    if !kind.serves(verb) {
        return Err(not_allowed());
    }
    Ok(verb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Target {
        target(&segments(path).unwrap())
    }

    #[test]
    fn paths_parse_to_kinds_namespaces_names_and_subresources() {
        let Target::Resource {
            kind,
            namespace,
            name,
            subresource,
        } = t("/api/v1/namespaces/default/pods/web/status")
        else {
            panic!("a resource");
        };
        assert_eq!(kind.plural, "pods");
        assert_eq!(namespace.as_deref(), Some("default"));
        assert_eq!(name.as_deref(), Some("web"));
        assert_eq!(subresource.as_deref(), Some("status"));
        assert!(matches!(t("/api/v1/namespaces/kube-system"),
            Target::Resource { kind, name: Some(n), .. } if kind.plural == "namespaces" && n == "kube-system"));
        assert!(matches!(t("/api/v1/namespaces/x/status"),
            Target::Resource { subresource: Some(s), .. } if s == "status"));
        assert!(matches!(
            t("/apis/apps/v1/deployments"),
            Target::Resource {
                namespace: None,
                ..
            }
        ));
        for p in [
            "/api/v1/pods/web",
            "/api/v1/widgets",
            "/api/v1/namespaces/d/pods/w/scale",
        ] {
            assert!(matches!(t(p), Target::NonResource { .. }), "{p}");
        }
        assert!(matches!(
            t("/apis/apps/v1/namespaces/d/deployments/w/scale"),
            Target::Resource { .. }
        ));
    }

    #[test]
    fn encoded_paths_are_decoded_once_for_routing_and_authorization() {
        assert_eq!(
            t("/%64ebug/faults"),
            Target::NonResource {
                path: "/debug/faults".into()
            }
        );
        assert_eq!(
            t("//debug//faults/"),
            Target::NonResource {
                path: "/debug/faults".into()
            }
        );
        assert!(matches!(t("/api/v1/namespaces/%64efault/pods"),
            Target::Resource { namespace: Some(n), .. } if n == "default"));
        for bad in [
            "/api/v1/namespaces/a%2Fb/pods",
            "/debug/../api",
            "/x/%zz",
            "/x/%ff",
        ] {
            assert_eq!(segments(bad).unwrap_err().code, 400, "{bad}");
        }
    }

    #[test]
    fn verbs_follow_method_and_shape() {
        let list = t("/api/v1/namespaces/d/pods");
        let item = t("/api/v1/namespaces/d/pods/w");
        let q = vec![("watch".to_string(), "1".to_string())];
        assert_eq!(verb("GET", &list, &[]).unwrap(), "list");
        assert_eq!(verb("GET", &list, &q).unwrap(), "watch");
        assert_eq!(verb("PUT", &list, &q).unwrap_err().code, 405);
        assert_eq!(verb("POST", &item, &q).unwrap_err().code, 405);
        assert_eq!(verb("DELETE", &list, &[]).unwrap(), "deletecollection");
        assert_eq!(
            verb("POST", &t("/api/v1/namespaces/d/pods/w/binding"), &[]).unwrap(),
            "create"
        );
        assert_eq!(
            verb("GET", &t("/api/v1/namespaces/d/pods/w/exec"), &[]).unwrap(),
            "create"
        );
        let finalize = t("/api/v1/namespaces/shop/finalize");
        assert!(matches!(&finalize,
            Target::Resource { kind, namespace: None, name: Some(n), subresource: Some(s) }
                if kind.plural == "namespaces" && n == "shop" && s == "finalize"));
        assert_eq!(verb("PUT", &finalize, &[]).unwrap(), "update");
        for method in ["GET", "POST", "PATCH", "DELETE"] {
            assert_eq!(
                verb(method, &finalize, &[]).unwrap_err().code,
                405,
                "{method}"
            );
        }
        assert!(matches!(
            t("/api/v1/namespaces/d/pods/w/finalize"),
            Target::NonResource { .. }
        ));
        let eviction = t("/api/v1/namespaces/d/pods/w/eviction");
        assert_eq!(verb("POST", &eviction, &[]).unwrap(), "create");
        let token = t("/api/v1/namespaces/d/serviceaccounts/default/token");
        assert_eq!(verb("POST", &token, &[]).unwrap(), "create");
        assert_eq!(verb("GET", &token, &[]).unwrap_err().code, 405);
        for method in ["GET", "PUT", "PATCH", "DELETE"] {
            assert_eq!(
                verb(method, &eviction, &[]).unwrap_err().code,
                405,
                "{method}"
            );
        }
        assert_eq!(
            verb("PUT", &t("/api/v1/namespaces/d/pods/w/log"), &[])
                .unwrap_err()
                .code,
            405
        );
        let review = t("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
        assert_eq!(verb("POST", &review, &[]).unwrap(), "create");
        assert_eq!(verb("GET", &review, &[]).unwrap_err().code, 405);
        assert_eq!(verb("POST", &t("/debug/kill"), &[]).unwrap(), "post");
    }
}
