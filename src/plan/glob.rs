//! Shell-style globs for sonames: `*` (any run) and `?` (one character).

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Iterative matcher with one backtrack point, linear in practice.
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether any of `patterns` matches `name`.
pub fn any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("libcuda.so*", "libcuda.so.1"));
        assert!(matches("libnvidia-*", "libnvidia-ml.so.1"));
        assert!(matches("lib?.so", "libz.so"));
        assert!(matches("*", ""));
        assert!(!matches("libcuda.so*", "libcudart.so.12"));
        assert!(!matches("lib?.so", "libzz.so"));
        assert!(matches("*a*b*c", "xxaybzc"));
    }
}
