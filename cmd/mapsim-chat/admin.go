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
  invite [-ttl 168h]                                   print a single-use invite code (REGISTRATION=invite)
  rotate-secret [-generate]                            rewrap every key version under a new SECRET_KEY,
                                                       read from standard input or generated; logs
                                                       everyone out (tokens are signed with a key
                                                       derived from SECRET_KEY)
  prune-uploads                                        run the upload quota janitor now
  clear-data --yes                                     delete every message, file and key version (users and
                                                       chats stay); stop the server first

Passwords and secrets are read from standard input so that they stay out of
the shell history and the process list, for example:
  read -rs PW && printf '%s\n' "$PW" | mapsim-chat admin create-user -username alice
`

func runAdmin(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		io.WriteString(stdout, adminUsage)
		return nil
	}
	fs := flag.NewFlagSet("admin "+args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	username := fs.String("username", "", "the user's name")
	email := fs.String("email", "", "the user's email address (optional)")
	admin := fs.Bool("admin", false, "make the user an administrator")
	role := fs.String("role", "", "admin or member")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long the invite is valid")
	generate := fs.Bool("generate", false, "generate the new secret instead of reading it")
	yes := fs.Bool("yes", false, "confirm clear-data")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	in := bufio.NewReader(stdin)

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := secret(cfg, log)
	if err != nil {
		return err
	}
	svc := auth.NewService(auth.Options{Store: st, SigningKey: keyring.SigningKey(key), TokenTTL: cfg.AccessTokenTTL, Registration: cfg.Registration})

	switch args[0] {
	case "create-user":
		password, err := readLine(in, "password")
		if err != nil {
			return err
		}
		r := chat.RoleMember
		if *admin {
			r = chat.RoleAdmin
		}
		u, err := svc.CreateUser(ctx, *username, password, *email, r, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created user %s (id %d, role %s)\n", u.Username, u.ID, u.Role)
	case "reset-password":
		u, err := st.UserByUsername(ctx, *username)
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
		fmt.Fprintf(stdout, "password of %s changed; every session of theirs is logged out\n", u.Username)
	case "set-role":
		if *role != chat.RoleAdmin && *role != chat.RoleMember {
			return errors.New("-role must be admin or member")
		}
		u, err := st.UserByUsername(ctx, *username)
		if err != nil {
			return err
		}
		if err := st.SetRole(ctx, u.ID, *role); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s\n", u.Username, *role)
	case "disable-user", "enable-user":
		u, err := st.UserByUsername(ctx, *username)
		if err != nil {
			return err
		}
		at, state := time.Now(), "disabled: logged out everywhere, and their logins are refused"
		if args[0] == "enable-user" {
			at, state = time.Time{}, "enabled: they may log in again"
		}
		if err := st.SetDisabled(ctx, u.ID, at); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is %s\n", u.Username, state)
	case "invite":
		code, err := svc.CreateInvite(ctx, *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", code)
	case "rotate-secret":
		return rotateSecret(ctx, cfg, st, key, *generate, in, stdout)
	case "prune-uploads":
		up, err := newUploads(cfg, st, nil, log, nil)
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
		fmt.Fprintf(stdout, "expired %d files, freed %s; %d files now use %s of the %s quota\n",
			n, uploads.HumanBytes(freed), u.Files, uploads.HumanBytes(u.Bytes), uploads.HumanBytes(cfg.UploadMaxSizeBytes))
	case "clear-data":
		if !*yes {
			return errors.New("clear-data deletes every message, file and key version for good; run it again with --yes to go ahead (stop the server first)")
		}
		up, err := newUploads(cfg, st, nil, log, nil)
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
		fmt.Fprintf(stdout, "removed %d messages, %d file records, %d stored files in %s and %d key versions; users and chats are kept. The next start makes a new key.\n",
			c.Messages, c.Files, removed, cfg.UploadDir, c.KeyVersions)
	default:
		io.WriteString(stdout, adminUsage)
		return fmt.Errorf("unknown admin command %q", args[0])
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
