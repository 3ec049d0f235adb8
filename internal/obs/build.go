package obs

import (
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Build is what the binary knows of how it was built.
type Build struct {
	Version  string // the module's version ("(devel)" for a build in the tree)
	Revision string // the VCS revision, with "+dirty" if modified; "" if unknown
	Time     string // the revision's commit time; "" if unknown
	Go       string // the Go version
}

// revision is set by the Makefile (-ldflags -X) when the build has no
// VCS stamp (GOFLAGS=-buildvcs=false).
var revision string

// BuildInfo reads the binary's build information.
func BuildInfo() Build {
	b := Build{Version: "unknown", Go: "unknown", Revision: revision}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version, b.Go = info.Main.Version, info.GoVersion
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Revision != "" {
		b.Revision += "+dirty"
	}
	if b.Revision == "" {
		b.Revision = revision
	}
	return b
}

// String is the one line `version` prints.
func (b Build) String() string {
	s := fmt.Sprintf("%s (%s)", b.Version, b.Go)
	if b.Revision != "" {
		s += " revision " + b.Revision
	}
	if b.Time != "" {
		s += " of " + b.Time
	}
	return s
}

// buildInfoCollector is comet_build_info: 1, with the build as labels.
func buildInfoCollector() prometheus.Collector {
	b := BuildInfo()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "comet_build_info", Help: "The running binary's build: version, revision and Go version as labels; always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.Go},
	}, func() float64 { return 1 })
}
