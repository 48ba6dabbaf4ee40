//! A task genuinely hung in `TASK_UNINTERRUPTIBLE`, for the hung-task kernel tests, made with a
//! minimal FUSE server (no device-mapper needed), and the hung-task detector's knobs set for a
//! test and restored on drop.
//!
//! How the hang is made ([`HungTask::start`]):
//! - the calling (test) thread moves into a private mount namespace: the FUSE mount is never
//!   visible to the host, and it disappears with the namespace even if the test is killed;
//! - a server child process (this test binary run again as `--exact <child test>`, whose body
//!   is [`serve_if_child`]) opens `/dev/fuse`, mounts it on a temporary directory, answers
//!   INIT, LOOKUP (ENOENT) and GETATTR of the root, and never answers the first MKDIR;
//! - thread [`HOLDER_COMM`] runs `mkdir(dir/held)`: the VFS takes the root directory's inode
//!   lock, sends MKDIR and waits (interruptibly, state S) for the reply that never comes;
//! - thread [`BLOCKED_COMM`] runs `mkdir(dir/blocked)` and sleeps in `down_write` of the same
//!   inode rwsem in `TASK_UNINTERRUPTIBLE`: the task khungtaskd reports (it skips the holder,
//!   which is not in D state, and TASK_KILLABLE waits).
//!
//! Why the server is a separate process: when a thread waits for a FUSE reply the server has
//! already read and its process gets a fatal signal (Ctrl-C), the kernel waits for the reply
//! uninterruptibly. With the server in the same process nothing would ever answer, and the
//! process could never exit. As a child with `PR_SET_PDEATHSIG`, the server dies with the test,
//! its `/dev/fuse` descriptor closes, the kernel aborts the connection and both threads return.
//!
//! Clean-up ([`HungTask::finish`], or `Drop` after a failed assertion): a forced unmount aborts
//! the connection (`fuse_umount_begin` → `fuse_abort_conn`; both threads return with
//! ECONNABORTED / ENOTCONN), the server sees ENODEV and exits (killed otherwise), the threads
//! are joined, the mount is detached and the directory removed.
//!
//! The FUSE protocol side is in `fuse.rs`, the sysctl guard in `knobs.rs` (both `std`-only, so
//! the agent's kernel tests can include them).
#![allow(dead_code)]

pub mod fuse;
pub mod knobs;

pub use knobs::{hang_ready, HungTaskKnobs};

use fuse::MARK;
use knobs::{pid_alive, task_state};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Command (thread name) of the thread that holds the directory lock (state S).
pub const HOLDER_COMM: &str = "huatuo-hang-a";
/// Command (thread name) of the thread blocked in D state on the directory's rwsem.
pub const BLOCKED_COMM: &str = "huatuo-hung-b";

/// Environment of the server child: the directory to mount on, and the parent's pid.
const CHILD_DIR_ENV: &str = "HUATUO_FUSE_SERVER_DIR";
const CHILD_PARENT_ENV: &str = "HUATUO_FUSE_SERVER_PARENT";

/// A thread blocked in D state on a FUSE directory's inode lock, and everything that keeps it
/// there; see the module documentation.
pub struct HungTask {
    /// The mount point.
    dir: PathBuf,
    server: Option<Child>,
    /// Protocol lines of the server, as they come.
    lines: Option<Receiver<String>>,
    /// Every line the server printed (for failure messages).
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    holder: Option<JoinHandle<std::io::Result<()>>>,
    blocked: Option<JoinHandle<std::io::Result<()>>>,
    /// Thread id of the blocked thread.
    tid: i32,
    cleaned: bool,
}

impl HungTask {
    /// Makes the hang, serving it from a child running this test binary with
    /// `--exact child_test` (a test whose body is [`serve_if_child`]). Returns once the
    /// blocked thread is in D state. The calling thread stays in a private mount namespace.
    pub fn start(child_test: &str) -> Result<HungTask, String> {
        private_mount_namespace()?;
        remove_stale_dirs();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "huatuo-hang-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // from here on, a failure cleans up through Drop
        let mut hang = HungTask {
            dir,
            server: None,
            lines: None,
            log: Arc::new(Mutex::new(vec![])),
            reader: None,
            holder: None,
            blocked: None,
            tid: 0,
            cleaned: false,
        };
        hang.spawn_server(child_test)?;
        hang.expect("ready", Duration::from_secs(10))?;
        if !hang.mounted() {
            return Err(format!(
                "the server said ready but nothing is mounted on {}",
                hang.dir.display()
            ));
        }

        let held = hang.dir.join("held");
        hang.holder = Some(spawn_named(HOLDER_COMM, move || std::fs::create_dir(held))?);
        hang.expect("withheld", Duration::from_secs(10))?;

        let (tid_tx, tid_rx) = mpsc::channel();
        let blocked = hang.dir.join("blocked");
        hang.blocked = Some(spawn_named(BLOCKED_COMM, move || {
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            std::fs::create_dir(blocked)
        })?);
        hang.tid = tid_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| format!("the blocked thread did not start: {e}"))?;
        hang.wait_state('D', Duration::from_secs(10))?;
        Ok(hang)
    }

    /// Process id of the test process (the blocked thread's tgid).
    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    /// Thread id of the blocked thread.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// `/proc/<pid>/task/<tid>/<file>` of the blocked thread, trimmed ("" when unreadable).
    pub fn proc_file(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/self/task/{}/{file}", self.tid))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default()
    }

    /// State letter of the blocked thread (`D`), from /proc/<pid>/task/<tid>/stat.
    pub fn state(&self) -> Option<char> {
        task_state(self.tid as u32)
    }

    /// Every line the server printed so far.
    pub fn server_log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the FUSE file system is mounted on the directory (in this thread's namespace).
    pub fn mounted(&self) -> bool {
        mounted_on(&self.dir)
    }

    /// Releases the hang and removes every trace; returns what could not be cleaned.
    pub fn finish(mut self) -> Vec<String> {
        self.cleanup()
    }

    fn spawn_server(&mut self, child_test: &str) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("test binary: {e}"))?;
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "--ignored",
                child_test,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, &self.dir)
            .env(CHILD_PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn the FUSE server: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        self.server = Some(child);
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        self.reader = Some(
            std::thread::Builder::new()
                .name("huatuo-fuse-log".into())
                .spawn(move || {
                    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                        // libtest may print `test name ... ` before it on the same line
                        if let Some(at) = line.find(MARK) {
                            let _ = tx.send(line[at + MARK.len()..].to_string());
                        }
                        log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    }
                })
                .map_err(|e| format!("spawn the log reader: {e}"))?,
        );
        self.lines = Some(rx);
        Ok(())
    }

    /// Waits for a protocol line of the server starting with `what`.
    fn expect(&mut self, what: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let lines = self.lines.as_ref().expect("server started");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with(what) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no `{what}` from the FUSE server in {timeout:?}; its output: {:#?}",
                        self.server_log()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.server.as_mut().map(|c| c.wait());
                    return Err(format!(
                        "the FUSE server exited ({status:?}) before `{what}`; its output: {:#?}",
                        self.server_log()
                    ));
                }
            }
        }
    }

    fn wait_state(&self, want: char, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state();
            if state == Some(want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "thread {} is in state {state:?}, not {want}, after {timeout:?}; \
                     wchan {:?}, stack:\n{}",
                    self.tid,
                    self.proc_file("wchan"),
                    self.proc_file("stack")
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cleanup(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.cleaned, true) {
            return vec![];
        }
        let mut problems = vec![];
        let path = cstring(&self.dir);
        // 1. Abort the connection: a forced unmount runs fuse_umount_begin, which aborts every
        //    request (the withheld MKDIR ends with ECONNABORTED). EBUSY is expected while the
        //    threads are still inside; the abort happened anyway.
        if self.mounted() {
            // SAFETY: valid NUL-terminated path.
            if unsafe { libc::umount2(path.as_ptr(), libc::MNT_FORCE) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EBUSY) {
                    problems.push(format!("forced unmount of {}: {e}", self.dir.display()));
                }
            }
        }
        // 2. The server reads ENODEV and exits; killing it also aborts (its /dev/fuse closes).
        if let Some(mut child) = self.server.take() {
            if !wait_child(&mut child, Duration::from_secs(3)) {
                let _ = child.kill();
                if !wait_child(&mut child, Duration::from_secs(5)) {
                    problems.push(format!("FUSE server {} did not die", child.id()));
                }
            }
        }
        // 3. The holder returns with ECONNABORTED, then the blocked thread takes the lock and
        //    fails with ENOTCONN.
        for (name, handle) in [
            (HOLDER_COMM, self.holder.take()),
            (BLOCKED_COMM, self.blocked.take()),
        ] {
            let Some(handle) = handle else { continue };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !handle.is_finished() {
                problems.push(format!("thread {name} is still blocked"));
                continue;
            }
            match handle.join() {
                Ok(Ok(())) => problems.push(format!("mkdir of thread {name} succeeded")),
                Ok(Err(_)) => {}
                Err(_) => problems.push(format!("thread {name} panicked")),
            }
        }
        // 4. Detach what is left of the mount.
        if self.mounted() {
            // SAFETY: valid NUL-terminated path.
            if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
                problems.push(format!(
                    "detach {}: {}",
                    self.dir.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        if self.mounted() {
            problems.push(format!("{} is still mounted", self.dir.display()));
        }
        // 5. The directory (empty: nothing was ever created in it).
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            problems.push(format!("remove {}: {e}", self.dir.display()));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        problems
    }
}

impl Drop for HungTask {
    fn drop(&mut self) {
        for problem in self.cleanup() {
            eprintln!("hang_util: clean-up: {problem}");
        }
    }
}

/// Removes the (empty) mount points left by test processes that were killed.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("huatuo-hang-")
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| pid != std::process::id() && !pid_alive(pid)) {
            // only an empty directory goes
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

fn spawn_named<F>(name: &str, f: F) -> Result<JoinHandle<std::io::Result<()>>, String>
where
    F: FnOnce() -> std::io::Result<()> + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| format!("spawn thread {name}: {e}"))
}

fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

/// Moves the calling thread into a new mount namespace whose mounts do not propagate back.
fn private_mount_namespace() -> Result<(), String> {
    // SAFETY: unshare has no memory preconditions; CLONE_NEWNS (with its implied CLONE_FS)
    // applies to the calling thread only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    let root = CString::new("/").expect("static");
    // SAFETY: NULL source/type/data are allowed for a propagation change; `root` is valid.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "make / private in the new namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Whether something is mounted on `dir`, in the calling thread's mount namespace
/// (/proc/thread-self: /proc/self would be the main thread's namespace).
fn mounted_on(dir: &Path) -> bool {
    let target = dir.to_string_lossy();
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(target.as_ref()))
}

/// The body of the server child's test: does nothing unless this process was started by
/// [`HungTask::start`]; then mounts the FUSE file system and serves it until the connection
/// is aborted (or the parent dies, which kills this process).
pub fn serve_if_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let parent: i32 = std::env::var(CHILD_PARENT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("parent pid");
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; getppid has no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            // the parent died before the signal was armed
            std::process::exit(1);
        }
    }
    // std opens with O_CLOEXEC: the descriptor stays in this process only
    let fuse = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .expect("open /dev/fuse");
    let data = CString::new(format!(
        "fd={},rootmode=40000,user_id=0,group_id=0",
        fuse.as_raw_fd()
    ))
    .expect("no NUL");
    let (source, fstype) = (
        CString::new("huatuo-hang").unwrap(),
        CString::new("fuse").unwrap(),
    );
    let target = cstring(Path::new(&dir));
    // SAFETY: valid NUL-terminated strings; `data` is the fuse option string.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        println!("{MARK}error mount: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    println!("{MARK}ready");
    fuse::serve(&fuse);
    println!("{MARK}done");
}
