//! SVG flame graphs of folded stacks, rendered with the `inferno` crate.

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
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = unit.into();
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.iter().map(String::as_str), &mut out)
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
}
