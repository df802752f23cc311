package harness

import (
	"fmt"
	"strings"
)

// HostNoise recognises entries caused by the host alone, whatever the
// plugin does, and says why (else ""). go-plugin v1.6.0 (Velero v1.16,
// v1.17, v1.18.0-1) calls cmd.Wait before its stdout scanner has finished,
// so a plugin that exits promptly after Shutdown races it and Velero logs
// "error encountered while scanning stdout … file already closed" at Error:
// hashicorp/go-plugin#298, fixed by #299 (go-plugin v1.7.0, Velero
// v1.18.2+). It hits Velero's built-in plugin binary (here the test binary)
// as well. (Same rule as level1's hostNoise.)
func HostNoise(e Entry) string {
	if e.Message == "error encountered while scanning stdout" && strings.Contains(fmt.Sprint(e.Data["error"]), "file already closed") {
		return "go-plugin v1.6.0 stdout/Wait race, hashicorp/go-plugin#298"
	}
	return ""
}
