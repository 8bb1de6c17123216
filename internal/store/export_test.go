package store

import "context"

// OpenAtVersion opens the store applying migrations only up to version, so
// that a test can fill a database as an older release left it and watch the
// next migration carry its rows over.
func OpenAtVersion(ctx context.Context, opts Options, version int) (*DB, error) {
	return open(ctx, opts, version)
}
