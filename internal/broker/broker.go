// Package broker carries committed messages and ephemeral events to the
// hubs that hold the chats' connections. Local is the single-node broker: it
// hands each event straight to the local hub, in publish order.
package broker

import (
	"context"
	"sync"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Local is the in-process broker.
type Local struct {
	mu      sync.RWMutex
	deliver func(chat.Event)
}

var _ chat.Broker = (*Local)(nil)

// NewLocal returns an in-process broker.
func NewLocal() *Local { return &Local{} }

// Subscribe sets the receiver of events.
func (b *Local) Subscribe(deliver func(chat.Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deliver = deliver
}

// Publish hands the event to the receiver synchronously; the hub's receiver
// never blocks on a connection.
func (b *Local) Publish(_ context.Context, ev chat.Event) error {
	b.mu.RLock()
	deliver := b.deliver
	b.mu.RUnlock()
	if deliver != nil {
		deliver(ev)
	}
	return nil
}
