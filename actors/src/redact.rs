//! Scrubs secrets out of payload summaries before they reach the message tap.
//!
//! Summaries are opt-in per message type ([`TapInfo::summary`](crate::TapInfo::summary)), and
//! authors are expected to leave secrets out; this is the second line of defence, applied to
//! every summary the tap stores. It errs on the side of hiding: it removes
//! - PEM blocks (certificates, keys, CSRs) from `-----BEGIN` on,
//! - the value after a secret-looking key (`token`, `secret`, `password`, `key`, `cert`,
//!   `authorization`, `bearer`, `credential`) followed by `=`, `:` or a space,
//! - any run of 32 or more base64/hex-like characters that mixes letters and digits.

const REDACTED: &str = "[redacted]";
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "cert",
    "authorization",
    "bearer",
    "credential",
];
const OPAQUE_MIN: usize = 32;

/// Returns `text` with anything that may be a secret replaced by `[redacted]`.
pub fn scrub(text: &str) -> String {
    let text = match text.find("-----BEGIN") {
        Some(at) => format!("{}{REDACTED}", &text[..at]),
        None => text.to_owned(),
    };
    let text = scrub_keyed_values(&text);
    scrub_opaque_runs(&text)
}

fn is_value_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, ',' | ';' | '}' | ']' | ')' | '"' | '\''))
}

fn scrub_keyed_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = SECRET_WORDS
            .iter()
            .filter_map(|w| lower[i..].find(w).map(|at| (i + at, w.len())))
            .min_by_key(|&(at, _)| at);
        let Some((at, len)) = hit else {
            out.push_str(&text[i..]);
            break;
        };
        // Extend over the rest of the key word (`api_key`, `tokens`, `certData`).
        let mut end = at + len;
        for c in text[end..].chars() {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                end += c.len_utf8();
            } else {
                break;
            }
        }
        out.push_str(&text[i..end]);
        // A separator, then the value.
        let rest = &text[end..];
        let sep_len = rest
            .chars()
            .take_while(|c| matches!(c, '=' | ':' | ' ' | '"' | '\''))
            .map(char::len_utf8)
            .sum::<usize>();
        let word_len = |from: usize| {
            rest[from..]
                .chars()
                .take_while(|&c| is_value_char(c))
                .map(char::len_utf8)
                .sum::<usize>()
        };
        let mut value_len = word_len(sep_len);
        // An auth scheme (`Bearer xyz`, `Basic xyz`) hides the credential after it too.
        let value = &rest[sep_len..sep_len + value_len];
        if ["bearer", "basic"]
            .iter()
            .any(|w| value.eq_ignore_ascii_case(w))
            && rest[sep_len + value_len..].starts_with(' ')
        {
            value_len += 1 + word_len(sep_len + value_len + 1);
        }
        if sep_len > 0 && value_len > 0 {
            out.push_str(&rest[..sep_len]);
            out.push_str(REDACTED);
            i = end + sep_len + value_len;
        } else {
            i = end;
        }
    }
    out
}

fn scrub_opaque_runs(text: &str) -> String {
    let is_run_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.');
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        let has_digit = run.chars().any(|c| c.is_ascii_digit());
        let has_alpha = run.chars().any(|c| c.is_ascii_alphabetic());
        if run.len() >= OPAQUE_MIN && has_digit && has_alpha {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
    };
    for (idx, c) in text.char_indices() {
        match (is_run_char(c), run_start) {
            (true, None) => run_start = Some(idx),
            (true, Some(_)) => {}
            (false, Some(start)) => {
                flush(&mut out, &text[start..idx]);
                run_start = None;
                out.push(c);
            }
            (false, None) => out.push(c),
        }
    }
    if let Some(start) = run_start {
        flush(&mut out, &text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_survive() {
        let cases = [
            ("join token=abc123.def456 node=n1", "abc123.def456"),
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9",
                "eyJhbGciOiJIUzI1NiJ9",
            ),
            ("{\"password\":\"hunter2\"}", "hunter2"),
            ("api_key: s3cr3t", "s3cr3t"),
            (
                "cert -----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----",
                "MIIB",
            ),
            (
                "blob 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 end",
                "9f86d081884c7d659a2feaa0c55ad015",
            ),
        ];
        for (input, secret) in cases {
            let out = scrub(input);
            assert!(!out.contains(secret), "{input:?} -> {out:?}");
            assert!(out.contains(REDACTED), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn ordinary_text_is_kept() {
        for s in [
            "scale default/web to 3 replicas",
            "pod web-7d4b9 bound to n1",
            "image nginx:1.27",
        ] {
            assert_eq!(scrub(s), s);
        }
    }
}
