//! SVG flame graphs of folded stacks, rendered with the `inferno` crate: one profile, or the
//! differential graph of two (frames coloured by how their share grew or shrank).

/// An SVG saying a profile collected no samples (inferno refuses an empty input).
const NO_SAMPLES: &str = "<?xml version=\"1.0\" standalone=\"no\"?>\
<svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\">\
<text x=\"600\" y=\"36\" text-anchor=\"middle\">No samples collected</text></svg>\n";

/// Renders folded stack lines (`comm;frame;...;frame count`) as an SVG flame graph titled
/// `title` whose counts are `unit` (samples, us); an empty profile is an SVG saying so.
pub fn svg(folded: &[String], title: &str, unit: &str) -> Result<String, String> {
    if folded.is_empty() {
        return Ok(NO_SAMPLES.to_string());
    }
    render(folded.iter().map(String::as_str), title, unit)
}

/// Renders how `after` differs from `before` (both folded stack lines): the graph has the
/// shape of `after`, red where a frame's share grew, blue where it shrank; `before` is scaled
/// to `after`'s total so profiles of different lengths compare.
pub fn diff_svg(
    before: &[String],
    after: &[String],
    title: &str,
    unit: &str,
) -> Result<String, String> {
    if before.is_empty() && after.is_empty() {
        return Ok(NO_SAMPLES.to_string());
    }
    let options = inferno::differential::Options {
        normalize: true,
        strip_hex: false,
    };
    let mut folded = Vec::new();
    inferno::differential::from_readers(
        options,
        before.join("\n").as_bytes(),
        after.join("\n").as_bytes(),
        &mut folded,
    )
    .map_err(|e| format!("comparing the profiles: {e}"))?;
    let folded = String::from_utf8(folded).map_err(|e| format!("profile is not UTF-8: {e}"))?;
    render(folded.lines(), title, unit)
}

fn render<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    title: &str,
    unit: &str,
) -> Result<String, String> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = unit.into();
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines, &mut out)
        .map_err(|e| format!("rendering the flame graph: {e}"))?;
    String::from_utf8(out).map_err(|e| format!("flame graph is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_frame_of_the_stacks() {
        let folded = vec![
            "busy;main;spin_here 90".to_string(),
            "busy;main;idle_there 10".to_string(),
        ];
        let svg = svg(&folded, "cpu", "us").expect("svg");
        assert!(svg.contains("90 us"), "count unit missing");
        assert!(svg.starts_with("<?xml"), "{}", &svg[..svg.len().min(200)]);
        for frame in ["spin_here", "idle_there", "main"] {
            assert!(svg.contains(frame), "{frame} missing");
        }
    }

    #[test]
    fn no_samples_is_an_svg_saying_so() {
        let svg = svg(&[], "cpu", "samples").expect("svg");
        assert!(svg.contains("No samples collected"), "{svg}");
        assert!(
            svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }

    #[test]
    fn a_diff_colours_the_grown_frame_red_and_the_shrunk_one_blue() {
        let before = vec![
            "app;main;grows 10".to_string(),
            "app;main;shrinks 90".to_string(),
        ];
        let after = vec![
            "app;main;grows 90".to_string(),
            "app;main;shrinks 10".to_string(),
        ];
        let svg = diff_svg(&before, &after, "diff", "samples").expect("svg");
        let fill_of = |frame: &str| -> String {
            let at = svg.find(&format!("<title>{frame} ")).expect(frame);
            let rest = &svg[at..];
            let fill = rest.find("fill=\"rgb(").expect("fill") + 10;
            rest[fill..fill + rest[fill..].find(')').expect(")")].to_string()
        };
        let rgb =
            |s: String| -> Vec<u32> { s.split(',').map(|v| v.trim().parse().unwrap()).collect() };
        let grows = rgb(fill_of("grows"));
        let shrinks = rgb(fill_of("shrinks"));
        assert!(grows[0] > grows[2], "grown frame not red: {grows:?}");
        assert!(
            shrinks[2] > shrinks[0],
            "shrunk frame not blue: {shrinks:?}"
        );
    }
}
