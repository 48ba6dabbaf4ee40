//! Tasks as the kernel log shows them, the text HUATUO stores for task stacks (`cpus_stack`,
//! `blocked_processes_stack`, dload's `stack`): per task a `task:<comm> state:<S> pid:<tid>
//! tgid:<pid>` line, then its kernel frames one a line, indented.

use serde_json::Value as Json;
use std::fmt::Write;

/// The tasks of a `tasks()` capture (`[{pid, tid, comm, state, stack}]`) as one text; an empty
/// text when there are none.
pub fn render(tasks: &Json) -> String {
    let mut text = String::new();
    for task in tasks.as_array().map(Vec::as_slice).unwrap_or_default() {
        let word = |key: &str| task.get(key).and_then(Json::as_str).unwrap_or("");
        let id = |key: &str| task.get(key).and_then(Json::as_i64).unwrap_or(0);
        let _ = writeln!(
            text,
            "task:{:<15} state:{} pid:{:<5} tgid:{:<5}",
            word("comm"),
            word("state"),
            id("tid"),
            id("pid")
        );
        for frame in task
            .get("stack")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(frame) = frame.as_str() {
                let _ = writeln!(text, "  {frame}");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_task_is_a_header_line_then_its_frames_indented() {
        let tasks = json!([
            {"pid": 100, "tid": 101, "comm": "worker", "state": "D",
             "stack": ["io_schedule+0x12", "folio_wait_bit+0x140"]},
            {"pid": 7, "tid": 7, "comm": "db", "state": "D", "stack": []},
        ]);
        assert_eq!(
            render(&tasks),
            "task:worker          state:D pid:101   tgid:100  \n  io_schedule+0x12\n  folio_wait_bit+0x140\n\
             task:db              state:D pid:7     tgid:7    \n"
        );
    }

    #[test]
    fn no_tasks_is_an_empty_text() {
        assert_eq!(render(&json!([])), "");
        assert_eq!(render(&json!({"not": "a list"})), "");
    }
}
