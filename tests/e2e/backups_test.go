package e2e

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// velero runs the velero CLI (against the admin kubeconfig) and fails the test on error.
func velero(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(5*time.Minute, "", "velero", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// backup is what `velero backup get` and `velero backup describe` say about a finished backup.
type backup struct {
	name     string
	phase    string // Completed, PartiallyFailed, Failed
	errors   int
	warnings int
	describe string // `velero backup describe NAME`: with the errors' and warnings' messages
}

// createBackup runs `velero backup create NAME --include-namespaces NS --wait` (deleting a backup
// of that name left by an earlier run first) and reads what Velero says about it.
func createBackup(t *testing.T, name string, namespaces ...string) backup {
	t.Helper()
	deleteBackup(t, name)
	velero(t, "backup", "create", name, "--include-namespaces", strings.Join(namespaces, ","), "--wait")
	return describeBackup(t, name)
}

func deleteBackup(t *testing.T, name string) {
	t.Helper()
	if _, err := run(time.Minute, "", "velero", "backup", "get", name); err != nil {
		return // no such backup
	}
	velero(t, "backup", "delete", name, "--confirm")
	eventually(t, "backup "+name+" deleted", 2*time.Minute, func() error {
		if _, err := run(time.Minute, "", "velero", "backup", "get", name); err == nil {
			return errors.New("still listed")
		}
		return nil
	})
}

// describeBackup reads the STATUS, ERRORS and WARNINGS columns of `velero backup get NAME`, and
// `velero backup describe NAME`.
func describeBackup(t *testing.T, name string) backup {
	t.Helper()
	b := backup{name: name, describe: velero(t, "backup", "describe", name)}
	table := strings.Split(strings.TrimSpace(velero(t, "backup", "get", name)), "\n")
	if len(table) != 2 {
		t.Fatalf("velero backup get %s: want a header and one row:\n%s", name, strings.Join(table, "\n"))
	}
	columns := strings.Fields(table[1])
	if len(columns) < 4 || columns[0] != name {
		t.Fatalf("velero backup get %s: unexpected row %q", name, table[1])
	}
	var err1, err2 error
	b.phase = columns[1]
	b.errors, err1 = strconv.Atoi(columns[2])
	b.warnings, err2 = strconv.Atoi(columns[3])
	if err1 != nil || err2 != nil {
		t.Fatalf("velero backup get %s: ERRORS and WARNINGS are not numbers in %q", name, table[1])
	}
	return b
}

// logLine is one line of `velero backup logs`, logfmt parsed.
type logLine struct {
	raw    string
	fields map[string]string
}

func (l logLine) get(key string) string { return l.fields[key] }

// backupLogs returns `velero backup logs NAME`, line by line, in the order Velero wrote them.
func backupLogs(t *testing.T, name string) []logLine {
	t.Helper()
	var lines []logLine
	for _, raw := range strings.Split(velero(t, "backup", "logs", name), "\n") {
		if raw = strings.TrimSpace(raw); raw != "" {
			lines = append(lines, logLine{raw: raw, fields: parseLogfmt(raw)})
		}
	}
	return lines
}

// parseLogfmt reads `key=value key="quoted \"value\""` pairs, as logrus' text formatter writes them.
func parseLogfmt(line string) map[string]string {
	fields := map[string]string{}
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			break
		}
		key := line[i : i+eq]
		i += eq + 1
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if value, err := strconv.Unquote(line[i:min(j+1, len(line))]); err == nil {
				fields[key] = value
			} else {
				fields[key] = line[i+1 : min(j, len(line))]
			}
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			fields[key] = line[i : i+j]
			i += j
		}
	}
	return fields
}

// find returns the index of the first line at or after from that has every field given
// (key, value, key, value…; a value "*" only needs the key), or -1.
func find(lines []logLine, from int, keyValues ...string) int {
	for i := from; i < len(lines); i++ {
		if lineHas(lines[i], keyValues...) {
			return i
		}
	}
	return -1
}

func lineHas(line logLine, keyValues ...string) bool {
	for k := 0; k+1 < len(keyValues); k += 2 {
		value, ok := line.fields[keyValues[k]]
		if !ok || (keyValues[k+1] != "*" && value != keyValues[k+1]) {
			return false
		}
	}
	return true
}

// hookLines keeps the lines with a hookCommand field: `velero backup logs X | grep hookCommand`.
func hookLines(lines []logLine) []logLine {
	var hooks []logLine
	for _, l := range lines {
		if _, ok := l.fields["hookCommand"]; ok {
			hooks = append(hooks, l)
		}
	}
	return hooks
}

func rawLines(lines []logLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// downloadedItems runs `velero backup download NAME` and lists the tarball's files.
func downloadedItems(t *testing.T, name string) []string {
	t.Helper()
	archive := filepath.Join(t.TempDir(), name+".tar.gz")
	velero(t, "backup", "download", name, "-o", archive)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// podInBackup says whether the tarball holds the pod's object (Velero writes it under
// resources/pods/namespaces/… and resources/pods/v1-preferredversion/namespaces/…).
func podInBackup(items []string, namespace, pod string) bool {
	suffix := fmt.Sprintf("/namespaces/%s/%s.json", namespace, pod)
	for _, item := range items {
		if strings.HasPrefix(item, "resources/pods/") && strings.HasSuffix(item, suffix) {
			return true
		}
	}
	return false
}
