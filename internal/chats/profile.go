package chats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/files"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// ProfileStore is what profiles need of the database.
type ProfileStore interface {
	UsersByUsername(ctx context.Context, usernames []string) ([]chat.User, error)
	UserByID(ctx context.Context, id int64) (chat.User, error)
	SetDisplayName(ctx context.Context, userID int64, name string) error
	SetAvatar(ctx context.Context, a chat.Avatar) error
	DeleteAvatar(ctx context.Context, userID int64) error
	Avatar(ctx context.Context, userID int64) (chat.Avatar, error)
	SetNotify(ctx context.Context, chatID, userID int64, level string) error
}

// Avatar limits: the largest upload, and the most pixels decoded (the web
// client sends a 512-pixel square; 16 megapixels takes any photo a phone
// makes). Two avatars are decoded at a time at most, so avatars hold at most
// about 128 MB of bitmaps between them.
const (
	MaxAvatarBytes  = 8 << 20
	MaxAvatarPixels = 16_000_000
	avatarDecodes   = 2
)

// MaxProfiles is the most profiles one Profiles call returns.
const MaxProfiles = 100

// Profiles returns the public profiles (username, display name, avatar
// version) of the named users; any signed-in user may read any, as user
// search already shows every username. Deleted and unknown names are left
// out: clients show them as they are.
func (s *Service) Profiles(ctx context.Context, names []string) ([]chat.User, error) {
	if len(names) > MaxProfiles {
		return nil, chat.Errorf(chat.EInvalid, "Ask for at most %d profiles at once.", MaxProfiles)
	}
	users, err := s.profiles.UsersByUsername(ctx, names)
	if err != nil {
		return nil, err
	}
	out := users[:0]
	for _, u := range users {
		if u.DeletedAt.IsZero() {
			out = append(out, u)
		}
	}
	return out, nil
}

// Profile returns the asking user's own account.
func (s *Service) Profile(ctx context.Context, id chat.Identity) (chat.User, error) {
	return s.profiles.UserByID(ctx, id.UserID)
}

// SetDisplayName sets the asking user's display name ("" removes it) and
// tells everyone online.
func (s *Service) SetDisplayName(ctx context.Context, id chat.Identity, name string) (chat.User, error) {
	name, err := chat.CheckDisplayName(name)
	if err != nil {
		return chat.User{}, err
	}
	if err := s.profiles.SetDisplayName(ctx, id.UserID, name); err != nil {
		return chat.User{}, err
	}
	return s.profileChanged(ctx, id)
}

// SetAvatar decodes an image (with the limits thumbnails have), cuts it
// square, re-encodes it and makes it the asking user's avatar, and tells
// everyone online.
func (s *Service) SetAvatar(ctx context.Context, id chat.Identity, image []byte) (chat.User, error) {
	if len(image) > MaxAvatarBytes {
		return chat.User{}, chat.Errorf(chat.ETooLarge, "The image is %d bytes; an avatar may be at most %d MiB.", len(image), MaxAvatarBytes>>20)
	}
	select {
	case s.avatarSem <- struct{}{}:
	case <-ctx.Done():
		return chat.User{}, ctx.Err()
	}
	t, err := files.Avatar(bytes.NewReader(image), MaxAvatarPixels)
	<-s.avatarSem
	var pix *files.PixelError
	switch {
	case errors.As(err, &pix):
		return chat.User{}, chat.Errorf(chat.EInvalid, "The image is %d×%d pixels; an avatar may have at most %d megapixels.", pix.Width, pix.Height, MaxAvatarPixels/1_000_000)
	case err != nil:
		return chat.User{}, chat.Errorf(chat.EInvalid, "That is not a PNG, JPEG, GIF or WebP image the server can read.")
	}
	if err := s.profiles.SetAvatar(ctx, chat.Avatar{UserID: id.UserID, Image: t.Data, MimeType: t.MimeType, UpdatedAt: s.now().UTC()}); err != nil {
		return chat.User{}, err
	}
	return s.profileChanged(ctx, id)
}

// DeleteAvatar removes the asking user's avatar and tells everyone online.
func (s *Service) DeleteAvatar(ctx context.Context, id chat.Identity) (chat.User, error) {
	if err := s.profiles.DeleteAvatar(ctx, id.UserID); err != nil {
		return chat.User{}, err
	}
	return s.profileChanged(ctx, id)
}

// Avatar returns a user's avatar by username; ENotFound when they have
// none (or are deleted, or there is no such user).
func (s *Service) Avatar(ctx context.Context, username string) (chat.Avatar, error) {
	u, err := s.store.UserByUsername(ctx, username)
	if err != nil {
		return chat.Avatar{}, err
	}
	if !u.DeletedAt.IsZero() {
		return chat.Avatar{}, chat.Errorf(chat.ENotFound, "No avatar.")
	}
	return s.profiles.Avatar(ctx, u.ID)
}

// SetNotify sets which of a chat's messages notify the asking member.
func (s *Service) SetNotify(ctx context.Context, id chat.Identity, c chat.Chat, level string) (chat.ChatSummary, error) {
	if err := chat.CheckNotify(level); err != nil {
		return chat.ChatSummary{}, err
	}
	if err := s.profiles.SetNotify(ctx, c.ID, id.UserID, level); err != nil {
		if chat.ErrorCode(err) == chat.ENotFound {
			return chat.ChatSummary{}, errNoChat
		}
		return chat.ChatSummary{}, err
	}
	sum, err := s.store.UserChat(ctx, id.UserID, c.ID)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	// The member's other tabs and browsers follow.
	shared := wire.SharedChat(sum)
	shared.Notify = sum.Notify
	frame, _ := json.Marshal(wire.ChatFrame{Type: wire.TypeChatUpdated, Chat: shared})
	s.publish(ctx, chat.Event{ChatID: c.ID, UserIDs: []int64{id.UserID}, Frame: frame})
	return sum, nil
}

// profileChanged reads the user's profile back and sends it, as a user
// frame, to every connection subscribed to the global chat: everyone is a
// member of it, so everyone online sees a new name or avatar at once.
func (s *Service) profileChanged(ctx context.Context, id chat.Identity) (chat.User, error) {
	u, err := s.profiles.UserByID(ctx, id.UserID)
	if err != nil {
		return chat.User{}, err
	}
	global, err := s.store.ChatByName(ctx, chat.GlobalChatName)
	if err != nil {
		return chat.User{}, fmt.Errorf("chats: find the global chat: %w", err)
	}
	frame, _ := json.Marshal(wire.UserUpdate{Type: wire.TypeUser, User: wire.ProfileOf(u)})
	s.publish(ctx, chat.Event{ChatID: global.ID, Frame: frame})
	return u, nil
}
