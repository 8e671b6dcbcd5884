package harness

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes the kernel kill cmd when the harness dies, so no
// child outlives a crashed or killed harness.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
