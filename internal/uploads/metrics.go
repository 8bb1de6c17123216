package uploads

// Counter counts events; a Prometheus counter is one.
type Counter interface {
	Inc()
	Add(float64)
}

// Metrics count stored files and the quota janitor's work. A nil field
// counts nothing.
type Metrics struct {
	Uploads      Counter // files stored
	UploadBytes  Counter // their bytes (before sealing)
	JanitorRuns  Counter // runs of the quota janitor (Run's ticks)
	JanitorFails Counter // runs that failed
	Expired      Counter // files the janitor expired
}

type nopCounter struct{}

func (nopCounter) Inc()        {}
func (nopCounter) Add(float64) {}

func (m Metrics) withDefaults() Metrics {
	for _, c := range []*Counter{&m.Uploads, &m.UploadBytes, &m.JanitorRuns, &m.JanitorFails, &m.Expired} {
		if *c == nil {
			*c = nopCounter{}
		}
	}
	return m
}
