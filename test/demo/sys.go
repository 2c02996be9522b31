package main

import "syscall"

const sigterm = syscall.SIGTERM

// ownGroup puts a child in its own process group: a Ctrl-C at the terminal reaches this
// program only, which then stops the children in order.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
