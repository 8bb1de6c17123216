package clamdtest_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/testutil/clamdtest"
)

// instream scans data with a bare INSTREAM exchange and returns the reply.
func instream(t *testing.T, addr string, data []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var b bytes.Buffer
	b.WriteString("zINSTREAM\x00")
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.Write(data)
	b.Write([]byte{0, 0, 0, 0})
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(reply), "\x00")
}

func TestStart(t *testing.T) {
	if len(clamdtest.EICAR) != 68 {
		t.Fatalf("EICAR is %d bytes, want 68", len(clamdtest.EICAR))
	}
	addr := clamdtest.Start(t)
	if got := instream(t, addr, []byte(clamdtest.EICAR)); got != "stream: "+clamdtest.Signature+".UNOFFICIAL FOUND" &&
		got != "stream: "+clamdtest.Signature+" FOUND" {
		t.Fatalf("EICAR: clamd answered %q", got)
	}
	if got := instream(t, addr, []byte("nothing to see here")); got != "stream: OK" {
		t.Fatalf("clean data: clamd answered %q", got)
	}
}

// TestStartStop starts and stops clamd several times over, so that a flaky
// start shows up here rather than in the tests that use it.
func TestStartStop(t *testing.T) {
	for range 5 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			addr := clamdtest.Start(t)
			if got := instream(t, addr, []byte("x")); got != "stream: OK" {
				t.Fatalf("clamd answered %q", got)
			}
		})
	}
}
