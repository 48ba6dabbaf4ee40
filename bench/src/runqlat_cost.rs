//! runqlat's cost on sched_switch as the cost tools read it from a loaded template set.

use huatuo_bpf::Templates;

/// (runs, ns) runqlat's attached sched_switch program of `templates` counted so far (with
/// `kernel.bpf_stats_enabled` on); panics when a template did not load (bench tools only).
pub fn sched_switch_cost(templates: &Templates) -> (u64, u64) {
    let mut total = (0, 0);
    for st in templates.status() {
        assert!(st.loaded, "{st:?}");
        for p in st.programs.iter().filter(|p| p.attached.is_some()) {
            if p.program == "sched_switch" {
                total.0 += p.run_count;
                total.1 += p.run_time_ns;
            }
        }
    }
    total
}
