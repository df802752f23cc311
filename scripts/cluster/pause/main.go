// Command pause is the process of every pod sandbox of the real-cluster stack (the image
// localhost/pause:1): it holds the pod's namespaces open, reaps the zombies that exec'd hook
// commands leave behind when their parent dies (it is PID 1 of a pod sharing its PID namespace),
// and exits on SIGTERM or SIGINT. Kubernetes' own pause image does the same in C; it lives in a
// container registry, which this stack does without.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reapZombies()
	}
}

// reapZombies waits for every child that has exited, without blocking.
func reapZombies() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
