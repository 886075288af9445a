//! Helpers shared by the integration tests that check what a run leaves behind.

use std::path::{Path, PathBuf};

/// The cgroup directories a modelvet process with this pid made (`modelvet-<pid>-...`), in every
/// hierarchy under /sys/fs/cgroup.
pub fn groups_of(pid: u32) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, prefix: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), depth - 1, prefix, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        Path::new("/sys/fs/cgroup"),
        4,
        &format!("modelvet-{pid}-"),
        &mut out,
    );
    out
}
