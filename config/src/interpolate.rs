//! `${VAR}` and `${VAR:-default}` in the raw text, before YAML parsing; `$$` is a literal `$`.

/// Replace variables using `lookup`, except on whole-line `#` comments; an unset `${VAR}`
/// without a default is an error naming the variable and its line.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            let done =
                interpolate_line(line, &lookup).map_err(|e| format!("line {}: {e}", n + 1))?;
            out.push_str(&done);
        }
    }
    Ok(out)
}

/// The inverse of [`interpolate`] for text with no variables: `$` becomes `$$` on every line that
/// [`interpolate`] reads (whole-line `#` comments are left as they are, as it leaves them), so
/// printed YAML whose values hold a `$` loads back as the same values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&line.replace('$', "$$"));
        }
    }
    out
}

fn interpolate_line(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${ (write $$ for a literal $)".to_string())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("${{{expr}}} is not a variable name"));
            }
            match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "NODE_NAME").then(|| "node-7".to_string())
    }

    #[test]
    fn variables_defaults_and_escapes() {
        assert_eq!(interpolate("n: ${NODE_NAME}", env).unwrap(), "n: node-7");
        assert_eq!(interpolate("n: ${MISSING:-x}", env).unwrap(), "n: x");
        assert_eq!(interpolate("p: $$HOME $5", env).unwrap(), "p: $HOME $5");
        let e = interpolate("a: 1\nb: ${MISSING}", env).unwrap_err();
        assert!(e.contains("line 2") && e.contains("MISSING"), "{e}");
        assert!(interpolate("a: ${NODE_NAME", env).is_err());
        assert_eq!(
            interpolate("# see ${DOCS}\na: 1\n", env).unwrap(),
            "# see ${DOCS}\na: 1\n"
        );
    }

    #[test]
    fn escape_is_undone_by_interpolate() {
        for text in [
            "a: ${X}",
            "a: $$ $5 ${ $",
            "  # ${X} $\nb: '$${Y:-z}'\n",
            "|\n  #$\n  $x\n",
        ] {
            assert_eq!(
                interpolate(&escape(text), |_| None).unwrap(),
                text,
                "{text:?}"
            );
        }
    }
}
