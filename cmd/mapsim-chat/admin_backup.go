package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// A backup archive is a gzip-compressed tar with, in this order:
// secret.key (the SECRET_KEY, base64, as DATA_DIR/secret.key holds it),
// chat.db (a consistent copy of the SQLite database), uploads/… (the
// upload folder, unless -no-uploads) and manifest.json last, which lists
// every other entry with its size and SHA-256.
const (
	backupFormat        = "mapsim-chat-backup"
	backupFormatVersion = 1
	backupDB            = "chat.db"
	backupSecret        = "secret.key"
	backupUploads       = "uploads/"
	backupManifest      = "manifest.json"
)

// manifest describes a backup archive.
type manifest struct {
	Format          string         `json:"format"`
	FormatVersion   int            `json:"format_version"`
	AppVersion      string         `json:"app_version"`
	SchemaVersion   int            `json:"schema_version"`
	CreatedAt       time.Time      `json:"created_at"`
	Driver          string         `json:"driver"`
	UploadsIncluded bool           `json:"uploads_included"`
	SecretIncluded  bool           `json:"secret_included"`
	Files           []manifestFile `json:"files"`
}

type manifestFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// backup writes the archive (SQLite), or says how to back MySQL up.
func (a *adminRun) backup(ctx context.Context, f adminFlags, key []byte) error {
	if a.st.Dialect() == store.MySQL {
		a.mysqlBackupPlan()
		return errMySQLBackup
	}
	if _, err := os.Lstat(f.out); err == nil {
		return fmt.Errorf("-out %s exists; name a new file (a backup never overwrites one)", f.out)
	}
	start := time.Now()
	work, err := os.MkdirTemp(filepath.Dir(f.out), ".mapsim-backup-*")
	if err != nil {
		return fmt.Errorf("-out %s: %w", f.out, err)
	}
	defer os.RemoveAll(work)

	// The database first, while the server goes on writing: VACUUM INTO
	// copies one consistent snapshot.
	snap := filepath.Join(work, backupDB)
	dbSize := fileSize(a.cfg.SQLitePath()) + fileSize(a.cfg.SQLitePath()+"-wal")
	p := newProgress(a.stdout, "copying the database")
	stopWatch := p.watchFile(snap, dbSize)
	err = a.st.BackupTo(ctx, snap)
	stopWatch()
	if err != nil {
		return err
	}
	schema, err := a.st.SchemaVersion(ctx)
	if err != nil {
		return err
	}

	// Then the uploads as they are now. A file uploaded after the snapshot
	// has no row in it and is removed as a leftover at the first start; one
	// expired after it is missing, and its message says so.
	var files []string
	var total int64
	if !f.noUploads {
		files, total, err = uploadFiles(a.cfg.UploadDir)
		if err != nil {
			return fmt.Errorf("UPLOAD_DIR %s: %w", a.cfg.UploadDir, err)
		}
	}
	total += fileSize(snap)

	tmp, err := os.OpenFile(f.out+".part", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("-out %s: %w", f.out, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(f.out + ".part")
		}
	}()
	gz := gzip.NewWriter(tmp)
	tw := tar.NewWriter(gz)
	m := manifest{Format: backupFormat, FormatVersion: backupFormatVersion, AppVersion: version, SchemaVersion: schema,
		CreatedAt: start.UTC().Truncate(time.Second), Driver: store.SQLite, UploadsIncluded: !f.noUploads, SecretIncluded: !f.noSecret}
	p = newProgress(a.stdout, "writing the archive")
	add := func(name string, r io.Reader, size int64, count bool) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		h := sha256.New()
		dst := io.MultiWriter(tw, h)
		if count {
			dst = io.MultiWriter(dst, p.counter(total))
		}
		n, err := io.Copy(dst, r)
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("%s changed size while it was copied", name)
		}
		m.Files = append(m.Files, manifestFile{Path: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	if !f.noSecret {
		secretText := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := add(backupSecret, bytes.NewReader(secretText), int64(len(secretText)), false); err != nil {
			return fmt.Errorf("write %s: %w", f.out, err)
		}
	}
	addFile := func(name, src string) error {
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		return add(name, in, fi.Size(), true)
	}
	if err := addFile(backupDB, snap); err != nil {
		return fmt.Errorf("write %s: %w", f.out, err)
	}
	missing := 0
	for _, rel := range files {
		err := addFile(backupUploads+rel, filepath.Join(a.cfg.UploadDir, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			missing++ // expired by the janitor meanwhile
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s: %s: %w", f.out, rel, err)
		}
	}
	manifestJSON, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: backupManifest, Mode: 0o600, Size: int64(len(manifestJSON)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("write %s: %w", f.out, err)
	}
	if _, err := tw.Write(manifestJSON); err != nil {
		return fmt.Errorf("write %s: %w", f.out, err)
	}
	for _, step := range []func() error{tw.Close, gz.Close, tmp.Sync, tmp.Close} {
		if err := step(); err != nil {
			return fmt.Errorf("write %s: %w", f.out, err)
		}
	}
	if err := os.Rename(f.out+".part", f.out); err != nil {
		return fmt.Errorf("write %s: %w", f.out, err)
	}
	done = true
	p.finish()
	size := fileSize(f.out)
	detail := fmt.Sprintf("%s, schema %d, %d uploaded files", uploads.HumanBytes(size), schema, len(files)-missing)
	if err := a.record(ctx, "backup", f.out, detail); err != nil {
		return err
	}
	uploadsSaid := fmt.Sprintf("%d uploaded files", len(files)-missing)
	if f.noUploads {
		uploadsSaid = "no uploads (-no-uploads: back " + a.cfg.UploadDir + " up yourself)"
	}
	if f.noSecret {
		fmt.Fprintf(a.stdout, "wrote %s (%s): the database (schema version %d) and %s, in %s.\n"+
			"The archive does not hold SECRET_KEY (-no-secret): keep the key elsewhere; without it the history cannot be read, and restore needs it set.\n",
			f.out, uploads.HumanBytes(size), schema, uploadsSaid, time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(a.stdout, "wrote %s (%s): the database (schema version %d), the secret key and %s, in %s.\n"+
		"The archive holds SECRET_KEY: whoever has it can read the whole history. Keep it as you keep the key, or back up with -no-secret.\n",
		f.out, uploads.HumanBytes(size), schema, uploadsSaid, time.Since(start).Round(time.Millisecond))
	return nil
}

// errMySQLBackup ends backup on MySQL with exit status 1, so that a script
// does not take the printed plan for a backup made.
var errMySQLBackup = errors.New("no archive written: with MySQL/MariaDB, back up with mysqldump and keep SECRET_KEY and the upload folder, as printed above")

// mysqlBackupPlan prints how to back a MySQL/MariaDB deployment up: the
// mysqldump line (the password is asked for, never printed) and the two
// things the dump does not hold.
func (a *adminRun) mysqlBackupPlan() {
	c := a.cfg
	fmt.Fprintf(a.stdout, `This server uses MySQL/MariaDB; mapsim-chat copies SQLite databases only. Back up three things:

1. The database, consistent while the server runs (InnoDB, one transaction):
   mysqldump --single-transaction --quick --hex-blob --routines --triggers \
     --default-character-set=utf8mb4 -h %s -P %s -u %s -p %s > mapsim-chat-$(date -u +%%Y%%m%%dT%%H%%MZ).sql

2. SECRET_KEY, from your .env or the environment (without it the dump's history cannot be read).

3. The upload folder %s (files are sealed under SECRET_KEY), for example:
   tar -C %s -czf mapsim-chat-uploads-$(date -u +%%Y%%m%%dT%%H%%MZ).tar.gz .

Restore: mysql -h HOST -u USER -p DBNAME < the .sql file, put SECRET_KEY back in .env,
unpack the uploads into UPLOAD_DIR, then start the server.
`, shellQuote(c.DBHost), shellQuote(c.DBPort), shellQuote(c.DBUser), shellQuote(c.DBName), c.UploadDir, shellQuote(c.UploadDir))
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// uploadFiles lists the files of the upload folder, by slash-separated
// path under it, leaving out tmp/ (uploads still arriving).
func uploadFiles(dir string) ([]string, int64, error) {
	var out []string
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return filepath.SkipDir // no uploads yet
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, rel)
		total += info.Size()
		return nil
	})
	sort.Strings(out)
	return out, total, err
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// restore unpacks a backup into DATA_DIR and UPLOAD_DIR. It checks every
// entry against the manifest's checksums, and the secret against the
// database's key versions; if anything fails, it removes what it wrote.
func (a *adminRun) restore(ctx context.Context, f adminFlags) error {
	cfg := a.cfg
	if cfg.DBDriver != store.SQLite {
		return errors.New("restore unpacks the SQLite archives that admin backup writes; with MySQL/MariaDB, load the dump with mysql (see the README's Backup and restore)")
	}
	in, err := os.Open(f.in)
	if err != nil {
		return fmt.Errorf("-in: %w", err)
	}
	defer in.Close()
	for _, dir := range []string{cfg.DataDir, cfg.UploadDir} {
		if n, err := entries(dir); err != nil {
			return err
		} else if n > 0 && !f.force {
			return fmt.Errorf("%s is not empty: restore into a fresh folder (set DATA_DIR and UPLOAD_DIR), or add -force to replace what is there", dir)
		}
	}
	var written []string // files this restore created, removed if it fails
	ok := false
	defer func() {
		if !ok {
			for i := len(written) - 1; i >= 0; i-- {
				os.Remove(written[i])
			}
		}
	}()
	if f.force {
		// A log or index of another database beside the restored one
		// would be read as part of it.
		for _, ext := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(cfg.SQLitePath() + ext); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}

	fi, err := in.Stat()
	if err != nil {
		return err
	}
	p := newProgress(a.stdout, "restoring")
	gz, err := gzip.NewReader(io.TeeReader(in, p.counter(fi.Size())))
	if err != nil {
		return fmt.Errorf("%s is not a backup archive (not gzip): %w", f.in, err)
	}
	tr := tar.NewReader(gz)
	got := map[string]manifestFile{}
	var m *manifest
	var secretText []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s is damaged or not a backup archive: %w", f.in, err)
		}
		if m != nil {
			return fmt.Errorf("%s: %s after the manifest; this is not an archive admin backup wrote", f.in, h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("%s: %s is not a regular file; this is not an archive admin backup wrote", f.in, h.Name)
		}
		var dst string
		switch {
		case h.Name == backupManifest:
			m = &manifest{}
			if err := json.NewDecoder(io.LimitReader(tr, 64<<20)).Decode(m); err != nil {
				return fmt.Errorf("%s: manifest: %w", f.in, err)
			}
			continue
		case h.Name == backupSecret:
			if secretText, err = io.ReadAll(io.LimitReader(tr, 4096)); err != nil {
				return fmt.Errorf("%s: %w", f.in, err)
			}
			sum := sha256.Sum256(secretText)
			got[h.Name] = manifestFile{Path: h.Name, Size: int64(len(secretText)), SHA256: hex.EncodeToString(sum[:])}
			continue
		case h.Name == backupDB:
			dst = cfg.SQLitePath()
		case strings.HasPrefix(h.Name, backupUploads):
			rel := strings.TrimPrefix(h.Name, backupUploads)
			if !filepath.IsLocal(rel) || path.Clean(rel) != rel || rel == "." {
				return fmt.Errorf("%s: refusing the entry %q, which points outside the upload folder", f.in, h.Name)
			}
			dst = filepath.Join(cfg.UploadDir, filepath.FromSlash(rel))
		default:
			return fmt.Errorf("%s: unknown entry %q; this is not an archive admin backup wrote", f.in, h.Name)
		}
		if _, dup := got[h.Name]; dup {
			return fmt.Errorf("%s: %s appears twice", f.in, h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		written = append(written, dst)
		hash := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, hash), tr)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", h.Name, err)
		}
		got[h.Name] = manifestFile{Path: h.Name, Size: n, SHA256: hex.EncodeToString(hash.Sum(nil))}
	}
	if m == nil {
		return fmt.Errorf("%s has no manifest: it is cut short or not an archive admin backup wrote", f.in)
	}
	if m.Format != backupFormat || m.FormatVersion != backupFormatVersion {
		return fmt.Errorf("%s is a %q archive, version %d; this mapsim-chat reads %q version %d", f.in, m.Format, m.FormatVersion, backupFormat, backupFormatVersion)
	}
	if len(got) != len(m.Files) {
		return fmt.Errorf("%s holds %d files but its manifest lists %d: it is damaged", f.in, len(got), len(m.Files))
	}
	for _, want := range m.Files {
		have, found := got[want.Path]
		if !found || have != want {
			return fmt.Errorf("%s: %s does not match its checksum in the manifest: the archive is damaged; nothing was restored", f.in, want.Path)
		}
	}
	if _, found := got[backupDB]; !found {
		return fmt.Errorf("%s holds no database", f.in)
	}
	var key []byte
	switch {
	case secretText == nil && cfg.SecretKey == nil:
		return fmt.Errorf("%s holds no secret key (it was made with -no-secret): set SECRET_KEY to the key of the backed-up server and restore again", f.in)
	case secretText == nil:
		key = cfg.SecretKey
	default:
		if key, err = keyring.ParseSecret(string(secretText)); err != nil {
			return fmt.Errorf("%s holds no usable secret key", f.in)
		}
	}
	if secretText != nil && cfg.SecretKey != nil && !bytes.Equal(cfg.SecretKey, key) {
		return errors.New("SECRET_KEY in the environment or .env is not the key in this backup: the restored history could not be read. " +
			"Remove SECRET_KEY (the server then reads DATA_DIR/secret.key) or set it to the backup's key, and restore again")
	}
	if cfg.SecretKey == nil {
		if err := writeSecretFile(cfg.SecretFile(), secretText); err != nil {
			return err
		}
		written = append(written, cfg.SecretFile())
	}

	// The copy must open, migrate to this version's schema, and its key
	// versions must unwrap with the key.
	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("the restored database does not open: %w", err)
	}
	defer st.Close()
	written = append(written, cfg.SQLitePath()+"-wal", cfg.SQLitePath()+"-shm")
	if _, err := keyring.Load(ctx, st, key); err != nil {
		if secretText == nil {
			return fmt.Errorf("SECRET_KEY is not the key of this backup's database: %w", err)
		}
		return fmt.Errorf("the backup's secret key does not open its database: %w", err)
	}
	a.st = st
	p.finish()
	uploadsN := len(got) - 1
	if secretText != nil {
		uploadsN--
	}
	if err := a.record(ctx, "restore", f.in, fmt.Sprintf("backup of %s (mapsim-chat %s, schema %d), %d uploaded files",
		m.CreatedAt.Format(time.RFC3339), m.AppVersion, m.SchemaVersion, uploadsN)); err != nil {
		return err
	}
	ok = true
	fmt.Fprintf(a.stdout, "restored the backup of %s (mapsim-chat %s, schema version %d): the database into %s, %d uploaded files into %s",
		m.CreatedAt.Format(time.RFC3339), m.AppVersion, m.SchemaVersion, cfg.SQLitePath(), uploadsN, cfg.UploadDir)
	if cfg.SecretKey == nil {
		fmt.Fprintf(a.stdout, ", the secret key into %s", cfg.SecretFile())
	}
	fmt.Fprintln(a.stdout, ". Every checksum matched; start the server.")
	return nil
}

// entries counts what a folder holds; a missing folder holds nothing.
func entries(dir string) (int, error) {
	list, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	return len(list), nil
}

// writeSecretFile writes the secret key file, mode 0600, replacing one that
// is there (restore -force).
func writeSecretFile(p string, text []byte) error {
	tmp := p + ".restore"
	if err := os.WriteFile(tmp, text, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
