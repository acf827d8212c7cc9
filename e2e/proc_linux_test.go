package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel SIGKILL cmd when the test process dies, so
// that a test killed by its timeout leaves no picstats processes behind.
func dieWithTest(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
