//! Folded stacks and HUATUO's `flamedata`: pure transformations of counted stacks.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One counted stack: frames from the root (outermost caller) to the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedStack {
    /// Command of the sampled task, the first element of the folded line.
    pub comm: String,
    /// Process id of the sampled task.
    pub pid: u32,
    /// The task's cgroup id (v1 cpu controller, or v2 on a unified hierarchy); 0 unknown.
    pub cgroup: u64,
    /// Symbolized frames, root first; a profile's stacks share each distinct name.
    pub frames: Vec<Arc<str>>,
    /// Samples that hit this stack.
    pub count: u64,
}

/// One frame of HUATUO's flame data (a nested-set flame graph in depth-first order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlameFrame {
    /// Depth: 0 for the root `total`, 1 for commands, then frames.
    pub level: usize,
    /// Samples in this frame and everything it called.
    pub value: u64,
    /// Samples in this frame itself.
    #[serde(rename = "self")]
    pub self_value: u64,
    /// Frame name.
    pub label: String,
}

/// Folded stack lines `comm;frame;...;frame count`, merged by identical path, sorted by
/// descending count then text.
pub fn folded(stacks: &[CountedStack]) -> Vec<String> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for stack in stacks {
        let mut path = sanitize(&stack.comm);
        for frame in &stack.frames {
            path.push(';');
            path.push_str(&sanitize(frame));
        }
        *merged.entry(path).or_default() += stack.count;
    }
    let mut lines: Vec<(String, u64)> = merged.into_iter().collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    lines
        .into_iter()
        .map(|(mut path, count)| {
            path.push(' ');
            path.push_str(&count.to_string());
            path
        })
        .collect()
}

/// `;` separates frames and a space the count: neither may appear inside a frame.
fn sanitize(name: &str) -> String {
    name.replace([';', ' '], "_")
}

/// A frame of the flame tree; names are borrowed from the stacks.
#[derive(Default)]
struct Node<'a> {
    value: u64,
    self_value: u64,
    children: BTreeMap<&'a str, Node<'a>>,
}

/// HUATUO's flame data: the root `total`, then every frame depth-first, children in name
/// order, with total and self sample counts.
pub fn flamedata(stacks: &[CountedStack]) -> Vec<FlameFrame> {
    let mut root = Node::default();
    for stack in stacks {
        root.value += stack.count;
        let mut node = &mut root;
        for name in std::iter::once(stack.comm.as_str()).chain(stack.frames.iter().map(|f| &**f)) {
            node = node.children.entry(name).or_default();
            node.value += stack.count;
        }
        node.self_value += stack.count;
    }
    let mut out = vec![];
    flatten(&root, "total", 0, &mut out);
    out
}

fn flatten(node: &Node<'_>, label: &str, level: usize, out: &mut Vec<FlameFrame>) {
    out.push(FlameFrame {
        level,
        value: node.value,
        self_value: node.self_value,
        label: label.to_string(),
    });
    for (name, child) in &node.children {
        flatten(child, name, level + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(comm: &str, frames: &[&str], count: u64) -> CountedStack {
        CountedStack {
            comm: comm.into(),
            pid: 1,
            cgroup: 0,
            frames: frames.iter().map(|f| Arc::from(*f)).collect(),
            count,
        }
    }

    #[test]
    fn folds_and_merges_identical_paths() {
        let stacks = [
            stack("app", &["main", "spin"], 5),
            stack("app", &["main", "io"], 2),
            stack("app", &["main", "spin"], 3),
            stack("my tool", &["a;b"], 1),
        ];
        assert_eq!(
            folded(&stacks),
            vec!["app;main;spin 8", "app;main;io 2", "my_tool;a_b 1"]
        );
    }

    #[test]
    fn flamedata_is_a_nested_set_with_self_counts() {
        let stacks = [
            stack("app", &["main", "spin"], 8),
            stack("app", &["main"], 1),
            stack("app", &["main", "io"], 2),
        ];
        let frames = flamedata(&stacks);
        let view: Vec<(usize, u64, u64, &str)> = frames
            .iter()
            .map(|f| (f.level, f.value, f.self_value, f.label.as_str()))
            .collect();
        assert_eq!(
            view,
            vec![
                (0, 11, 0, "total"),
                (1, 11, 0, "app"),
                (2, 11, 1, "main"),
                (3, 2, 2, "io"),
                (3, 8, 8, "spin"),
            ]
        );
        let json = serde_json::to_value(&frames[2]).unwrap();
        assert_eq!(json["self"], 1);
        assert_eq!(json["level"], 2);
    }
}
