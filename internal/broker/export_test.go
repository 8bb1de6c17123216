package broker

import (
	"context"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Handle passes an event to the broker as if it had arrived from Redis.
func (b *Redis) Handle(ev chat.Event) { b.handle(ev) }

// RetryStuck runs the retry loop's fill of the chats whose fill failed.
func (b *Redis) RetryStuck() { b.retryStuck(context.Background()) }

// MaxHeld is how much a line holds before it drops and leaves the chat to
// the retry loop.
const MaxHeld = maxHeld
