//! `--copy-to DIR`: how the image's init container puts the plugin binary into Velero's
//! `/plugins` volume (spec §14). It does what `cp /plugins/* /target/.` does in other plugin
//! images, for our one binary, so the image needs no `cp` and holds a single file.
//!
//! The copy is written under a hidden temporary name that is not executable, flushed to disk,
//! made `0755`, then renamed over `DIR/velero-plugin-quiesce`: Velero treats every executable in
//! `/plugins` as a plugin, so it must never see a half-written one, and a second run replaces the
//! first atomically. A missing, read-only or non-directory target is a clear error.
//!
//! Owns only the file copy and the `--copy-to` argument. Knows nothing of go-plugin or Velero's
//! protocol; `main.rs` picks this mode before the plugin cookie is checked.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The file name the binary is installed under (DESIGN §2).
pub const BINARY_NAME: &str = "velero-plugin-quiesce";

/// The flag selecting this mode; the image's entrypoint is `[BINARY, "--copy-to", "/target"]`.
pub const COPY_TO_FLAG: &str = "--copy-to";

/// Mode of the installed file: executable by Velero's container user, whoever copied it.
pub const INSTALLED_MODE: u32 = 0o755;

/// Where the running executable is read from on Linux; survives the path being replaced.
const SELF_EXE: &str = "/proc/self/exe";

/// What can stop `--copy-to` from installing the binary.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// `--copy-to` was given without a directory.
    #[error("{COPY_TO_FLAG} needs a directory, e.g. `{COPY_TO_FLAG} /target`")]
    MissingTargetArgument,
    /// The target directory does not exist (in an init container: no volume at that path).
    #[error(
        "cannot install into {dir}: the directory does not exist (is a volume mounted there?)"
    )]
    TargetMissing {
        /// The target directory as given.
        dir: PathBuf,
    },
    /// The target exists but is not a directory.
    #[error("cannot install into {dir}: it is not a directory")]
    NotADirectory {
        /// The target as given.
        dir: PathBuf,
    },
    /// The target directory could not be inspected (permissions on a parent, I/O error).
    #[error("cannot install into {dir}: {source}")]
    InspectTarget {
        /// The target directory as given.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No file can be created in the target directory: read-only mount or no write permission.
    #[error(
        "cannot install into {dir}: it is not writable ({source}); \
         mount it read-write and writable by this user"
    )]
    TargetNotWritable {
        /// The target directory as given.
        dir: PathBuf,
        /// The OS error from creating the temporary file.
        source: io::Error,
    },
    /// The running executable could not be located or read.
    #[error("cannot read the plugin binary {path}: {source}")]
    ReadSource {
        /// The source path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing, flushing or setting the mode of the temporary copy failed (e.g. disk full).
    #[error("cannot write {path}: {source}")]
    WriteCopy {
        /// The temporary file in the target directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The complete copy could not be renamed to its final name.
    #[error("cannot rename {from} to {to}: {source}")]
    Replace {
        /// The temporary file.
        from: PathBuf,
        /// The final path.
        to: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A finished installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// `DIR/velero-plugin-quiesce`.
    pub path: PathBuf,
    /// Bytes copied.
    pub bytes: u64,
}

impl fmt::Display for Installed {
    /// The one line `--copy-to` prints on success.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "installed {} ({} bytes, mode {:o})",
            self.path.display(),
            self.bytes,
            INSTALLED_MODE
        )
    }
}

/// The directory requested with `--copy-to DIR` or `--copy-to=DIR` as the first argument after
/// argv[0]; `None` when this is not a copy-to invocation. Only the first position counts, so no
/// flag Velero passes to plugins can ever select this mode.
pub fn copy_to_target<I, T>(args: I) -> Option<Result<PathBuf, InstallError>>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut args = args.into_iter().skip(1).map(Into::into);
    let first = args.next()?;
    if first == COPY_TO_FLAG {
        return Some(match args.next() {
            Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
            _ => Err(InstallError::MissingTargetArgument),
        });
    }
    let text = first.to_str()?;
    let dir = text.strip_prefix(COPY_TO_FLAG)?.strip_prefix('=')?;
    Some(if dir.is_empty() {
        Err(InstallError::MissingTargetArgument)
    } else {
        Ok(PathBuf::from(dir))
    })
}

/// Copies the running executable into `target_dir` (see [`copy_self_to`]).
pub fn copy_current_exe_to(target_dir: &Path) -> Result<Installed, InstallError> {
    let source = running_executable()?;
    copy_self_to(target_dir, &source)
}

/// The path to read the running executable from: `/proc/self/exe` where procfs is mounted,
/// else what the OS reports.
fn running_executable() -> Result<PathBuf, InstallError> {
    let proc_self = Path::new(SELF_EXE);
    if proc_self.exists() {
        return Ok(proc_self.to_path_buf());
    }
    std::env::current_exe().map_err(|source| InstallError::ReadSource {
        path: proc_self.to_path_buf(),
        source,
    })
}

/// Copies `source` to `target_dir/velero-plugin-quiesce` with mode 0755, atomically: the bytes
/// go to a hidden, non-executable temporary file in `target_dir`, are synced, the mode is set,
/// and the file is renamed over the final name. Running it again replaces the file the same way.
/// On any error the temporary file is removed and an existing installation is left untouched.
pub fn copy_self_to(target_dir: &Path, source: &Path) -> Result<Installed, InstallError> {
    check_target_dir(target_dir)?;
    let mut input = File::open(source).map_err(|error| InstallError::ReadSource {
        path: source.to_path_buf(),
        source: error,
    })?;
    // tempfile creates the file with mode 0600: not executable while it is being written.
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{BINARY_NAME}."))
        .suffix(".partial")
        .tempfile_in(target_dir)
        .map_err(|error| InstallError::TargetNotWritable {
            dir: target_dir.to_path_buf(),
            source: error,
        })?;
    let temporary_path = temporary.path().to_path_buf();
    let write_error = |error: io::Error| InstallError::WriteCopy {
        path: temporary_path.clone(),
        source: error,
    };
    let bytes =
        copy_bytes(&mut input, temporary.as_file_mut()).map_err(|failure| match failure {
            CopyFailure::Read(error) => InstallError::ReadSource {
                path: source.to_path_buf(),
                source: error,
            },
            CopyFailure::Write(error) => write_error(error),
        })?;
    temporary.as_file_mut().flush().map_err(write_error)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    // Executable only now that every byte is on disk.
    temporary
        .as_file()
        .set_permissions(Permissions::from_mode(INSTALLED_MODE))
        .map_err(write_error)?;
    let final_path = target_dir.join(BINARY_NAME);
    temporary
        .persist(&final_path)
        .map_err(|error| InstallError::Replace {
            from: temporary_path.clone(),
            to: final_path.clone(),
            source: error.error,
        })?;
    sync_directory(target_dir);
    Ok(Installed {
        path: final_path,
        bytes,
    })
}

/// Which side of a copy failed.
enum CopyFailure {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy`, but telling a read error from a write error.
fn copy_bytes(input: &mut impl Read, output: &mut impl Write) -> Result<u64, CopyFailure> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyFailure::Read(error)),
        };
        output
            .write_all(&buffer[..read])
            .map_err(CopyFailure::Write)?;
        total += read as u64;
    }
}

fn check_target_dir(target_dir: &Path) -> Result<(), InstallError> {
    match fs::metadata(target_dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(InstallError::NotADirectory {
            dir: target_dir.to_path_buf(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(InstallError::TargetMissing {
            dir: target_dir.to_path_buf(),
        }),
        Err(error) if error.raw_os_error() == Some(ENOTDIR) => Err(InstallError::NotADirectory {
            dir: target_dir.to_path_buf(),
        }),
        Err(error) => Err(InstallError::InspectTarget {
            dir: target_dir.to_path_buf(),
            source: error,
        }),
    }
}

/// Linux `ENOTDIR`: a path component is a file (`io::ErrorKind::NotADirectory` needs a newer MSRV).
const ENOTDIR: i32 = 20;

/// Makes the rename durable. Best effort: the file itself is already synced, and some
/// filesystems refuse `fsync` on a directory; the installation is complete either way.
fn sync_directory(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn source_file(dir: &Path, content: &[u8]) -> PathBuf {
        let path = dir.join("source-binary");
        fs::write(&path, content).expect("write source");
        path
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn copies_the_bytes_to_the_binary_name_with_mode_0755() {
        let source_dir = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        let source = source_file(source_dir.path(), b"\x7fELF pretend binary");

        let installed = copy_self_to(target.path(), &source).expect("copy");

        assert_eq!(installed.path, target.path().join(BINARY_NAME));
        assert_eq!(installed.bytes, 19);
        assert_eq!(
            fs::read(&installed.path).expect("read"),
            b"\x7fELF pretend binary"
        );
        assert_eq!(mode_of(&installed.path), 0o755);
    }

    #[test]
    fn leaves_only_the_binary_in_the_target_no_temporary_file() {
        let source_dir = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        let source = source_file(source_dir.path(), b"binary");

        copy_self_to(target.path(), &source).expect("copy");

        assert_eq!(entries(target.path()), vec![BINARY_NAME.to_owned()]);
    }

    #[test]
    fn mode_is_0755_whatever_the_source_mode() {
        let source_dir = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        let source = source_file(source_dir.path(), b"binary");
        fs::set_permissions(&source, Permissions::from_mode(0o700)).expect("chmod");

        let installed = copy_self_to(target.path(), &source).expect("copy");

        assert_eq!(mode_of(&installed.path), 0o755);
    }

    #[test]
    fn a_second_run_replaces_the_file_by_rename() {
        let source_dir = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        let old = source_file(source_dir.path(), b"old version, longer than the new one");
        let first = copy_self_to(target.path(), &old).expect("first copy");
        let first_inode = fs::metadata(&first.path).expect("metadata").ino();
        let new = source_dir.path().join("new-binary");
        fs::write(&new, b"new version").expect("write");

        let second = copy_self_to(target.path(), &new).expect("second copy");

        assert_eq!(fs::read(&second.path).expect("read"), b"new version");
        assert_eq!(mode_of(&second.path), 0o755);
        // A new inode: the old file was replaced whole, never rewritten in place.
        assert_ne!(
            fs::metadata(&second.path).expect("metadata").ino(),
            first_inode
        );
        assert_eq!(entries(target.path()), vec![BINARY_NAME.to_owned()]);
    }

    #[test]
    fn copying_a_binary_onto_itself_keeps_it_intact() {
        let target = tempfile::tempdir().expect("tempdir");
        let installed_path = target.path().join(BINARY_NAME);
        fs::write(&installed_path, b"same binary").expect("write");

        copy_self_to(target.path(), &installed_path).expect("copy onto itself");

        assert_eq!(fs::read(&installed_path).expect("read"), b"same binary");
        assert_eq!(mode_of(&installed_path), 0o755);
    }

    #[test]
    fn a_missing_target_directory_is_a_clear_error() {
        let parent = tempfile::tempdir().expect("tempdir");
        let source = source_file(parent.path(), b"binary");
        let missing = parent.path().join("no-such-dir");

        let error = copy_self_to(&missing, &source).expect_err("must fail");

        assert!(
            matches!(error, InstallError::TargetMissing { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("does not exist"), "{message}");
        assert!(message.contains("no-such-dir"), "{message}");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_a_clear_error() {
        let parent = tempfile::tempdir().expect("tempdir");
        let source = source_file(parent.path(), b"binary");
        let not_a_dir = parent.path().join("target-file");
        fs::write(&not_a_dir, b"").expect("write");

        let error = copy_self_to(&not_a_dir, &source).expect_err("must fail");

        assert!(
            matches!(error, InstallError::NotADirectory { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("not a directory"), "{error}");
    }

    #[test]
    fn a_path_below_a_file_is_not_a_directory() {
        let parent = tempfile::tempdir().expect("tempdir");
        let source = source_file(parent.path(), b"binary");
        let file = parent.path().join("file");
        fs::write(&file, b"").expect("write");

        let error = copy_self_to(&file.join("target"), &source).expect_err("must fail");

        assert!(
            matches!(error, InstallError::NotADirectory { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_read_only_target_directory_is_a_clear_error_and_stays_empty() {
        let parent = tempfile::tempdir().expect("tempdir");
        let source = source_file(parent.path(), b"binary");
        let target = parent.path().join("read-only");
        fs::create_dir(&target).expect("mkdir");
        fs::set_permissions(&target, Permissions::from_mode(0o555)).expect("chmod");
        // Root ignores permission bits; a truly read-only mount is exercised by
        // scripts/image-smoke.sh (`-v DIR:/target:ro`).
        if fs::File::create(target.join("probe")).is_ok() {
            eprintln!(
                "skipped: running as root, permission bits do not make a directory read-only"
            );
            return;
        }

        let error = copy_self_to(&target, &source).expect_err("must fail");

        assert!(
            matches!(error, InstallError::TargetNotWritable { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("not writable"), "{error}");
        assert!(entries(&target).is_empty());
    }

    #[test]
    fn a_missing_source_is_a_read_error_and_leaves_no_temporary_file() {
        let parent = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");

        let error = copy_self_to(target.path(), &parent.path().join("gone")).expect_err("fail");

        assert!(
            matches!(error, InstallError::ReadSource { .. }),
            "{error:?}"
        );
        assert!(entries(target.path()).is_empty());
    }

    #[test]
    fn a_failed_copy_leaves_an_existing_installation_untouched() {
        let parent = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        let good = source_file(parent.path(), b"good");
        copy_self_to(target.path(), &good).expect("copy");
        // A directory opens but cannot be read: io::copy fails half-way in.
        let unreadable = parent.path().join("a-directory");
        fs::create_dir(&unreadable).expect("mkdir");

        let error = copy_self_to(target.path(), &unreadable).expect_err("must fail");

        assert!(
            matches!(error, InstallError::ReadSource { .. }),
            "{error:?}"
        );

        assert_eq!(
            fs::read(target.path().join(BINARY_NAME)).expect("read"),
            b"good"
        );
        assert_eq!(entries(target.path()), vec![BINARY_NAME.to_owned()]);
    }

    #[test]
    fn copy_to_is_recognised_as_the_first_argument_in_both_forms() {
        let spaced = copy_to_target(["bin", "--copy-to", "/target"]);
        let joined = copy_to_target(["bin", "--copy-to=/target"]);

        assert_eq!(spaced.map(|r| r.ok()), Some(Some(PathBuf::from("/target"))));
        assert_eq!(joined.map(|r| r.ok()), Some(Some(PathBuf::from("/target"))));
    }

    #[test]
    fn copy_to_without_a_directory_is_an_error() {
        for args in [
            vec!["bin", "--copy-to"],
            vec!["bin", "--copy-to="],
            vec!["bin", "--copy-to", ""],
        ] {
            let result = copy_to_target(args.clone());
            assert!(
                matches!(result, Some(Err(InstallError::MissingTargetArgument))),
                "{args:?}: {result:?}"
            );
        }
    }

    #[test]
    fn velero_server_flags_never_select_copy_to() {
        assert!(copy_to_target(["bin"]).is_none());
        assert!(copy_to_target(["bin", "--log-level", "debug"]).is_none());
        assert!(copy_to_target(["bin", "--copy-toX"]).is_none());
        assert!(copy_to_target(["bin", "--log-level=info", "--copy-to", "/target"]).is_none());
    }
}
