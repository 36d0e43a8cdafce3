//! Output folders written as one unit: [`OutputDir`].
//!
//! A command that writes several files into `-o DIR` opens an [`OutputDir`] before any computation
//! (so a bad path fails at once), writes everything into its staging folder, then commits:
//!
//! 1. **Checks first**: `DIR` must be a folder or not exist, and its parent must take a new folder.
//! 2. **A lock**: `.DIR.lock` beside `DIR` is held for the whole run; a second run into the same
//!    folder is refused ([`OutputError::Locked`]) instead of racing the first (last writer wins).
//! 3. **Staging**: files go to `.DIR.tmp-PID/` beside `DIR` (same file system, so the commit is
//!    renames). Staging left by a dead process (killed, power loss) is removed by the next run
//!    into `DIR`: holding the lock proves no live run owns it (and a previous folder that a killed
//!    commit had set aside as `.DIR.old-PID/` is put back). On error (the value is dropped
//!    uncommitted) and on SIGINT/SIGTERM (the binary calls [`abandon_all`]) the staging goes too.
//! 4. **Commit**: the staging folder becomes `DIR` by renames: files in `DIR` that are not this
//!    command's products (a user's own notes, say) are moved into the staging folder first, the
//!    old `DIR` is renamed aside, the staging folder renamed to `DIR`, the old one removed. Any
//!    failure before the last rename restores the previous `DIR`; a reader sees the previous run's
//!    files or this run's, never a mix (products of the previous run that this run did not write,
//!    e.g. an optional probability map, go with the old folder).
//!
//! Written by hand: the crates for atomic writes handle one file, not a folder with a lock and
//! stale-staging recovery; `std::fs::File::try_lock` gives the advisory lock.
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// Why an output folder cannot be written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output path exists and is not a folder.
    #[error("{path}: exists and is not a folder (choose another output folder)")]
    NotAFolder { path: PathBuf },
    /// The folder (or its parent) cannot be created or written.
    #[error("{path}: cannot write here: {source}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another run holds the folder's lock.
    #[error("{path}: another nodal run is writing this folder (lock {lock}); wait for it or choose another")]
    Locked { path: PathBuf, lock: PathBuf },
    /// Moving the finished files into place failed; the previous contents were restored.
    #[error("{path}: could not commit the output: {source}")]
    Commit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OutputError {
    /// True when the user can fix it by choosing the output folder (the path is a file, read-only,
    /// or in use); false for a failure while committing (e.g. a full disk).
    pub fn is_input(&self) -> bool {
        !matches!(self, OutputError::Commit { .. })
    }
}

/// Staging folders and locks of the live [`OutputDir`]s, for [`abandon_all`].
static LIVE: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// Removes the staging folder and lock file of every uncommitted [`OutputDir`] of this process.
/// For a signal handler that then exits: the open values are never used again.
pub fn abandon_all() {
    let live = match LIVE.lock() {
        Ok(l) => l.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for (staging, lock) in live {
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_file(&lock);
    }
}

fn register(staging: &Path, lock: &Path, add: bool) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    if add {
        live.push((staging.to_path_buf(), lock.to_path_buf()));
    } else {
        live.retain(|(s, _)| s != staging);
    }
}

/// An output folder being written: see the module documentation.
#[derive(Debug)]
pub struct OutputDir {
    out: PathBuf,
    staging: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
    committed: bool,
}

impl OutputDir {
    /// Checks `out`, takes its lock, clears stale staging and creates a fresh staging folder.
    ///
    /// # Errors
    /// [`OutputError::NotAFolder`], [`OutputError::NotWritable`] (naming the parent when it is
    /// the parent that cannot be written), [`OutputError::Locked`].
    pub fn open(out: &Path) -> Result<Self, OutputError> {
        if out.exists() && !out.is_dir() {
            return Err(OutputError::NotAFolder { path: out.to_path_buf() });
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| OutputError::NotAFolder { path: out.to_path_buf() })?;
        std::fs::create_dir_all(&parent)
            .map_err(|source| OutputError::NotWritable { path: parent.clone(), source })?;
        let lock_path = parent.join(format!(".{name}.lock"));
        let lock = take_lock(&lock_path).map_err(|e| match e {
            LockFailure::Held => OutputError::Locked { path: out.to_path_buf(), lock: lock_path.clone() },
            LockFailure::Io(source) => OutputError::NotWritable { path: parent.clone(), source },
        })?;
        // Holding the lock, any staging folder of this output belongs to a dead run, and so does
        // a folder set aside by a commit that was killed between its two renames: that one is
        // the previous output, put back when nothing took its place.
        let prefix = format!(".{name}.tmp-");
        let aside_prefix = format!(".{name}.old-");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                let entry = e.file_name().to_string_lossy().into_owned();
                let stale = entry.starts_with(&prefix)
                    || (entry.starts_with(&aside_prefix)
                        && (out.exists() || std::fs::rename(e.path(), out).is_err()));
                if stale {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let staging = parent.join(format!("{prefix}{}", std::process::id()));
        let made = std::fs::create_dir(&staging);
        if let Err(source) = made {
            let _ = std::fs::remove_file(&lock_path);
            return Err(OutputError::NotWritable { path: parent, source });
        }
        register(&staging, &lock_path, true);
        Ok(OutputDir { out: out.to_path_buf(), staging, lock_path, lock: Some(lock), committed: false })
    }

    /// The staging folder: write every output file here.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The final folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Makes the staging folder the output folder, keeping the files of an existing folder that
    /// are not among `products` (every file name this command can write, optional ones
    /// included).
    ///
    /// # Errors
    /// [`OutputError::Commit`]; the previous folder is then as it was.
    pub fn commit(mut self, products: &[&str]) -> Result<(), OutputError> {
        let fail = |source| OutputError::Commit { path: self.out.clone(), source };
        // Moves the user's files carried over back where they were.
        let undo = |moved: &[PathBuf]| {
            for m in moved {
                let _ = std::fs::rename(self.staging.join(m), self.out.join(m));
            }
        };
        if self.out.is_dir() {
            // Carry the user's own files over, undoing on failure.
            let mut moved: Vec<PathBuf> = Vec::new();
            let entries: Vec<_> = std::fs::read_dir(&self.out).map_err(fail)?.flatten().collect();
            for e in entries {
                let name = e.file_name();
                if products.iter().any(|p| name == std::ffi::OsStr::new(p)) {
                    continue;
                }
                let to = self.staging.join(&name);
                if to.exists() {
                    continue;
                }
                if let Err(err) = std::fs::rename(e.path(), &to) {
                    undo(&moved);
                    return Err(fail(err));
                }
                moved.push(PathBuf::from(name));
            }
            let aside = self.staging.with_file_name(
                self.staging.file_name().unwrap_or_default().to_string_lossy().replace(".tmp-", ".old-"),
            );
            let _ = std::fs::remove_dir_all(&aside);
            if let Err(err) = std::fs::rename(&self.out, &aside) {
                undo(&moved);
                return Err(fail(err));
            }
            if let Err(err) = std::fs::rename(&self.staging, &self.out) {
                let _ = std::fs::rename(&aside, &self.out);
                undo(&moved);
                return Err(fail(err));
            }
            let _ = std::fs::remove_dir_all(&aside);
        } else {
            std::fs::rename(&self.staging, &self.out).map_err(fail)?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        register(&self.staging, &self.lock_path, false);
        // Remove the lock file while still holding the lock: a run waiting on this inode sees
        // it unlinked and takes a fresh one (see `take_lock`).
        let _ = std::fs::remove_file(&self.lock_path);
        drop(self.lock.take());
    }
}

enum LockFailure {
    Held,
    Io(std::io::Error),
}

/// Opens (creating) and exclusively locks `path`, retrying when the file was unlinked by its
/// previous holder between our open and our lock (a lock on an unlinked inode guards nothing).
fn take_lock(path: &Path) -> Result<File, LockFailure> {
    for _ in 0..16 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LockFailure::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LockFailure::Held),
            Err(std::fs::TryLockError::Error(e)) => return Err(LockFailure::Io(e)),
        }
        if same_file(&file, path) {
            return Ok(file);
        }
    }
    Err(LockFailure::Held)
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_new_folder_appears_whole_and_leaves_no_debris() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        let o = OutputDir::open(&out).unwrap();
        write(o.staging(), "a.json", "1");
        assert!(!out.exists(), "nothing visible before the commit");
        o.commit(&["a.json"]).unwrap();
        assert_eq!(names(&out), ["a.json"]);
        assert_eq!(names(root.path()), ["run"], "no staging or lock left");
    }

    #[test]
    fn a_rerun_replaces_the_products_keeps_foreign_files_and_drops_stale_products() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        std::fs::create_dir(&out).unwrap();
        write(&out, "a.json", "old");
        write(&out, "optional.nii.gz", "old");
        write(&out, "notes.txt", "mine");
        let o = OutputDir::open(&out).unwrap();
        write(o.staging(), "a.json", "new");
        o.commit(&["a.json", "optional.nii.gz"]).unwrap();
        assert_eq!(names(&out), ["a.json", "notes.txt"]);
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        assert_eq!(names(root.path()), ["run"]);
    }

    #[test]
    fn an_error_leaves_the_previous_folder_and_no_staging() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        std::fs::create_dir(&out).unwrap();
        write(&out, "a.json", "old");
        {
            let o = OutputDir::open(&out).unwrap();
            write(o.staging(), "a.json", "half");
            // dropped without commit: a failed run
        }
        assert_eq!(names(&out), ["a.json"]);
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "old");
        assert_eq!(names(root.path()), ["run"]);
    }

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_folder() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        let first = OutputDir::open(&out).unwrap();
        let second = OutputDir::open(&out).unwrap_err();
        assert!(matches!(second, OutputError::Locked { .. }), "{second}");
        assert!(second.is_input());
        first.commit(&[]).unwrap();
        OutputDir::open(&out).unwrap().commit(&[]).unwrap();
    }

    #[test]
    fn stale_staging_of_a_dead_run_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        let stale = root.path().join(".run.tmp-999999999");
        std::fs::create_dir(&stale).unwrap();
        write(&stale, "nodes.nii.gz", "half");
        // A lock file left by a killed run is no lock: nobody holds it.
        write(root.path(), ".run.lock", "");
        let o = OutputDir::open(&out).unwrap();
        assert!(!stale.exists());
        o.commit(&[]).unwrap();
        assert_eq!(names(root.path()), ["run"]);
    }

    #[test]
    fn a_commit_killed_between_its_renames_is_undone_by_the_next_run() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("run");
        // The previous output, set aside by a commit that died before the staging took its place.
        let aside = root.path().join(".run.old-999999999");
        std::fs::create_dir(&aside).unwrap();
        write(&aside, "a.json", "previous");
        let o = OutputDir::open(&out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "previous");
        drop(o);
        assert_eq!(names(root.path()), ["run"]);
    }

    #[test]
    fn a_file_or_an_unwritable_parent_fails_before_any_work() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("taken");
        write(root.path(), "taken", "x");
        let e = OutputDir::open(&file).unwrap_err();
        assert!(matches!(e, OutputError::NotAFolder { .. }) && e.is_input(), "{e}");
        assert!(e.to_string().contains("taken"));
        let under_file = file.join("run");
        let e = OutputDir::open(&under_file).unwrap_err();
        assert!(matches!(e, OutputError::NotWritable { .. }), "{e}");
        assert_eq!(names(root.path()), ["taken"]);
    }
}
