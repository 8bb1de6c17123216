//go:build !linux && !darwin && !windows

package main

import "errors"

// isTerminal reports false: on this system the client does not know how to
// turn echo off, so it reads the password as a plain line, as it does from
// a pipe, and prompts for nothing.
func isTerminal(fd uintptr) bool { return false }

func echoOff(fd uintptr) (restore func() error, err error) {
	return nil, errors.New("turning echo off is not supported on this system")
}
