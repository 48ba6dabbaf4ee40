//! The Prometheus text exposition format (0.0.4), written straight from borrowed names, labels
//! and values: no intermediate family objects, no copy of a label.

use std::fmt::Write;

/// Appends `# HELP` (when `help` is not empty) and `# TYPE` lines of family `name`; `kind` is
/// `gauge` or `counter`.
pub fn write_head(out: &mut String, name: &str, help: &str, kind: &str) {
    if !help.is_empty() {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        push_escaped(out, help, false);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Appends one sample line of family `name`. `labels` must come sorted by name; a name given
/// twice keeps its first value.
pub fn write_sample<'a>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: f64,
) {
    out.push_str(name);
    let mut separator = '{';
    let mut previous: Option<&str> = None;
    for (label, text) in labels {
        if previous == Some(label) {
            continue;
        }
        previous = Some(label);
        out.push(separator);
        separator = ',';
        out.push_str(label);
        out.push_str("=\"");
        push_escaped(out, text, true);
        out.push('"');
    }
    if separator == ',' {
        out.push('}');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, " {value}");
}

/// Appends `text` with backslashes and line feeds escaped (and double quotes, in a label
/// value).
fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quotes && b == b'"');
    if !text.bytes().any(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            other => out.push(other),
        }
    }
}

/// The pairs of two label maps sorted by name as one sorted sequence; on a name in both,
/// `first`'s pair comes first (and [`write_sample`] keeps it).
pub fn merge_sorted<'a>(
    first: impl IntoIterator<Item = (&'a str, &'a str)>,
    second: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let mut first = first.into_iter().peekable();
    let mut second = second.into_iter().peekable();
    std::iter::from_fn(move || match (first.peek(), second.peek()) {
        (Some(a), Some(b)) if b.0 < a.0 => second.next(),
        (Some(_), _) => first.next(),
        (None, _) => second.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_help_and_label_values_as_the_format_says() {
        let mut out = String::new();
        write_head(&mut out, "m", "a \\ b\nc \"q\"", "gauge");
        write_sample(&mut out, "m", [("l", "x\"y\\z\nw")], 1.5);
        write_sample(&mut out, "m", [], 2.0);
        assert_eq!(
            out,
            "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{l=\"x\\\"y\\\\z\\nw\"} 1.5\nm 2\n"
        );
    }

    #[test]
    fn merged_labels_are_sorted_and_the_first_map_wins_a_shared_name() {
        let common = [("host", "h"), ("region", "r")];
        let series = [("a", "1"), ("host", "other"), ("z", "2")];
        let mut out = String::new();
        write_sample(&mut out, "m", merge_sorted(common, series), 0.0);
        assert_eq!(out, "m{a=\"1\",host=\"h\",region=\"r\",z=\"2\"} 0\n");
    }
}
