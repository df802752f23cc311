//! `--copy-to DIR` through the real binary, the way the image's init container runs it: no
//! plugin cookie, one directory argument, nothing else. The copy must be byte-identical, 0755,
//! and itself a working plugin binary.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use crate::util::{bin, Plugin};

const INSTALLED_NAME: &str = "velero-plugin-quiesce";

/// Runs the binary as an init container would: no `VELERO_PLUGIN` in the environment.
fn copy_to(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("VELERO_PLUGIN")
        .output()
        .unwrap()
}

/// The command's stderr as text.
fn stderr_of(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The names in a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn copy_to_installs_a_byte_identical_0755_copy_and_says_so_in_one_line() {
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().to_str().unwrap();

    let output = copy_to(&["--copy-to", dir]);

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(output.stdout.is_empty(), "stdout stays empty");
    let stderr = stderr_of(&output);
    let installed = target.path().join(INSTALLED_NAME);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("velero-plugin-quiesce: installed "),
        "{stderr}"
    );
    assert!(stderr.contains(installed.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("mode 755"), "{stderr}");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(bin()).unwrap());
    assert_eq!(fs::metadata(&installed).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(entries(target.path()), vec![INSTALLED_NAME.to_owned()]);
}

#[test]
fn the_equals_form_works_too() {
    let target = tempfile::tempdir().unwrap();

    let output = copy_to(&[&format!("--copy-to={}", target.path().display())]);

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(entries(target.path()), vec![INSTALLED_NAME.to_owned()]);
}

#[test]
fn the_copy_without_the_cookie_explains_it_is_a_plugin_and_exits_1() {
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().to_str().unwrap();
    assert_eq!(copy_to(&["--copy-to", dir]).status.code(), Some(0));

    let output = Command::new(target.path().join(INSTALLED_NAME))
        .env_remove("VELERO_PLUGIN")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("This binary is a plugin"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn the_copy_launched_by_velero_prints_the_handshake_line() {
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().to_str().unwrap();
    assert_eq!(copy_to(&["--copy-to", dir]).status.code(), Some(0));
    let copied = target.path().join(INSTALLED_NAME);

    let plugin = Plugin::launch_as(copied.to_str().unwrap(), &[]);

    let fields: Vec<&str> = plugin.handshake.split('|').collect();
    assert_eq!(fields[..3], ["1", "2", "unix"], "{}", plugin.handshake);
    assert_eq!(fields[4], "grpc", "{}", plugin.handshake);
}

#[test]
fn a_second_run_replaces_the_installed_file_atomically() {
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().to_str().unwrap();
    let installed = target.path().join(INSTALLED_NAME);
    fs::write(&installed, b"an older plugin build").unwrap();
    let old_inode = fs::metadata(&installed).unwrap().ino();
    // Held open, the old file keeps its inode (no reuse by the new one) and shows whether it
    // was replaced (old bytes still readable) or overwritten in place.
    let mut old_file = fs::File::open(&installed).unwrap();

    let first = copy_to(&["--copy-to", dir]);
    let second = copy_to(&["--copy-to", dir]);

    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    assert_eq!(second.status.code(), Some(0), "{}", stderr_of(&second));
    assert_eq!(fs::read(&installed).unwrap(), fs::read(bin()).unwrap());
    assert_ne!(fs::metadata(&installed).unwrap().ino(), old_inode);
    let mut old_bytes = Vec::new();
    std::io::Read::read_to_end(&mut old_file, &mut old_bytes).unwrap();
    assert_eq!(old_bytes, b"an older plugin build");
    assert_eq!(entries(target.path()), vec![INSTALLED_NAME.to_owned()]);
}

#[test]
fn a_missing_target_directory_fails_with_a_clear_message() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("target");

    let output = copy_to(&["--copy-to", missing.to_str().unwrap()]);

    assert_ne!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
    let stderr = stderr_of(&output);
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists(), "the directory is not created");
}

#[test]
fn a_file_in_place_of_the_target_directory_fails_with_a_clear_message() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("target");
    fs::write(&file, b"").unwrap();

    let output = copy_to(&["--copy-to", file.to_str().unwrap()]);

    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr_of(&output).contains("not a directory"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn copy_to_without_a_directory_fails_with_usage() {
    let output = copy_to(&["--copy-to"]);

    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr_of(&output).contains("--copy-to needs a directory"),
        "{}",
        stderr_of(&output)
    );
}

/// Root ignores permission bits, so as root the directory is made read-only the way a volume
/// is: a read-only bind mount, in a private mount namespace (`unshare -m`).
#[test]
fn a_read_only_target_directory_fails_with_a_clear_message_and_stays_empty() {
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().to_str().unwrap();
    fs::set_permissions(target.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let running_as_root = fs::File::create(target.path().join("probe")).is_ok();
    let _ = fs::remove_file(target.path().join("probe"));

    let output = if running_as_root {
        let script = format!(
            "mount --bind '{dir}' '{dir}' && mount -o remount,bind,ro '{dir}' && exec '{}' --copy-to '{dir}'",
            bin()
        );
        let probe = Command::new("unshare")
            .args(["-m", "sh", "-c", "mount -t tmpfs none /mnt"])
            .output();
        if !matches!(probe, Ok(ref o) if o.status.success()) {
            eprintln!("skipped: running as root without `unshare -m` + mount; cannot make {dir} read-only");
            return;
        }
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .env_remove("VELERO_PLUGIN")
            .output()
            .unwrap()
    } else {
        copy_to(&["--copy-to", dir])
    };
    fs::set_permissions(target.path(), fs::Permissions::from_mode(0o755)).unwrap();

    assert_ne!(output.status.code(), Some(0));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("not writable"), "{stderr}");
    assert!(stderr.contains(dir), "{stderr}");
    assert!(entries(target.path()).is_empty(), "no temporary file left");
}
