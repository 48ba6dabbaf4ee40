//! The capture actions the engine provides to every rule, as catalog schemas.

use huatuo_dsl::catalog::{CaptureArg, CaptureSchema, FieldSchema, FieldType};
use huatuo_dsl::units::Dim;

fn arg(name: &str, ty: FieldType, dim: Dim, choices: &[&str], required: bool) -> CaptureArg {
    CaptureArg {
        name: name.into(),
        ty,
        dim,
        choices: choices.iter().map(|c| c.to_string()).collect(),
        required,
    }
}

fn produces(name: &str, ty: FieldType, description: &str) -> FieldSchema {
    FieldSchema {
        name: name.into(),
        ty,
        dim: Dim::Count,
        description: description.into(),
    }
}

/// Every capture action: the engine-wide ones and `stack`, which templates supply.
pub fn capture_schemas() -> Vec<CaptureSchema> {
    vec![
        CaptureSchema {
            name: "stack".into(),
            description: "the kernel and/or user stack the template recorded with the event".into(),
            args: vec![arg("kind", FieldType::Str, Dim::Count, &["kernel", "user", "both"], false)],
            produces: vec![produces("stack", FieldType::List, "stack frames, innermost first")],
            source_specific: true,
        },
        CaptureSchema {
            name: "profile".into(),
            description: "samples on-CPU stacks with perf_event for a duration, host-wide or for the sample's container".into(),
            args: vec![
                arg("scope", FieldType::Str, Dim::Count, &["host", "container"], false),
                arg("duration", FieldType::Int, Dim::Time, &[], false),
            ],
            produces: vec![produces(
                "profile",
                FieldType::Json,
                "flame graph frames [{level, value, self, label}] (HUATUO's flamedata: write `as flamedata`); folded stacks go to `folded_stacks`",
            )],
            source_specific: false,
        },
        CaptureSchema {
            name: "waitrate".into(),
            description: "watches the sample's container for a duration with a temporary sched_switch program: which cgroups ran on a CPU while the container had runnable tasks waiting there".into(),
            args: vec![arg("duration", FieldType::Int, Dim::Time, &[], false)],
            produces: vec![produces(
                "waitrate",
                FieldType::Json,
                "competitors, most CPU time first: [{container_id, container_hostname, cgroup_id, cpu_time (ns), slices, cpus}]; container_id is empty for a cgroup that is no container (the host's own tasks)",
            )],
            source_specific: false,
        },
        CaptureSchema {
            name: "tasks".into(),
            description: "tasks in a given state (D, R) on the host or in the sample's container, with their kernel stacks".into(),
            args: vec![
                arg("state", FieldType::Str, Dim::Count, &[], false),
                arg("scope", FieldType::Str, Dim::Count, &["host", "container"], false),
                arg("max", FieldType::Int, Dim::Count, &[], false),
                arg("format", FieldType::Str, Dim::Count, &["list", "text"], false),
            ],
            produces: vec![produces(
                "tasks",
                FieldType::Json,
                "format list (the default): [{pid, tid, comm, state, stack}]; format text: the same tasks as the kernel log shows them, HUATUO's task-stack text (a `task:<comm> state:<S> pid:<tid> tgid:<pid>` line, then the frames indented); a list and a text of the same tasks for one sample come from one scan",
            )],
            source_specific: false,
        },
        CaptureSchema {
            name: "top".into(),
            description: "the top processes by resident memory, CPU time or storage IO bytes".into(),
            args: vec![
                arg("by", FieldType::Str, Dim::Count, &["rss", "cpu", "io"], true),
                arg("n", FieldType::Int, Dim::Count, &[], false),
                arg("files", FieldType::Int, Dim::Count, &[], false),
                arg("under", FieldType::Str, Dim::Count, &[], false),
            ],
            produces: vec![produces(
                "top",
                FieldType::Json,
                "sorted descending, in HUATUO's record shape: by rss [{pid, process_name, memory_size}] (memburst's top_memory_usage); by io [{pid, comm, fs_read, fs_write, disk_read, disk_write}] (iotracing's process_io_data; bytes since the process started); by cpu [{pid, comm, cpu_time}]; with files > 0 also file_stat (the first `files` open paths), file_inode (the inode of each, null when unreadable) and file_count; with under (a directory, e.g. a mount point) only processes with files open there, and only those files",
            )],
            source_specific: false,
        },
        CaptureSchema {
            name: "file".into(),
            description: "a snapshot of a /proc or /sys file (at most 64 KiB)".into(),
            args: vec![arg("path", FieldType::Str, Dim::Count, &[], true)],
            produces: vec![produces("file", FieldType::Str, "the file's content")],
            source_specific: false,
        },
    ]
}
