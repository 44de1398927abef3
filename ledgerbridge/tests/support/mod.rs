//! Helpers shared by the CLI and crash tests.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A TCP port free on loopback right now (for a server a test starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where each thread of a process is (gdb, when the machine has it), to show where it hangs:
/// for each thread that runs our code, its innermost frame and up to ten frames of our code
/// (the test's or the node's crates); the other threads (idle runtime workers, the broker
/// client's) are only counted.
pub(crate) fn thread_stacks(pid: u32) -> String {
    let raw = Command::new("timeout")
        .args([
            "60",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 60",
        ])
        .output()
        .map_or_else(
            |e| format!("(no gdb: {e})"),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        );
    compact_stacks(&raw)
}

fn compact_stacks(raw: &str) -> String {
    // Our crates are built from paths relative to the workspace; the dependencies' frames name
    // absolute paths, the standard library's `library/...`, the C library's `../sysdeps`.
    let ours = |frame: &str| {
        frame.rsplit_once(" at ").is_some_and(|(_, at)| {
            !["/", "..", "./", "library/"]
                .iter()
                .any(|p| at.starts_with(p))
        })
    };
    let mut out = String::new();
    let mut others = 0;
    for thread in raw.split("\nThread ").skip(1) {
        let mut lines = thread.lines();
        let header = lines.next().unwrap_or_default();
        let frames: Vec<&str> = lines.filter(|l| l.starts_with('#')).collect();
        let mine: Vec<&str> = frames
            .iter()
            .copied()
            .filter(|f| ours(f))
            .take(10)
            .collect();
        // The watchdog's own thread, taking these stacks.
        if mine.iter().any(|f| f.contains("thread_stacks")) {
            continue;
        }
        if mine.is_empty() {
            others += 1;
            continue;
        }
        out.push_str(&format!("Thread {header}\n"));
        if let Some(first) = frames.first().filter(|f| !ours(f)) {
            out.push_str(&format!("  {first}\n"));
        }
        for f in mine {
            out.push_str(&format!("  {f}\n"));
        }
    }
    if out.is_empty() && others == 0 {
        return raw.to_owned();
    }
    out.push_str(&format!("({others} other threads, none in our code)\n"));
    out
}

/// Sends SIGTERM to `child` (`what`) and waits for it to exit. A process still running after
/// `within` is a defect: its threads' stacks are taken, it is killed, and the test fails with
/// them.
pub(crate) fn terminate_within(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let stacks = thread_stacks(child.id());
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not stop within {within:?} of SIGTERM; its threads:\n{stacks}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `child`'s standard output up to the line containing `last` (a banner's end) and
/// returns the lines read. A process that has not printed it within `within` (or has exited)
/// is an error carrying what it printed and, when it still runs, its threads' stacks; it is
/// killed then.
pub(crate) fn read_banner(
    child: &mut Child,
    last: &'static str,
    within: Duration,
) -> Result<Vec<String>, String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = mpsc::channel();
    // The reader ends at the banner's last line (closing the pipe as before) or at end of file.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains(last);
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = line.contains(last);
                lines.push(line);
                if done {
                    return Ok(lines);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                return Err(format!(
                    "the process exited ({status:?}) before {last:?}; it printed:\n{}",
                    lines.join("\n")
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let stacks = thread_stacks(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no {last:?} within {within:?}; it printed:\n{}\nits threads:\n{stacks}",
                    lines.join("\n")
                ));
            }
        }
    }
}

/// Log files whose end a watchdog shows when its test hangs.
static LOGS: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Shows the end of the log at `path` (a node's) if the test hangs.
#[allow(dead_code)] // the CLI tests' nodes log to the test's own output instead
pub(crate) fn show_log_on_hang(path: impl Into<std::path::PathBuf>) {
    let path = path.into();
    if let Ok(mut logs) = LOGS.lock()
        && !logs.contains(&path)
    {
        logs.push(path);
    }
}

/// Fails a test that runs longer than it can: dropped at the test's end, it does nothing;
/// when `limit` passes first, it writes the end of the nodes' logs, where the threads of every
/// process the test started are and, last, where the test process's threads are (to the real
/// standard error, which the test harness does not capture), kills those processes and aborts.
/// A hung test then fails in minutes with the place it hangs, instead of holding CI until its
/// time runs out.
pub(crate) struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

/// A watchdog for the calling test (named after its thread, as the test harness names it).
pub(crate) fn watchdog(limit: Duration) -> Watchdog {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit) != Err(mpsc::RecvTimeoutError::Timeout) {
            return;
        }
        let me = std::process::id();
        let mut report = format!("\n{test}: still running after {limit:?}\n");
        for log in LOGS.lock().map(|l| l.clone()).unwrap_or_default() {
            // Logs of tests that ended are gone with their directories.
            let Ok(text) = std::fs::read_to_string(&log) else {
                continue;
            };
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            report.push_str(&format!("\nthe end of {}:\n", log.display()));
            for line in tail.iter().rev() {
                report.push_str(line);
                report.push('\n');
            }
        }
        let children = descendants(me);
        for pid in &children {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            report.push_str(&format!(
                "\nprocess {pid} ({cmdline}):\n{}",
                thread_stacks(*pid)
            ));
        }
        report.push_str(&format!(
            "\nthe test process:\n{}\n{test} hung: killed after {limit:?} (above: where)\n",
            thread_stacks(me)
        ));
        let _ = std::io::stderr().write_all(report.as_bytes());
        for pid in children {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::process::abort();
    });
    Watchdog(tx)
}

/// Processes descending from `root` (from `/proc`), parents first.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command's closing parenthesis: state, then the parent's pid.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// An HTTP client whose every request gives up after a minute: a node that stops answering
/// fails the test with the request's error instead of hanging it.
pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}
