package hub

// Counter counts events; a Prometheus counter is one.
type Counter interface {
	Inc()
	Add(float64)
}

// Metrics are the hub's counters (labels bound by the caller). A nil field
// counts nothing. Connections, frames and writes are read from Stats.
type Metrics struct {
	Opened    Counter // connections accepted
	Received  Counter // text and file frames received
	Delivered Counter // committed messages queued, one per receiving connection
	// Rejected counts refused messages by the error code sent back; a code
	// missing from the map counts under "other".
	Rejected        map[string]Counter
	SlowDropped     Counter // connections closed because their queue was full
	FramesLimited   Counter // frames over the connection's frame rate
	MessagesLimited Counter // messages over the user's message rate
}

type nopCounter struct{}

func (nopCounter) Inc()        {}
func (nopCounter) Add(float64) {}

// withDefaults fills every nil counter with one that counts nothing, so the
// hot paths never check.
func (m Metrics) withDefaults() Metrics {
	for _, c := range []*Counter{&m.Opened, &m.Received, &m.Delivered, &m.SlowDropped, &m.FramesLimited, &m.MessagesLimited} {
		if *c == nil {
			*c = nopCounter{}
		}
	}
	if m.Rejected == nil {
		m.Rejected = map[string]Counter{}
	}
	if m.Rejected["other"] == nil {
		m.Rejected["other"] = nopCounter{}
	}
	return m
}

// rejected counts a refused message under its error code.
func (m *Metrics) rejected(code string) {
	c, ok := m.Rejected[code]
	if !ok {
		c = m.Rejected["other"]
	}
	c.Inc()
}
