// Command mapsim-chat is the Mapsim Chat server: web client, REST API,
// WebSocket hub, and admin commands, in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/joho/godotenv"
)

func main() {
	_ = godotenv.Load() // a missing .env is fine; the environment wins over it
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hangup := make(chan os.Signal, 1) // SIGHUP reloads certificates; it never ends the server
	signal.Notify(hangup, syscall.SIGHUP)
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr, hangup); err != nil {
		reportError(os.Stderr, os.Getenv, err)
		os.Exit(1)
	}
}
