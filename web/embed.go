// Package web embeds the browser client. The files under static/ are served
// as they are: no build step.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Static returns the client's files with index.html at the root.
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the folder is embedded above; this cannot fail
	}
	return sub
}
