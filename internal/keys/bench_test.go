package keys_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/keys"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/testutil/servicetest"
)

// groupOf makes an encrypted group of n members with one device each on a
// real SQLite store, and returns the service, the group, the members and
// their devices.
func groupOf(b *testing.B, n int) (*keys.Service, chat.Chat, []chat.Identity, []*e2ee.DeviceKeys, []e2ee.Device) {
	b.Helper()
	svc, _, _, c, ids, dk, devs := groupWithStore(b, n)
	return svc, c, ids, dk, devs
}

// groupWithStore is groupOf with the store and key ring.
func groupWithStore(b *testing.B, n int) (*keys.Service, *store.DB, *keyring.Ring, chat.Chat, []chat.Identity, []*e2ee.DeviceKeys, []e2ee.Device) {
	b.Helper()
	ctx := context.Background()
	w := servicetest.MustWorld(b)
	svc := keys.New(keys.Options{Store: w.Store, Ring: w.Ring, Broker: w.Broker, Log: w.Log, MaxMessageBytes: 8192})
	var (
		ids     []chat.Identity
		devKeys []*e2ee.DeviceKeys
		devs    []e2ee.Device
		userIDs []int64
	)
	for i := range n {
		id := w.MustUser(b, fmt.Sprintf("member%d", i))
		identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
		if _, err := svc.PublishIdentity(ctx, id, identity.Public(), false); err != nil {
			b.Fatal(err)
		}
		dk, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
		d, _ := e2ee.Certify(identity, id.Username, dk.Device())
		if _, _, err := svc.PublishDevice(ctx, id, d, ""); err != nil {
			b.Fatal(err)
		}
		ids, devKeys, devs, userIDs = append(ids, id), append(devKeys, dk), append(devs, d), append(userIDs, id.UserID)
	}
	c := chat.Chat{Kind: chat.KindGroup, Title: "Bench", E2EE: true}
	if _, _, err := w.Store.CreateChat(ctx, &c, userIDs, w.Ring.SealMessage, "create"); err != nil {
		b.Fatal(err)
	}
	return svc, w.Store, w.Ring, c, ids, devKeys, devs
}

// epochRequest wraps a fresh room key for every device, as a client does.
func epochRequest(b *testing.B, c chat.Chat, epoch uint32, sender *e2ee.DeviceKeys, ids []chat.Identity, devs []e2ee.Device) (keys.StartRequest, [e2ee.KeySize]byte) {
	room := e2ee.NewRoomKey()
	req := keys.StartRequest{Epoch: int64(epoch), SenderDevice: sender.Device().ID}
	for i, d := range devs {
		env, err := e2ee.SealEnvelope(sender, ids[0].Username, c.Name, epoch, ids[i].Username, d, room)
		if err != nil {
			b.Fatal(err)
		}
		req.Envelopes = append(req.Envelopes, env)
	}
	return req, room
}

// BenchmarkStartEpoch50 is the server's share of a new epoch for a group
// of 50 members with a device each: check 50 signatures, seal and store 50
// envelopes.
func BenchmarkStartEpoch50(b *testing.B) {
	ctx := context.Background()
	svc, c, ids, devKeys, devs := groupOf(b, 50)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		req, _ := epochRequest(b, c, uint32(i+1), devKeys[0], ids, devs)
		b.StartTimer()
		if err := svc.StartEpoch(ctx, ids[0], c, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreMessage is what storing one encrypted message costs,
// against a plaintext one of the same size: the mse1 text is parsed, and
// its epoch and device are checked and counted in the transaction that
// stores it. A new epoch starts (untimed) before each runs out.
func BenchmarkStoreMessage(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run(map[bool]string{false: "plaintext", true: "encrypted"}[encrypted], func(b *testing.B) {
			ctx := context.Background()
			svc, st, ring, c, ids, devKeys, devs := groupWithStore(b, 2)
			var (
				epoch uint32
				text  = strings.Repeat("x", 1400)
			)
			b.ResetTimer()
			for i := range b.N {
				if encrypted && i%(chat.EpochMaxMessages-1) == 0 {
					b.StopTimer()
					epoch++
					req, room := epochRequest(b, c, epoch, devKeys[0], ids, devs)
					if err := svc.StartEpoch(ctx, ids[0], c, req); err != nil {
						b.Fatal(err)
					}
					var err error
					if text, err = e2ee.EncryptMessage(room, devKeys[0], c.Name, epoch, ids[0].Username, "c",
						[]byte(`{"v":1,"text":"`+strings.Repeat("x", 1000)+`"}`)); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				m := chat.NewMessage{ChatID: c.ID, UserID: ids[0].UserID, Kind: chat.MessageText, ClientID: fmt.Sprint("m", i), CreatedAt: time.Now()}
				if encrypted {
					use, err := svc.MessageUse(ids[0], c, text)
					if err != nil {
						b.Fatal(err)
					}
					m.Use = &use
				}
				ring.SealMessage(&m, []byte(text))
				if _, err := st.InsertMessages(ctx, []chat.NewMessage{m}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
