package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureMap keeps ARCHITECTURE.md true: every package under
// internal/ is on the map, and every function, type, method, variable or
// constant it names in backquotes as pkg.Name or pkg.Type.Method exists.
func TestArchitectureMap(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)

	// Our packages, by the short name the map uses.
	dirs := map[string]string{}
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || d.Name() == "testdata" {
			return err
		}
		if goFiles, _ := filepath.Glob(filepath.Join(path, "*.go")); len(goFiles) == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, "internal/testutil/") && !strings.Contains(text, "`"+rel+"`") {
			t.Errorf("ARCHITECTURE.md does not list the package %s", rel)
		}
		dirs[d.Name()] = path
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	names := map[string]map[string]bool{} // package → declared names, and Type.Method
	declared := func(pkg string) map[string]bool {
		if n, ok := names[pkg]; ok {
			return n
		}
		n := map[string]bool{}
		files, _ := filepath.Glob(filepath.Join(dirs[pkg], "*.go"))
		fset := token.NewFileSet()
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatalf("parse %s: %v", path, err)
			}
			for _, decl := range f.Decls {
				switch d := decl.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil {
						n[d.Name.Name] = true
					} else {
						n[receiverType(d.Recv.List[0].Type)+"."+d.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, spec := range d.Specs {
						switch s := spec.(type) {
						case *ast.TypeSpec:
							n[s.Name.Name] = true
						case *ast.ValueSpec:
							for _, id := range s.Names {
								n[id.Name] = true
							}
						}
					}
				}
			}
		}
		names[pkg] = n
		return n
	}

	ref := regexp.MustCompile("`([a-z][a-z0-9]*)\\.([A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)?)`")
	checked := 0
	for _, m := range ref.FindAllStringSubmatch(text, -1) {
		pkg, name := m[1], m[2]
		if _, ours := dirs[pkg]; !ours {
			continue // another project's name, such as http.Server.Shutdown
		}
		checked++
		if !declared(pkg)[name] {
			t.Errorf("ARCHITECTURE.md names %s.%s, which internal/%s does not declare", pkg, name, pkg)
		}
	}
	if checked < 30 {
		t.Fatalf("only %d names checked: has the map lost its function names?", checked)
	}
}

// receiverType is the name of a method's receiver type, without a pointer
// or type parameters.
func receiverType(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return receiverType(t.X)
	case *ast.IndexExpr:
		return receiverType(t.X)
	case *ast.IndexListExpr:
		return receiverType(t.X)
	case *ast.Ident:
		return t.Name
	}
	return ""
}

// TestThreatModelNamesRealTests keeps the README's threat-model table
// true: every protection names at least one test, and every test it names
// exists.
func TestThreatModelNamesRealTests(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start, end := strings.Index(text, "## Threat model"), strings.Index(text, "**Not protected**")
	if start < 0 || end < start {
		t.Fatal("README.md has no threat model with a Protected and a Not protected part")
	}
	funcs := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			src, _ := os.ReadFile(path)
			for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
				funcs[m[1]] = true
			}
		}
		return nil
	})
	named := regexp.MustCompile("`((?:Test|Fuzz)\\w+)`")
	rows := 0
	for _, line := range strings.Split(text[start:end], "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| threat |") {
			continue
		}
		rows++
		cells := strings.Split(line, " | ")
		tests := cells[len(cells)-1]
		names := named.FindAllStringSubmatch(tests, -1)
		if len(names) == 0 && !strings.Contains(tests, "browser test") && !strings.Contains(tests, "make vuln") {
			t.Errorf("threat model row without a test: %.80s", line)
		}
		for _, m := range names {
			if !funcs[m[1]] {
				t.Errorf("the threat model names %s, which no test file declares", m[1])
			}
		}
	}
	if rows < 20 {
		t.Fatalf("only %d rows in the threat model table", rows)
	}
}
