package store

import (
	"slices"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// A lookup that read the database before a change and comes back after the
// change forgot its key must not put the old answer back.
func TestChatCacheRefusesAnswersOlderThanAChange(t *testing.T) {
	c := newChatCache()
	_, ok, gen := c.chatIDs(7)
	if ok {
		t.Fatal("empty cache has user 7")
	}
	c.forget([]int64{7}) // a change commits while the lookup reads
	c.putChatIDs(7, []int64{1}, gen)
	if ids, ok, _ := c.chatIDs(7); ok {
		t.Fatalf("stale chat ids %v kept after a change", ids)
	}
	_, ok, gen = c.chat(3)
	if ok {
		t.Fatal("empty cache has chat 3")
	}
	c.forget(nil, 3)
	c.putChat(chat.Chat{ID: 3, Name: "g", Title: "old"}, gen)
	if ch, ok, _ := c.chatNamed("g"); ok {
		t.Fatalf("stale chat %+v kept after a change", ch)
	}

	// An answer read after the change is kept, and found by id and by name.
	_, _, gen = c.chat(3)
	c.putChat(chat.Chat{ID: 3, Name: "g", Title: "new"}, gen)
	if ch, ok, _ := c.chatNamed("g"); !ok || ch.Title != "new" {
		t.Fatalf("by name: %+v %v", ch, ok)
	}
	if ch, ok, _ := c.chat(3); !ok || ch.Title != "new" {
		t.Fatalf("by id: %+v %v", ch, ok)
	}
	// Forgetting a chat forgets its name too.
	c.forget(nil, 3)
	if _, ok, _ := c.chatNamed("g"); ok {
		t.Fatal("a forgotten chat is still found by name")
	}
}

// The cache starts over instead of growing past its bounds.
func TestChatCacheIsBounded(t *testing.T) {
	c := newChatCache()
	c.maxChats, c.maxUsers = 10, 10
	for i := int64(1); i <= 35; i++ {
		_, _, gen := c.chatIDs(i)
		c.putChatIDs(i, []int64{i}, gen)
		_, _, gen = c.chat(i)
		c.putChat(chat.Chat{ID: i, Name: string(rune('a' + i))}, gen)
		if len(c.members) > 10 || len(c.byID) > 10 || len(c.byName) > 10 {
			t.Fatalf("after %d: %d users, %d chats, %d names", i, len(c.members), len(c.byID), len(c.byName))
		}
	}
	if ids, ok, _ := c.chatIDs(35); !ok || !slices.Equal(ids, []int64{35}) {
		t.Fatalf("the newest entry is gone: %v %v", ids, ok)
	}
}

// A closed cache answers nothing and keeps nothing: the store behind it is
// closed too, and its lookups must say so.
func TestChatCacheClosed(t *testing.T) {
	c := newChatCache()
	_, _, gen := c.chatIDs(1)
	c.putChatIDs(1, []int64{1}, gen)
	c.close()
	if _, ok, _ := c.chatIDs(1); ok {
		t.Fatal("a closed cache answered")
	}
	_, _, gen = c.chat(2)
	c.putChat(chat.Chat{ID: 2, Name: "g"}, gen)
	if _, ok, _ := c.chatNamed("g"); ok {
		t.Fatal("a closed cache kept a chat")
	}
}
