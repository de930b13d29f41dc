//! Search-path strings as the loader reads them: splitting, dynamic string tokens
//! (`$ORIGIN`, `$LIB`, `$PLATFORM`) and the directory spelling that ends up in `l_name`.

/// Values for the dynamic string tokens of one requester.
pub struct Tokens<'a> {
    /// Directory of the requester; `None` when unknown (elements using `$ORIGIN` are dropped).
    pub origin: Option<&'a str>,
    /// `$LIB`, e.g. `lib`, `lib64`, `lib/x86_64-linux-gnu`.
    pub lib: &'a str,
    /// `$PLATFORM`, e.g. `x86_64`.
    pub platform: &'a str,
}

/// Expands the tokens in `s`. `None` if a token's value is unknown (the loader then drops the
/// element). Unknown `$NAME`s are kept literally, as glibc does.
pub fn expand(s: &str, t: &Tokens) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let matched = [
            ("ORIGIN", t.origin),
            ("LIB", Some(t.lib)),
            ("PLATFORM", Some(t.platform)),
        ]
        .into_iter()
        .find_map(|(name, value)| token_len(after, name).map(|len| (len, value)));
        match matched {
            Some((len, value)) => {
                out.push_str(value?);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Length of `NAME` or `{NAME}` at the start of `s`, if it is that token. `$ORIGINAL` is not
/// `$ORIGIN`: the name must not run on into more identifier characters.
fn token_len(s: &str, name: &str) -> Option<usize> {
    if let Some(rest) = s.strip_prefix('{') {
        return rest
            .strip_prefix(name)
            .filter(|r| r.starts_with('}'))
            .map(|_| name.len() + 2);
    }
    let rest = s.strip_prefix(name)?;
    match rest.bytes().next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => None,
        _ => Some(name.len()),
    }
}

/// Splits a DT_RPATH/DT_RUNPATH (`:`-separated) or `LD_LIBRARY_PATH` (`:` or `;`) value into
/// directories, each spelled as the loader spells it: trailing slashes collapsed to one, so a
/// candidate is `dir + name`. An empty element is the current directory (spelled `""`).
pub fn split_dirs(list: &str, separators: &[char], t: &Tokens) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for elem in list.split(separators) {
        let dir = if elem.is_empty() {
            String::new()
        } else {
            let Some(expanded) = expand(elem, t) else {
                continue;
            };
            if expanded.is_empty() {
                continue;
            }
            let trimmed = expanded.trim_end_matches('/');
            format!("{trimmed}/")
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The loader's `l_origin`: the directory part of an object's path, textually.
pub fn origin_of(path: &str) -> Option<&str> {
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tokens = Tokens {
        origin: Some("/s/bin"),
        lib: "lib64",
        platform: "x86_64",
    };

    #[test]
    fn expands_tokens() {
        assert_eq!(expand("$ORIGIN/../lib", &T).unwrap(), "/s/bin/../lib");
        assert_eq!(
            expand("${ORIGIN}/x/$LIB/$PLATFORM", &T).unwrap(),
            "/s/bin/x/lib64/x86_64"
        );
        assert_eq!(
            expand("/a/$ORIGINAL/$FOO", &T).unwrap(),
            "/a/$ORIGINAL/$FOO"
        );
        let unknown = Tokens { origin: None, ..T };
        assert_eq!(expand("$ORIGIN/lib", &unknown), None);
    }

    #[test]
    fn splits_like_the_loader() {
        let dirs = split_dirs("/a//:$ORIGIN:/:/a:", &[':'], &T);
        assert_eq!(dirs, vec!["/a/", "/s/bin/", "/", ""]);
        assert_eq!(split_dirs("/x;/y", &[':', ';'], &T), vec!["/x/", "/y/"]);
    }

    #[test]
    fn origins() {
        assert_eq!(origin_of("/usr/bin/ls"), Some("/usr/bin"));
        assert_eq!(origin_of("/ls"), Some("/"));
        assert_eq!(origin_of("ls"), None);
    }
}
