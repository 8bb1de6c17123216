package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/config"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

const adminUsage = `usage: mapsim-chat admin <command> [flags]

commands:
  create-user -username NAME [-email ADDR] [-admin]   password on standard input
  reset-password -username NAME                        password on standard input; logs the user out everywhere
  set-role -username NAME -role admin|member
  disable-user -username NAME                          refuse their logins and close their sessions and sockets
  enable-user -username NAME                           let a disabled user log in again
  delete-user -username NAME [-remove-files]           delete the account: logged out and sockets closed at
                                                       once; their messages stay, shown as "deleted user";
                                                       their files stay unless -remove-files; the username
                                                       stays reserved
  unlock [-username NAME] [-address IP]                clear the login throttle of a username, an address or
                                                       the two together (running servers apply it within seconds)
  list-users                                           every account: role, state, created, last login, sessions
  sessions -username NAME                              the user's live sessions: started, expires, address, browser
  audit [-limit 50]                                    the newest admin actions: when, who, what
  invite [-ttl 168h]                                   print a single-use invite code (REGISTRATION=invite)
  rotate-secret [-generate]                            rewrap every key version under a new SECRET_KEY,
                                                       read from standard input or generated; logs
                                                       everyone out (tokens are signed with a key
                                                       derived from SECRET_KEY)
  prune-uploads                                        run the upload quota janitor now
  clear-data --yes                                     delete every message, file and key version (users and
                                                       chats stay); stop the server first
  backup -out FILE [-no-uploads] [-no-secret]          SQLite: one archive with a consistent copy of the
                                                       database (taken while the server runs), the secret key,
                                                       the upload folder and a manifest of checksums.
                                                       MySQL: prints the mysqldump line and what else to keep
  restore -in FILE [-force]                            unpack a backup into DATA_DIR and UPLOAD_DIR, which must be
                                                       empty (or -force), checking every checksum
  export -chat NAME -format json|txt|html [-out FILE]  a chat's history as a record (the global chat and
                                                       chats that are not end-to-end encrypted)

Passwords and secrets are read from standard input so that they stay out of
the shell history and the process list, for example:
  read -rs PW && printf '%s\n' "$PW" | mapsim-chat admin create-user -username alice

Every command that changes something, and backup, restore and export, is
recorded in the audit trail with the operating-system user who ran it.
`

// adminCommands are the admin commands; the value says whether the command
// needs -username.
var adminCommands = map[string]bool{
	"create-user": true, "reset-password": true, "set-role": true, "disable-user": true, "enable-user": true,
	"delete-user": true, "sessions": true,
	"unlock": false, "list-users": false, "audit": false, "invite": false, "rotate-secret": false, "prune-uploads": false,
	"clear-data": false, "backup": false, "restore": false, "export": false,
}

// adminFlags are every admin command's flags (one set: each command reads
// the ones it documents).
type adminFlags struct {
	username, email, role, address, out, in, chat, format         string
	admin, generate, yes, removeFiles, force, noUploads, noSecret bool
	ttl                                                           time.Duration
	limit                                                         int
}

func runAdmin(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		io.WriteString(stdout, adminUsage)
		return nil
	}
	cmd := args[0]
	needsUser, known := adminCommands[cmd]
	if !known {
		io.WriteString(stdout, adminUsage)
		return fmt.Errorf("unknown admin command %q", cmd)
	}
	var f adminFlags
	fs := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&f.username, "username", "", "the user's name")
	fs.StringVar(&f.email, "email", "", "the user's email address (optional)")
	fs.BoolVar(&f.admin, "admin", false, "make the user an administrator")
	fs.StringVar(&f.role, "role", "", "admin or member")
	fs.DurationVar(&f.ttl, "ttl", 7*24*time.Hour, "how long the invite is valid")
	fs.BoolVar(&f.generate, "generate", false, "generate the new secret instead of reading it")
	fs.BoolVar(&f.yes, "yes", false, "confirm clear-data")
	fs.BoolVar(&f.removeFiles, "remove-files", false, "delete-user: remove the files the user uploaded too")
	fs.StringVar(&f.address, "address", "", "unlock: the client IP address to unlock")
	fs.IntVar(&f.limit, "limit", 50, "audit: how many of the newest actions to show")
	fs.StringVar(&f.out, "out", "", "backup, export: the file to write")
	fs.BoolVar(&f.noUploads, "no-uploads", false, "backup: leave the upload folder out")
	fs.BoolVar(&f.noSecret, "no-secret", false, "backup: leave SECRET_KEY out (keep it elsewhere)")
	fs.StringVar(&f.in, "in", "", "restore: the backup archive to read")
	fs.BoolVar(&f.force, "force", false, "restore: write into a data folder that is not empty")
	fs.StringVar(&f.chat, "chat", "", "export: the chat's name (or id)")
	fs.StringVar(&f.format, "format", "", "export: json, txt or html")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("admin %s: unexpected argument %q (flags come as -name value)", cmd, fs.Arg(0))
	}
	if needsUser && f.username == "" {
		return fmt.Errorf("admin %s: -username is required", cmd)
	}
	if err := checkAdminFlags(cmd, &f); err != nil {
		return fmt.Errorf("admin %s: %w", cmd, err)
	}
	a := &adminRun{cfg: cfg, log: log, stdout: stdout, actor: adminActor(getenv)}
	if cmd == "backup" && cfg.DBDriver == store.MySQL {
		// Nothing to open: the plan is made of the settings alone.
		a.mysqlBackupPlan()
		return errMySQLBackup
	}
	if cmd == "restore" {
		// Before anything opens the database or makes a secret: the
		// folder must stay as it is unless the restore can go ahead.
		return a.restore(ctx, f)
	}
	in := bufio.NewReader(stdin)

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a.st = st
	key, err := secret(cfg, log)
	if err != nil {
		return err
	}
	svc := auth.NewService(auth.Options{Store: st, SigningKey: keyring.SigningKey(key), TokenTTL: cfg.AccessTokenTTL, Registration: cfg.Registration})

	switch cmd {
	case "create-user":
		password, err := readLine(in, "password")
		if err != nil {
			return err
		}
		r := chat.RoleMember
		if f.admin {
			r = chat.RoleAdmin
		}
		u, err := svc.CreateUser(ctx, f.username, password, f.email, r, nil)
		if err != nil {
			return err
		}
		if err := a.record(ctx, cmd, u.Username, "role "+u.Role); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created user %s (id %d, role %s)\n", u.Username, u.ID, u.Role)
	case "reset-password":
		u, err := a.liveUser(ctx, f.username)
		if err != nil {
			return err
		}
		password, err := readLine(in, "password")
		if err != nil {
			return err
		}
		if err := svc.SetPassword(ctx, u, password); err != nil {
			return err
		}
		if err := a.record(ctx, cmd, u.Username, "every session revoked"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed; every session of theirs is logged out\n", u.Username)
	case "set-role":
		u, err := a.liveUser(ctx, f.username)
		if err != nil {
			return err
		}
		if err := st.SetRole(ctx, u.ID, f.role); err != nil {
			return err
		}
		if err := a.record(ctx, cmd, u.Username, "role "+f.role); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s\n", u.Username, f.role)
	case "disable-user", "enable-user":
		u, err := st.UserByUsername(ctx, f.username)
		if err != nil {
			return err
		}
		at, state := time.Now(), "disabled: logged out everywhere, and their logins are refused"
		if cmd == "enable-user" {
			at, state = time.Time{}, "enabled: they may log in again"
		}
		if err := st.SetDisabled(ctx, u.ID, at); err != nil {
			return err
		}
		if err := a.record(ctx, cmd, u.Username, ""); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is %s\n", u.Username, state)
	case "delete-user":
		return a.deleteUser(ctx, f)
	case "unlock":
		return a.unlock(ctx, f)
	case "list-users":
		return a.listUsers(ctx)
	case "sessions":
		return a.sessions(ctx, f)
	case "audit":
		return a.audit(ctx, f)
	case "invite":
		code, err := svc.CreateInvite(ctx, f.ttl)
		if err != nil {
			return err
		}
		if err := a.record(ctx, cmd, "", "valid "+f.ttl.String()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", code)
	case "rotate-secret":
		if err := rotateSecret(ctx, cfg, st, key, f.generate, in, stdout); err != nil {
			return err
		}
		return a.record(ctx, cmd, "", "every key version rewrapped")
	case "prune-uploads":
		up, err := newUploads(cfg, st, nil, log, uploads.Metrics{}, nil, nil)
		if err != nil {
			return err
		}
		n, freed, err := up.Prune(ctx)
		if err != nil {
			return err
		}
		u, err := st.FileUsage(ctx)
		if err != nil {
			return err
		}
		if err := a.record(ctx, cmd, "", fmt.Sprintf("%d files expired, %d bytes freed", n, freed)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "expired %d files, freed %s; %d files now use %s of the %s quota\n",
			n, uploads.HumanBytes(freed), u.Files, uploads.HumanBytes(u.Bytes), uploads.HumanBytes(cfg.UploadMaxSizeBytes))
	case "clear-data":
		if !f.yes {
			return errors.New("clear-data deletes every message, file and key version for good; run it again with --yes to go ahead (stop the server first)")
		}
		up, err := newUploads(cfg, st, nil, log, uploads.Metrics{}, nil, nil)
		if err != nil {
			return err
		}
		c, err := st.ClearData(ctx)
		if err != nil {
			return err
		}
		removed, err := up.ClearFolder()
		if err != nil {
			return fmt.Errorf("cleared the database but not the upload folder (%d files removed so far): %w", removed, err)
		}
		if err := a.record(ctx, cmd, "", fmt.Sprintf("%d messages, %d file records, %d key versions removed", c.Messages, c.Files, c.KeyVersions)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %d messages, %d file records, %d stored files in %s and %d key versions; users and chats are kept. The next start makes a new key.\n",
			c.Messages, c.Files, removed, cfg.UploadDir, c.KeyVersions)
	case "backup":
		return a.backup(ctx, f, key)
	case "export":
		return a.export(ctx, f, key)
	}
	return nil
}

// checkAdminFlags refuses flags a command cannot use as given, before the
// command touches the database.
func checkAdminFlags(cmd string, f *adminFlags) error {
	switch cmd {
	case "set-role":
		if f.role != chat.RoleAdmin && f.role != chat.RoleMember {
			return errors.New("-role must be admin or member")
		}
	case "unlock":
		if f.username == "" && f.address == "" {
			return errors.New("name -username, -address or both")
		}
		if f.address != "" {
			ip, err := netip.ParseAddr(f.address)
			if err != nil || ip.Zone() != "" {
				return fmt.Errorf("-address %q is not an IP address (such as 192.0.2.7 or 2001:db8::1)", f.address)
			}
			f.address = ip.Unmap().String() // as the server writes client addresses
		}
	case "audit":
		if f.limit <= 0 || f.limit > 100000 {
			return fmt.Errorf("-limit %d: give a number from 1 to 100000", f.limit)
		}
	case "invite":
		if f.ttl <= 0 {
			return fmt.Errorf("-ttl %s: give a positive duration such as 24h", f.ttl)
		}
	case "backup":
		if f.out == "" {
			return errors.New("-out FILE is required (for example -out mapsim-chat-backup.tar.gz)")
		}
	case "restore":
		if f.in == "" {
			return errors.New("-in FILE is required: the archive that admin backup wrote")
		}
	case "export":
		if f.chat == "" {
			return errors.New("-chat NAME is required (the global chat is \"global\")")
		}
		switch f.format {
		case "json", "txt", "html":
		case "":
			return errors.New("-format is required: json, txt or html")
		default:
			return fmt.Errorf("-format %q: give json, txt or html", f.format)
		}
	}
	return nil
}

// helpAsked reports whether args ask for a command's usage: -h, -help or
// --help before any "--". Asking is no failure, so the command exits 0.
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func readLine(in *bufio.Reader, what string) (string, error) {
	line, err := in.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read the %s from standard input: %w", what, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// rotateSecret rewraps every key version under a new secret in one
// transaction. When the current secret is the generated file, the file is
// replaced too; otherwise the operator must put the new value in .env.
func rotateSecret(ctx context.Context, cfg config.Config, st *store.DB, oldKey []byte, generate bool, in *bufio.Reader, stdout io.Writer) error {
	var encoded string
	if generate {
		b := make([]byte, keyring.SecretSize)
		rand.Read(b)
		encoded = base64.StdEncoding.EncodeToString(b)
	} else {
		line, err := readLine(in, "new SECRET_KEY")
		if err != nil {
			return err
		}
		encoded = strings.TrimSpace(line)
	}
	newKey, err := keyring.ParseSecret(encoded)
	if err != nil {
		return fmt.Errorf("new SECRET_KEY: %w", err)
	}
	fromFile := cfg.SecretKey == nil
	var tmp string
	if fromFile {
		// Write the new file before the database changes, and move it into
		// place after: at no point is the only copy of the key in memory.
		tmp = filepath.Join(filepath.Dir(cfg.SecretFile()), ".secret.key.new")
		if err := os.WriteFile(tmp, []byte(encoded+"\n"), 0o600); err != nil {
			return err
		}
	}
	n, err := keyring.Rewrap(ctx, st, oldKey, newKey)
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return err
	}
	if fromFile {
		if err := os.Rename(tmp, cfg.SecretFile()); err != nil {
			return fmt.Errorf("rewrapped %d key versions but could not replace %s (the new key is in %s): %w", n, cfg.SecretFile(), tmp, err)
		}
		fmt.Fprintf(stdout, "rewrapped %d key versions; %s holds the new secret. Restart the server.\n%s\n", n, cfg.SecretFile(), loggedOut)
		return nil
	}
	fmt.Fprintf(stdout, "rewrapped %d key versions. Set SECRET_KEY to the new value in your .env and restart the server.\n%s\n", n, loggedOut)
	if generate {
		fmt.Fprintf(stdout, "SECRET_KEY=%s\n", encoded)
	}
	return nil
}

// loggedOut is what rotate-secret does to every session, said where the
// operator sees it before restarting.
const loggedOut = "The restart logs everyone out: access tokens are signed with a key derived from SECRET_KEY, " +
	"so every token issued before it is refused and every user logs in again."
