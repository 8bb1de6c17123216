// Command mapsim-bench is Mapsim Chat's load tool: it registers users through
// the API, opens WebSocket clients over loopback, puts them in rooms, sends
// timestamped messages at a set rate and reports deliveries per second,
// loss, duplicates, latency percentiles and the server's memory.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mapsim-bench:", err)
		os.Exit(1)
	}
}
