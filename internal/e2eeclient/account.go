package e2eeclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// DeviceName is the name this client publishes its devices under.
const DeviceName = "mapsim-chat terminal client"

// ErrNoBackup means the account has an identity key on the server but no
// key backup to restore it from, and no key file here.
var ErrNoBackup = errors.New("this account's keys were made on another device and it has no key backup to restore them from")

// ErrIdentityMismatch means the key file holds another identity key than
// the server publishes for the account: the keys were replaced elsewhere.
var ErrIdentityMismatch = errors.New("the server publishes another identity key for this account than the key file holds (were the keys replaced on another device? then move the key file away, and the next start restores the new keys from their backup)")

// Need says what unlocking the keys will do with the passphrase.
type Need int

const (
	// NeedOpen: a key file exists; the passphrase opens it.
	NeedOpen Need = iota
	// NeedNew: the account has no keys yet; the passphrase will protect
	// new ones.
	NeedNew
	// NeedRestore: the account has keys elsewhere; the passphrase opens
	// their backup.
	NeedRestore
)

// Account is an account's keys, open: the key file, its contents and the
// API to publish and fetch with.
type Account struct {
	API      *API
	Username string
	File     *KeyFile
	State    *State
	// Warn receives problems that do not stop the client (a room key that
	// could not be backed up); nil drops them.
	Warn func(string)
	// dirty is set when State changed since the last save.
	dirty bool
}

// Prepare says what Unlock will need the passphrase for.
func Prepare(ctx context.Context, api *API, username, keyPath string) (Need, error) {
	if _, err := readable(keyPath); err == nil {
		return NeedOpen, nil
	}
	me, err := api.UserKeys(ctx, username)
	if err != nil {
		return 0, fmt.Errorf("e2eeclient: look up my keys: %w", err)
	}
	if me.Identity == nil {
		return NeedNew, nil
	}
	return NeedRestore, nil
}

// Unlock opens the keys of username with the passphrase: from the key file
// at keyPath when there is one; otherwise it restores them from the
// backup, or, for an account without keys, makes and publishes new ones
// and their backup. A wrong passphrase is ErrWrongPassphrase, and nothing
// is written.
func Unlock(ctx context.Context, api *API, username, keyPath, passphrase string) (*Account, error) {
	if passphrase == "" {
		return nil, errors.New("e2eeclient: the recovery passphrase is empty")
	}
	kf, st, err := OpenKeyFile(keyPath, api.Base, username, passphrase)
	switch {
	case err == nil:
		a := &Account{API: api, Username: username, File: kf, State: st}
		return a, a.republish(ctx)
	case !errors.Is(err, ErrNoKeyFile):
		return nil, err
	}
	me, err := api.UserKeys(ctx, username)
	if err != nil {
		return nil, fmt.Errorf("e2eeclient: look up my keys: %w", err)
	}
	if me.Identity == nil {
		return create(ctx, api, username, keyPath, passphrase)
	}
	return restore(ctx, api, username, keyPath, passphrase, *me.Identity)
}

// create makes an identity and a device, saves them, and publishes the
// identity, the device and the backup header. The key file is written
// first: a failure after it is repaired by the next start (republish).
func create(ctx context.Context, api *API, username, keyPath, passphrase string) (*Account, error) {
	kdf := e2ee.NewBackupKDF()
	key, err := kdf.Key(passphrase)
	if err != nil {
		return nil, fmt.Errorf("e2eeclient: %w", err)
	}
	identity, err := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if err != nil {
		return nil, err
	}
	device, err := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	if err != nil {
		return nil, err
	}
	a := &Account{API: api, Username: username, File: NewKeyFile(keyPath, api.Base, username, kdf, key), State: NewState(identity, device)}
	if err := a.File.Save(a.State); err != nil {
		return nil, err
	}
	return a, a.republish(ctx)
}

// restore opens the backup with the passphrase, makes a new device
// certified by the restored identity, opens every backed-up room key, and
// saves it all in a new key file.
func restore(ctx context.Context, api *API, username, keyPath, passphrase string, published e2ee.PublicKey) (*Account, error) {
	var header e2ee.BackupHeader
	if err := api.Do(ctx, http.MethodGet, "/keys/backup", nil, &header); err != nil {
		if IsStatus(err, http.StatusNotFound) {
			return nil, ErrNoBackup
		}
		return nil, fmt.Errorf("e2eeclient: fetch the key backup: %w", err)
	}
	items, err := api.BackupRoomKeyItems(ctx)
	if err != nil {
		return nil, fmt.Errorf("e2eeclient: fetch the backed-up room keys: %w", err)
	}
	a := &Account{API: api, Username: username}
	st, key, err := a.openBackup(header, items, passphrase)
	if err != nil {
		return nil, err
	}
	if !st.Identity.Public().Equal(published) {
		return nil, errors.New("e2eeclient: the key backup holds another identity key than the server publishes for this account")
	}
	a.State, a.File = st, NewKeyFile(keyPath, api.Base, username, header.KDF, key)
	if err := a.File.Save(a.State); err != nil {
		return nil, err
	}
	return a, a.republish(ctx)
}

// openBackup opens a backup header and its room-key items with the
// passphrase: the identity key, a new device of this client, and the room
// keys. A wrong passphrase is ErrWrongPassphrase; an item that does not
// open is skipped with a warning.
func (a *Account) openBackup(header e2ee.BackupHeader, items []e2ee.RoomKeyBackup, passphrase string) (*State, [e2ee.KeySize]byte, error) {
	key, err := header.KDF.Key(passphrase)
	if err != nil {
		return nil, key, fmt.Errorf("e2eeclient: the key backup: %w", err)
	}
	identity, err := e2ee.OpenIdentityBackup(key, a.Username, header.Identity)
	if errors.Is(err, e2ee.ErrWrongPassphrase) {
		return nil, key, fmt.Errorf("e2eeclient: the key backup does not open: %w", ErrWrongPassphrase)
	}
	if err != nil {
		return nil, key, fmt.Errorf("e2eeclient: the key backup: %w", err)
	}
	device, err := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	if err != nil {
		return nil, key, err
	}
	st := NewState(identity, device)
	for _, it := range items {
		rk, err := e2ee.OpenRoomKeyBackup(key, a.Username, it)
		if err != nil {
			a.warn(fmt.Sprintf("a backed-up room key of %s (epoch %d) does not open: %v", it.Chat, it.Epoch, err))
			continue
		}
		st.SetRoomKey(it.Chat, it.Epoch, RoomKey{Key: rk, Got: time.Now()})
	}
	return st, key, nil
}

// republish makes sure the server has this account's identity key and
// this device, and the backup header: after a first start that failed
// half-way, or when this device was revoked elsewhere (then a new device
// replaces it). An identity key on the server other than ours stops here.
func (a *Account) republish(ctx context.Context) error {
	me, err := a.API.UserKeys(ctx, a.Username)
	if err != nil {
		return fmt.Errorf("e2eeclient: look up my keys: %w", err)
	}
	mine := a.State.Identity.Public()
	if me.Identity != nil && !me.Identity.Equal(mine) {
		return ErrIdentityMismatch
	}
	if me.Identity == nil {
		if err := a.API.Do(ctx, http.MethodPut, "/keys/identity", mine, nil); err != nil {
			return fmt.Errorf("e2eeclient: publish the identity key: %w", err)
		}
	}
	published := false
	for _, d := range me.Devices {
		if d.ID == a.State.Device.ID {
			published = true
		}
	}
	if !published {
		if a.deviceRevoked(ctx) {
			// This device is gone from the server (revoked elsewhere):
			// its id is burnt, so a new device takes its place.
			if err := a.newDevice(); err != nil {
				return err
			}
		}
		if err := a.publishDevice(ctx); err != nil {
			return err
		}
	}
	if err := a.API.Do(ctx, http.MethodGet, "/keys/backup", nil, nil); IsStatus(err, http.StatusNotFound) {
		header, err := a.backupHeader()
		if err != nil {
			return err
		}
		if err := a.API.Do(ctx, http.MethodPut, "/keys/backup", header, nil); err != nil {
			return fmt.Errorf("e2eeclient: store the key backup: %w", err)
		}
		var items []e2ee.RoomKeyBackup
		for chat, epochs := range a.State.RoomKeys {
			for epoch, k := range epochs {
				item, err := a.backupItem(chat, epoch, k.Key)
				if err != nil {
					return err
				}
				items = append(items, item)
			}
		}
		if err := a.API.BackupRoomKeys(ctx, items); err != nil {
			return fmt.Errorf("e2eeclient: back up the room keys: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("e2eeclient: look up the key backup: %w", err)
	}
	return nil
}

// backupHeader is the body of PUT /keys/backup: the key file's key
// derivation and the identity key sealed under the backup key.
func (a *Account) backupHeader() (e2ee.BackupHeader, error) {
	box, err := e2ee.SealIdentityBackup(a.File.BackupKey(), a.Username, a.State.Identity)
	return e2ee.BackupHeader{KDF: a.File.kdf, Identity: box}, err
}

// backupItem is the backup item of a room key.
func (a *Account) backupItem(chat string, epoch uint32, key [e2ee.KeySize]byte) (e2ee.RoomKeyBackup, error) {
	return e2ee.SealRoomKeyBackup(a.File.BackupKey(), a.Username, chat, epoch, key)
}

// deviceRevoked reports whether the server lists this device among my
// revoked ones.
func (a *Account) deviceRevoked(ctx context.Context) bool {
	var all UserKeys
	if err := a.API.Do(ctx, http.MethodGet, "/keys/users/"+url.PathEscape(a.Username)+"?all=1", nil, &all); err != nil {
		return false
	}
	for _, d := range all.Devices {
		if d.ID == a.State.Device.ID {
			return true
		}
	}
	return false
}

// newDevice replaces this client's device with a fresh one and saves it.
func (a *Account) newDevice() error {
	device, err := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	if err != nil {
		return err
	}
	a.State.Device = device
	return a.File.Save(a.State)
}

// publishDevice certifies this device with the identity key and publishes
// it.
func (a *Account) publishDevice(ctx context.Context) error {
	d, err := e2ee.Certify(a.State.Identity, a.Username, a.State.Device.Device())
	if err != nil {
		return err
	}
	body := map[string]any{"device_id": d.ID, "name": DeviceName, "dh": d.DH, "sig": d.Sig, "cert": e2ee.EncodeB64U(d.Cert)}
	if err := a.API.Do(ctx, http.MethodPost, "/keys/devices", body, nil); err != nil {
		return fmt.Errorf("e2eeclient: publish this device: %w", err)
	}
	return nil
}

// Me returns this account's username and its published device, certified.
func (a *Account) Me() (string, e2ee.Device, error) {
	d, err := e2ee.Certify(a.State.Identity, a.Username, a.State.Device.Device())
	return a.Username, d, err
}

// addRoomKey records a room key, marks the state for saving, and adds the
// key to the backup.
func (a *Account) addRoomKey(ctx context.Context, chat string, epoch uint32, k RoomKey) {
	a.State.SetRoomKey(chat, epoch, k)
	a.dirty = true
	item, err := a.backupItem(chat, epoch, k.Key)
	if err == nil {
		err = a.API.BackupRoomKeys(ctx, []e2ee.RoomKeyBackup{item})
	}
	if err != nil {
		a.warn(fmt.Sprintf("the room key of epoch %d could not be added to the key backup: %v", epoch, err))
	}
}

// Save writes the key file if the state changed since the last save.
func (a *Account) Save() error {
	if !a.dirty {
		return nil
	}
	if err := a.File.Save(a.State); err != nil {
		return err
	}
	a.dirty = false
	return nil
}

// MarkChanged notes that State was changed by the caller (a pin accepted,
// a user verified), so that Save writes it.
func (a *Account) MarkChanged() { a.dirty = true }

func (a *Account) warn(s string) {
	if a.Warn != nil {
		a.Warn(s)
	}
}

// sameUser reports whether two usernames are the same account.
func sameUser(a, b string) bool { return strings.EqualFold(a, b) }
