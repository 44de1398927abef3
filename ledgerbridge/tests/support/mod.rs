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

/// Every thread's stack of a process (gdb, when the machine has it), to show where it hangs.
pub(crate) fn thread_stacks(pid: u32) -> String {
    Command::new("timeout")
        .args([
            "60",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 30",
        ])
        .output()
        .map_or_else(
            |e| format!("(no gdb: {e})"),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        )
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

/// Fails a test that runs longer than it can: dropped at the test's end, it does nothing;
/// when `limit` passes first, it writes the stacks of the test process and of every process it
/// started (to the real standard error, which the test harness does not capture), kills those
/// processes and aborts. A hung test then fails in minutes with the place it hangs, instead of
/// holding CI until its time runs out.
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
        let mut report =
            format!("\n{test}: still running after {limit:?}; the test process's threads:\n");
        report.push_str(&thread_stacks(me));
        let children = descendants(me);
        for pid in &children {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            report.push_str(&format!(
                "\nprocess {pid} ({cmdline}), its threads:\n{}",
                thread_stacks(*pid)
            ));
        }
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
