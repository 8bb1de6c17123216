package main

import "golang.org/x/sys/unix"

// The termios requests of macOS (and the BSDs it comes from).
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)
