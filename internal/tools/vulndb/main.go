// Command vulndb builds the vulnerability database govulncheck reads, from
// the OSV entries of the golang.org/x/vulndb module, which the Go module
// proxy serves: CI reaches the proxy but not vuln.go.dev. It writes the
// layout govulncheck's -db file:// expects: index/db.json,
// index/modules.json and ID/<id>.json.
//
//	go run ./internal/tools/vulndb -osv DIR/data/osv -out bin/tools/vulndb
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// entry is the part of an OSV entry the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

// moduleVuln is one entry of a module in index/modules.json. The index
// leaves out the version that fixed each entry: govulncheck then reads every
// entry of a module it finds in the build and judges the ranges itself,
// which costs a little time and can miss nothing.
type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

func main() {
	osvDir := flag.String("osv", "", "folder of OSV entries (golang.org/x/vulndb's data/osv)")
	out := flag.String("out", "", "folder to write the database to")
	flag.Parse()
	if *osvDir == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*osvDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

func build(osvDir, out string) error {
	files, err := filepath.Glob(filepath.Join(osvDir, "GO-*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no OSV entries in %s", osvDir)
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	byModule := map[string][]moduleVuln{}
	var newest time.Time // the entries of x/vulndb's data/osv carry none yet
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil || e.ID == "" {
			return fmt.Errorf("%s: not an OSV entry: %v", f, err)
		}
		if e.Modified.After(newest) {
			newest = e.Modified
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			if p := a.Package.Name; p != "" && !seen[p] {
				seen[p] = true
				byModule[p] = append(byModule[p], moduleVuln{ID: e.ID, Modified: e.Modified})
			}
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return err
		}
	}
	mods := make([]module, 0, len(byModule))
	for p, v := range byModule {
		mods = append(mods, module{Path: p, Vulns: v})
	}
	slices.SortFunc(mods, func(a, b module) int {
		if a.Path < b.Path {
			return -1
		}
		if a.Path > b.Path {
			return 1
		}
		return 0
	})
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), mods); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), map[string]time.Time{"modified": newest}); err != nil {
		return err
	}
	fmt.Printf("vulndb: %d entries for %d modules\n", len(files), len(mods))
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
