package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/config"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// adminRun is one admin command being run.
type adminRun struct {
	cfg    config.Config
	log    *slog.Logger
	stdout io.Writer
	st     *store.DB // nil for restore until the restored database is open
	// actor is who runs the command, as the audit trail names them.
	actor string
}

// adminActor names the operating-system user running the command, and the
// one who called sudo when it runs under sudo: the audit trail says who did
// what, and "root" alone would not.
func adminActor(getenv func(string) string) string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if s := getenv("SUDO_USER"); s != "" && s != name {
		name += " (sudo by " + s + ")"
	}
	return name
}

// record appends the action to the audit trail and logs it. It never
// carries a secret: callers pass names, counts and paths only.
func (a *adminRun) record(ctx context.Context, command, target, detail string) error {
	a.log.Info("admin action", "command", command, "target", target, "detail", detail, "actor", a.actor)
	err := a.st.InsertAdminAction(ctx, chat.AdminAction{CreatedAt: time.Now().UTC(), Actor: a.actor, Command: command, Target: target, Detail: detail})
	if err != nil {
		return fmt.Errorf("%s is done, but could not be recorded in the audit trail: %w", command, err)
	}
	return nil
}

// liveUser finds a user that is not deleted: a deleted account can have no
// password and no role.
func (a *adminRun) liveUser(ctx context.Context, username string) (chat.User, error) {
	u, err := a.st.UserByUsername(ctx, username)
	if err != nil {
		return chat.User{}, err
	}
	if !u.DeletedAt.IsZero() {
		return chat.User{}, chat.Errorf(chat.EConflict, "The account %s was deleted.", u.Username)
	}
	return u, nil
}

// deleteUser deletes an account (see store.DeleteUser) and, with
// -remove-files, the files it uploaded. Running the command again with
// -remove-files on a deleted account removes the files it kept.
func (a *adminRun) deleteUser(ctx context.Context, f adminFlags) error {
	u, err := a.st.UserByUsername(ctx, f.username)
	if err != nil {
		return err
	}
	var files []chat.File
	already := !u.DeletedAt.IsZero()
	switch {
	case already && !f.removeFiles:
		return chat.Errorf(chat.EConflict, "The account %s is already deleted (add -remove-files to remove the files it kept).", u.Username)
	case already:
		for {
			batch, err := a.st.OldestFilesOf(ctx, u.ID, time.Now().Add(time.Hour), 1000)
			if err != nil {
				return err
			}
			files = append(files, batch...)
			if len(batch) < 1000 {
				break
			}
		}
	default:
		if files, err = a.st.DeleteUser(ctx, u.ID, time.Now()); err != nil {
			return err
		}
	}
	filesSaid := fmt.Sprintf("%d files kept (their messages still link them; -remove-files removes them)", len(files))
	if f.removeFiles {
		up, err := newUploads(a.cfg, a.st, nil, a.log, uploads.Metrics{}, nil, nil)
		if err != nil {
			return err
		}
		n, freed, err := up.RemoveFiles(ctx, files)
		if err != nil {
			return fmt.Errorf("the account is deleted, but removing its files stopped after %d: %w", n, err)
		}
		filesSaid = fmt.Sprintf("%d files removed (%s; their messages say the file expired)", n, uploads.HumanBytes(freed))
	}
	if err := a.record(ctx, "delete-user", u.Username, filesSaid); err != nil {
		return err
	}
	if already {
		fmt.Fprintf(a.stdout, "%s was already deleted; %s\n", u.Username, filesSaid)
		return nil
	}
	fmt.Fprintf(a.stdout, "%s is deleted: logged out everywhere and their connections closed; their messages stay and show as %q; %s. "+
		"The username %s stays reserved, so that nobody can take it and be read as the author of the old messages.\n",
		u.Username, chat.DeletedUsername, filesSaid, u.Username)
	return nil
}

// unlock stores an unlock that every running server applies to its login
// throttle within about revocationPoll.
func (a *adminRun) unlock(ctx context.Context, f adminFlags) error {
	target := f.username
	if f.username != "" {
		u, err := a.st.UserByUsername(ctx, f.username)
		if err != nil {
			return err
		}
		target = u.Username
	}
	if _, err := a.st.InsertUnlock(ctx, chat.Unlock{Username: target, Address: f.address, CreatedAt: time.Now()}); err != nil {
		return err
	}
	what := ""
	switch {
	case target != "" && f.address != "":
		what = target + " at " + f.address
	case target != "":
		what = target + " at every address"
	default:
		what = "every username at " + f.address
	}
	if err := a.record(ctx, "unlock", target, what); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "login throttle cleared for %s; a running server applies it within %s\n", what, revocationPoll+time.Second)
	return nil
}

// when formats a time for the admin's tables: UTC to the second, or "-".
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func (a *adminRun) listUsers(ctx context.Context) error {
	users, err := a.st.Users(ctx, time.Now())
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSERNAME\tROLE\tSTATE\tCREATED\tLAST LOGIN\tLIVE SESSIONS")
	for _, u := range users {
		state := "active"
		switch {
		case !u.DeletedAt.IsZero():
			state = "deleted " + u.DeletedAt.UTC().Format("2006-01-02")
		case !u.DisabledAt.IsZero():
			state = "disabled " + u.DisabledAt.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", u.ID, u.Username, u.Role, state, when(u.CreatedAt), when(u.LastLogin), u.LiveSessions)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%d accounts\n", len(users))
	return nil
}

func (a *adminRun) sessions(ctx context.Context, f adminFlags) error {
	u, err := a.st.UserByUsername(ctx, f.username)
	if err != nil {
		return err
	}
	list, err := a.st.LiveSessions(ctx, u.ID, time.Now())
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SESSION\tSTARTED\tEXPIRES\tADDRESS\tBROWSER")
	for _, s := range list {
		addr, ua := s.IP, s.UserAgent
		if addr == "" {
			addr = "-"
		}
		if ua == "" {
			ua = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.ID, when(s.CreatedAt), when(s.ExpiresAt), addr, ua)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%d live sessions of %s (disable-user or reset-password logs them all out)\n", len(list), u.Username)
	return nil
}

func (a *adminRun) audit(ctx context.Context, f adminFlags) error {
	acts, err := a.st.AdminActions(ctx, f.limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tACTOR\tCOMMAND\tTARGET\tDETAIL")
	for _, x := range acts {
		target, detail := x.Target, x.Detail
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", when(x.CreatedAt), x.Actor, x.Command, target, detail)
	}
	return w.Flush()
}
