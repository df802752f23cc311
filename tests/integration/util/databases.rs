//! Real database servers for the held-session tests: MariaDB and PostgreSQL from the
//! machine's Debian packages (`.ci/run` installs them), each started in a temp dir on a Unix
//! socket — no TCP port, no system service — and stopped when dropped. The hook commands that
//! fake-kube runs locally (`mysql`, `psql`) talk to them through that socket.
//!
//! A data directory is initialised once per test binary and copied for each server, so that
//! a server starts in about a second. When the binaries are missing, [`MariaDb::start`] and
//! [`Postgres::start`] print `skipped: …` and return `None` — unless `CI` is set: CI must run
//! these tests, so there a missing server fails the test.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(60);

/// Says why a server cannot run here: `skipped: …` on stderr, or a failure under CI.
fn skip<T>(what: &str) -> Option<T> {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{what}, and CI must run this test (.ci/run installs the packages)");
    }
    eprintln!("skipped: {what}");
    None
}

/// The first of `names` found in `dirs`, then on `PATH`.
fn find(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = dirs.iter().cloned().chain(std::env::split_paths(&path));
    for dir in dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Whether this process runs as root (both servers refuse root unless told, or at all).
fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Copies directory `from` to `to` (`cp -a`, which keeps owners and modes).
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// Polls `ready` every 100 ms until it holds or [`STARTUP`] passes; panics with `log` then.
fn wait_until(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + STARTUP;
    while !ready() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start within {STARTUP:?}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills a server and waits for it, whatever happened to the test.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: both servers shut down cleanly and quickly; then make sure.
        // SAFETY: kill(2) on our own child's PID; no memory is touched.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The MariaDB binaries: server, data-directory installer, client.
struct MariaDbBinaries {
    server: PathBuf,
    install: PathBuf,
    client: PathBuf,
}

fn mariadb_binaries() -> Option<MariaDbBinaries> {
    let sbin = [PathBuf::from("/usr/sbin")];
    Some(MariaDbBinaries {
        server: find(&["mariadbd", "mysqld"], &sbin)?,
        install: find(&["mariadb-install-db", "mysql_install_db"], &[])?,
        client: find(&["mariadb", "mysql"], &[])?,
    })
}

/// A data directory made once by `mariadb-install-db` (root without password, no test db).
fn mariadb_template(binaries: &MariaDbBinaries) -> &'static Path {
    static TEMPLATE: OnceLock<TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut install = Command::new(&binaries.install);
            install
                .arg("--no-defaults")
                .arg(format!("--datadir={}", dir.path().join("data").display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
            if is_root() {
                install.arg("--user=root");
            }
            let output = install.output().unwrap();
            assert!(
                output.status.success(),
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            dir
        })
        .path()
}

/// A MariaDB server of its own, on a Unix socket in a temp dir, with database `shop` and an
/// InnoDB table `shop.orders (id, v)`.
pub struct MariaDb {
    _server: Server,
    client: PathBuf,
    /// The server's Unix socket.
    pub socket: PathBuf,
    _dir: TempDir,
}

impl MariaDb {
    /// Starts a server, or says why it cannot (see the module docs).
    pub fn start() -> Option<MariaDb> {
        let Some(binaries) = mariadb_binaries() else {
            return skip("MariaDB not found (apt-get install mariadb-server mariadb-client)");
        };
        let template = mariadb_template(&binaries);
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&template.join("data"), dir.path());
        let socket = dir.path().join("mysqld.sock");
        let log = dir.path().join("error.log");
        let mut server = Command::new(&binaries.server);
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--max-connections=50",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            server.arg("--user=root");
        }
        let db = MariaDb {
            _server: Server(server.spawn().unwrap()),
            client: binaries.client,
            socket,
            _dir: dir,
        };
        wait_until("MariaDB", &log, || db.try_sql("SELECT 1").status.success());
        db.sql(
            "CREATE DATABASE shop; \
             CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
        );
        Some(db)
    }

    /// The client, as a hook would run it: `mysql --socket=… -uroot` then `args`.
    pub fn client_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.client.display().to_string(),
            format!("--socket={}", self.socket.display()),
            "-uroot".to_owned(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// A client command running `sql` (`-N -e`), ready to spawn.
    pub fn command(&self, sql: &str) -> Command {
        let argv = self.client_argv(&["-N", "-e", sql]);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null());
        command
    }

    fn try_sql(&self, sql: &str) -> Output {
        self.command(sql).output().unwrap()
    }

    /// Runs `sql`, which must succeed; its output.
    pub fn sql(&self, sql: &str) -> String {
        let output = self.try_sql(sql);
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The PostgreSQL binaries: `initdb`, `postgres`, `psql`.
struct PostgresBinaries {
    initdb: PathBuf,
    server: PathBuf,
    client: PathBuf,
}

fn postgres_binaries() -> Option<PostgresBinaries> {
    // Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin: the newest wins.
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort_by_key(|dir| {
        dir.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.reverse();
    Some(PostgresBinaries {
        initdb: find(&["initdb"], &versions)?,
        server: find(&["postgres"], &versions)?,
        client: find(&["psql"], &[])?,
    })
}

/// The uid and gid the server runs as: `postgres` when this process is root (PostgreSQL
/// refuses to run as root), else nobody else.
fn postgres_owner() -> Option<Option<(u32, u32)>> {
    if !is_root() {
        return Some(None);
    }
    let output = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    let output = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some(Some((uid, gid)))
}

/// `program` run as the server's owner (through `runuser` when root).
fn as_owner(program: &Path, owner: Option<(u32, u32)>) -> Command {
    match owner {
        Some(_) => {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A directory the server's owner owns.
fn owned_dir(owner: Option<(u32, u32)>) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some((uid, gid)) = owner {
        chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    dir
}

/// A data directory made once by `initdb` (user `postgres`, trust authentication).
fn postgres_template(binaries: &PostgresBinaries, owner: Option<(u32, u32)>) -> &'static Path {
    static TEMPLATE: OnceLock<TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = owned_dir(owner);
            let output = as_owner(&binaries.initdb, owner)
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync"])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            dir
        })
        .path()
}

/// A PostgreSQL server of its own, its Unix socket in a temp dir (`PGHOST`).
pub struct Postgres {
    _server: Server,
    client: PathBuf,
    /// The directory of the server's Unix socket: what `psql -h` (or `PGHOST`) takes.
    pub socket_dir: PathBuf,
    _dir: TempDir,
}

impl Postgres {
    /// Starts a server, or says why it cannot (see the module docs).
    pub fn start() -> Option<Postgres> {
        let Some(binaries) = postgres_binaries() else {
            return skip("PostgreSQL not found (apt-get install postgresql postgresql-client)");
        };
        let Some(owner) = postgres_owner() else {
            return skip("running as root without a postgres user to run PostgreSQL as");
        };
        let template = postgres_template(&binaries, owner);
        let dir = owned_dir(owner);
        copy_dir(&template.join("data"), dir.path());
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let server = as_owner(&binaries.server, owner)
            .arg("-D")
            .arg(dir.path().join("data"))
            .arg("-k")
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "shared_buffers=16MB",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let db = Postgres {
            _server: Server(server),
            client: binaries.client,
            socket_dir: dir.path().to_owned(),
            _dir: dir,
        };
        wait_until("PostgreSQL", &log, || {
            db.command("SELECT 1").output().unwrap().status.success()
        });
        Some(db)
    }

    /// The client, as a hook would run it: `psql -h DIR -U postgres -X -q -t -A -v
    /// ON_ERROR_STOP=1` then `args`.
    pub fn client_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.client.display().to_string(),
            "-h".to_owned(),
            self.socket_dir.display().to_string(),
        ];
        argv.extend(
            [
                "-U",
                "postgres",
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
            ]
            .iter()
            .chain(args)
            .map(|a| a.to_string()),
        );
        argv
    }

    /// A client command running `sql` (`-c`), ready to spawn.
    pub fn command(&self, sql: &str) -> Command {
        let argv = self.client_argv(&["-c", sql]);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null());
        command
    }
}
