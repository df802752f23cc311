package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Helpers for benchmarks that host two plugin binaries side by side (see
// benchvsgo/). Main prepares only one plugin; these build and install others.

// BuildGoReferencePlugin builds cmd/velero-plugin-quiesce-go into dir (with
// the go command's environment, so GOFLAGS=-modfile=… selects the Velero
// line) and returns the binary's path.
func BuildGoReferencePlugin(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "velero-plugin-quiesce-go")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/velero-plugin-quiesce-go")
	cmd.Dir = root
	return out, runLogged(cmd)
}

// BuildRustPluginRelease runs `cargo build --release --bin
// velero-plugin-quiesce` in the repository root and returns the binary.
func BuildRustPluginRelease() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	repo := filepath.Dir(filepath.Dir(root))
	cmd := exec.Command("cargo", "build", "--release", "--bin", "velero-plugin-quiesce")
	cmd.Dir = repo
	if err := runLogged(cmd); err != nil {
		return "", err
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		target = filepath.Join(repo, "target")
	} else if !filepath.IsAbs(target) {
		target = filepath.Join(repo, target)
	}
	return filepath.Join(target, "release", "velero-plugin-quiesce"), nil
}

// InstallPlugin copies src into a fresh plugin directory dir (as Velero's
// init container does) and describes it.
func InstallPlugin(src, dir, impl string) (Plugin, error) {
	p := Plugin{Source: src, Impl: impl, Dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p, err
	}
	p.Command = filepath.Join(dir, filepath.Base(src))
	return p, copyFile(src, p.Command)
}

// ChildPIDs returns the PIDs of this process's children whose executable is
// exe (readlink /proc/<pid>/exe), zombies excluded.
func ChildPIDs(exe string) []int {
	des, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var out []int
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces: split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc", de.Name(), "exe")); err == nil && target == exe {
			out = append(out, pid)
		}
	}
	return out
}

// ProcMem returns VmRSS and VmHWM of pid in KiB, from /proc/<pid>/status.
func ProcMem(pid int) (rssKiB, hwmKiB int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS", "VmHWM":
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if k == "VmRSS" {
				rssKiB = n
			} else {
				hwmKiB = n
			}
		}
	}
	if rssKiB == 0 || hwmKiB == 0 {
		return rssKiB, hwmKiB, fmt.Errorf("/proc/%d/status: VmRSS/VmHWM not found", pid)
	}
	return rssKiB, hwmKiB, sc.Err()
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}
