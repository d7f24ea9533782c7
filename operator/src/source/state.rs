//! The CLI's state file: what the status subresource holds in a cluster (AWS ids, the create
//! request id, conditions), plus the last applied object so a resource removed from the directory
//! can still have its deletion policy carried out (`apply --prune`).
//!
//! A save that changes more than the volatile fields (`same_status`) rewrites the file atomically
//! and durably (a temp file of its own, fsync, rename, fsync of the directory), so a crash — or a
//! power cut — right after CreateAccount still leaves the request id on disk; the CLI writes the
//! file once more at the end of a run. The file is readable by its owner only (it names accounts
//! and request ids), and one run at a time holds it: a second run on the same file says so and
//! stops instead of interleaving its writes.

use crate::reconcile::{Key, Kind, Resource, StatusSink, same_status};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Entry {
    /// The resource as last applied (without status).
    pub object: Value,
    pub status: Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    resources: BTreeMap<String, Entry>,
}

pub struct StateFile {
    path: PathBuf,
    state: Mutex<State>,
    /// The exclusive lock on `<path>.lock`, held while this run lives.
    _lock: std::fs::File,
    /// Temp files written so far (each write has its own name).
    writes: std::sync::atomic::AtomicU64,
}

/// Opens (creating) a file readable and writable by its owner only.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl StateFile {
    /// Opens the file, or starts empty when it does not exist; fails when another run holds it.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let lock_path = path.with_extension("lock");
        let lock =
            private_file(&lock_path, false).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "another run is using the state file {} (it holds {}): wait for it to finish, or pass another --state",
                    path.display(),
                    lock_path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("{}: cannot lock: {e}", lock_path.display()));
            }
        }
        let state = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a state file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                version: 1,
                ..Default::default()
            },
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(state),
            _lock: lock,
            writes: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the stored status into each resource.
    pub fn load_statuses(&self, resources: &mut [Resource]) {
        let state = self.state.lock().expect("not poisoned");
        for r in resources {
            if let Some(e) = state.resources.get(&r.key().to_string())
                && !e.status.is_null()
            {
                // A status that no longer parses is dropped: observation rebuilds it.
                let _ = r.set_status_json(e.status.clone());
            }
        }
    }

    /// Records the desired objects (spec as applied).
    pub fn remember(&self, resources: &[Resource]) {
        let mut state = self.state.lock().expect("not poisoned");
        for r in resources {
            let object = object_json(r);
            state
                .resources
                .entry(r.key().to_string())
                .or_default()
                .object = object;
        }
    }

    /// Resources in the state file that are not among `desired` (removed from the directory).
    pub fn orphans(&self, desired: &[Resource]) -> Vec<Resource> {
        let keep: std::collections::BTreeSet<String> =
            desired.iter().map(|r| r.key().to_string()).collect();
        let state = self.state.lock().expect("not poisoned");
        state
            .resources
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .filter_map(|(_, e)| {
                let kind = Kind::parse(e.object["kind"].as_str()?)?;
                let mut r = crate::source::dir::parse_stored(kind, &e.object)?;
                let _ = r.set_status_json(e.status.clone());
                Some(r)
            })
            .collect()
    }

    pub fn forget(&self, key: &Key) -> Result<(), String> {
        self.state
            .lock()
            .expect("not poisoned")
            .resources
            .remove(&key.to_string());
        self.write()
    }

    pub fn write(&self) -> Result<(), String> {
        // Held until the rename: concurrent saves must not interleave on the temp file.
        let state = self.state.lock().expect("not poisoned");
        let text = serde_json::to_string_pretty(&*state).map_err(|e| e.to_string())?;
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tmp = self
            .path
            .with_extension(format!("tmp.{}.{n}", std::process::id()));
        let result = (|| {
            use std::io::Write;
            let mut file = private_file(&tmp, true)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename is durable only once the directory is.
            let dir = self
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::File::open(dir)?.sync_all()
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", self.path.display())
        })
    }
}

fn object_json(r: &Resource) -> Value {
    let mut v = r.to_json();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

#[async_trait]
impl StatusSink for StateFile {
    async fn save(&self, key: &Key, status: &Value) -> Result<(), String> {
        let changed = {
            let mut state = self.state.lock().expect("not poisoned");
            let entry = state.resources.entry(key.to_string()).or_default();
            let changed = !same_status(&entry.status, status);
            entry.status = status.clone();
            changed
        };
        // Rewriting N statuses per resource would make a pass O(N²); volatile fields wait.
        if changed { self.write() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_is_private_durable_and_held_by_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        let first = StateFile::open(&path).unwrap();
        first.write().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "owner only: it names accounts");
        }
        // No temp file is left behind.
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
        // A second run on the same file is refused, plainly.
        let err = StateFile::open(&path).err().expect("held by the first run");
        assert!(err.contains("another run is using the state file"), "{err}");
        drop(first);
        assert!(
            StateFile::open(&path).is_ok(),
            "free once the first run ended"
        );
    }
}
