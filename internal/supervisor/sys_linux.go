package supervisor

import "syscall"

// sysProcAttr puts the child in its own process group and asks the kernel to send it
// SIGTERM if the supervisor dies without stopping it (kill -9), so no child is orphaned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
