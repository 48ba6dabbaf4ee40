//! CPU time of the calling thread, the clock the script budget and the continuous profiler
//! charge their own work to.

use std::time::Duration;

/// CPU time used by the calling thread (`CLOCK_THREAD_CPUTIME_ID`); zero if the clock cannot
/// be read.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, a valid and exclusive borrow.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::thread_cpu_time;

    #[test]
    fn spinning_advances_the_thread_clock() {
        let before = thread_cpu_time();
        let wall = std::time::Instant::now();
        let mut x = 1u64;
        while wall.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(3));
        }
        let spent = thread_cpu_time() - before;
        assert!(spent >= std::time::Duration::from_millis(1), "{spent:?}");
    }
}
