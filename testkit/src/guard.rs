//! Servers for tests run under a small shell guard that holds our end of a
//! pipe: when this process exits, however it exits, the pipe closes and the
//! guard stops the servers and deletes their data.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

pub struct Guard(Mutex<Option<(Child, ChildStdin)>>);

impl Guard {
    /// Runs `start` in `sh`; it must start the servers in the background
    /// and collect their pids in `$pids`. `command` carries the environment.
    pub fn spawn(mut command: Command, start: &str, data_dir: &Path) -> Result<Self, String> {
        let script = format!(
            "pids=''\n{start}\nread _\nkill $pids 2>/dev/null\nwait\nrm -rf \"$GUARD_DIR\""
        );
        let mut child = command
            .arg("-c")
            .arg(script)
            .env("GUARD_DIR", data_dir)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start sh: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        Ok(Self(Mutex::new(Some((child, stdin)))))
    }

    /// Stops the servers now (they also stop when this process exits).
    pub fn stop(&self) {
        if let Some((mut child, mut stdin)) = self.0.lock().expect("lock").take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}
