//go:build unix && !linux

package supervisor

import "syscall"

// sysProcAttr puts the child in its own process group. Without Linux's parent-death
// signal, a supervisor killed outright leaves its children running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
