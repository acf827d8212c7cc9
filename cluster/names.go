package cluster

import "github.com/lovoo/goka"

// Names are the Kafka names picstats uses. A prefix lets several independent
// pipelines (or tests) share one cluster.
type Names struct {
	Prefix   string      // the prefix of every name below
	Group    goka.Group  // the processor's consumer group; its table is Group+"-table"
	Pictures goka.Stream // input: registrations
	Stats    goka.Stream // output: one JSON value per statistic, key = statistic name
	Rejected goka.Stream // output: rejected records with the reason
}

// DefaultNames returns the names of the original assignment and the design,
// each prefixed with prefix.
func DefaultNames(prefix string) Names {
	return Names{
		Prefix:   prefix,
		Group:    goka.Group(prefix + "picstats"),
		Pictures: goka.Stream(prefix + "picture"),
		Stats:    goka.Stream(prefix + "stats"),
		Rejected: goka.Stream(prefix + "picture.rejected"),
	}
}

// Table is the group table the processor writes and views read.
func (n Names) Table() goka.Table { return goka.GroupTable(n.Group) }

// Snapshots is the topic that carries batch snapshots from the input stage
// to the table, keyed by statistic name.
func (n Names) Snapshots() goka.Stream { return goka.Stream(string(n.Group) + "-snapshots") }

// InputGroup is the consumer group of the input stage, which reads the
// picture topic and commits its offsets.
func (n Names) InputGroup() string { return string(n.Group) + "-input" }
