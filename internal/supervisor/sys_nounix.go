//go:build !unix

package supervisor

import "syscall"

// sysProcAttr has nothing to add where process groups and parent-death signals do
// not exist; children are stopped with Kill after StopTimeout.
func sysProcAttr() *syscall.SysProcAttr { return nil }
