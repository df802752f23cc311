//! The plugin's listening socket: a Unix socket in a fresh private (0700) directory under a
//! base directory the caller chooses (go-plugin's `PLUGIN_UNIX_SOCKET_DIR`, `$TMPDIR` or
//! `/tmp`), itself 0600. Dropping it removes both.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tokio::net::UnixListener;

use super::Error;

/// `sun_path` holds 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The private directory holding the bound socket; the listener itself goes to the server.
pub struct PrivateSocket {
    /// Removes the directory (and the socket in it) on drop.
    dir: TempDir,
    path: PathBuf,
}

impl PrivateSocket {
    /// Creates a private directory under `base` and binds `plugin.sock` inside it.
    pub fn bind_in(base: &Path) -> Result<(Self, UnixListener), Error> {
        let dir = tempfile::Builder::new()
            .prefix("quiesce-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)
            .map_err(|source| Error::SocketDir {
                dir: base.to_owned(),
                source,
            })?;
        let path = dir.path().join("plugin.sock");
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::SocketPathTooLong { path });
        }
        // The handshake line is `|`-separated and newline-terminated: such a path would be
        // read as other fields by the host.
        if path
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .any(|b| matches!(b, b'|' | b'\n' | b'\r'))
        {
            return Err(Error::SocketPathUnprintable { path });
        }
        let listener = UnixListener::bind(&path).map_err(|source| Error::Bind {
            path: path.clone(),
            source,
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| Error::Bind {
                path: path.clone(),
                source,
            },
        )?;
        Ok((PrivateSocket { dir, path }, listener))
    }

    /// The socket's absolute path, as printed in the handshake line.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private directory (for tests of its permissions).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_lives_in_a_private_directory_and_is_removed_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let (socket, _listener) = PrivateSocket::bind_in(base.path()).unwrap();
        let dir_mode = std::fs::metadata(socket.dir())
            .unwrap()
            .permissions()
            .mode();
        let sock_mode = std::fs::metadata(socket.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(sock_mode & 0o777, 0o600);
        let (dir, path) = (socket.dir().to_owned(), socket.path().to_owned());
        drop(socket);
        assert!(!path.exists());
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn a_base_that_makes_the_path_too_long_is_a_clear_error() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("d".repeat(100));
        std::fs::create_dir_all(&deep).unwrap();
        let err = PrivateSocket::bind_in(&deep).err().unwrap();
        assert!(matches!(err, Error::SocketPathTooLong { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_base_with_a_bar_or_newline_is_refused_before_the_handshake() {
        let base = tempfile::tempdir().unwrap();
        for name in ["a|b", "a\nb"] {
            let odd = base.path().join(name);
            std::fs::create_dir_all(&odd).unwrap();
            let err = PrivateSocket::bind_in(&odd).err().unwrap();
            assert!(matches!(err, Error::SocketPathUnprintable { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn a_missing_base_directory_is_a_clear_error() {
        let err = PrivateSocket::bind_in(Path::new("/nonexistent/quiesce"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/quiesce"), "{err}");
    }
}
