package main

import (
	"flag"
	"fmt"
)

// childArgs are the flags of the Go children this program runs as
// contenders (--mode), each in its own process like every contender.
type childArgs struct {
	brokers, topic, group, report, body, addr *string
}

func childFlags(fs *flag.FlagSet) childArgs {
	return childArgs{
		brokers: fs.String("brokers", "", "internal: the broker of a child"),
		topic:   fs.String("topic", "", "internal: the input topic of a child"),
		group:   fs.String("group", "", "internal: the consumer group of the goka-naive child"),
		report:  fs.String("report", "", "internal: where the bare child writes its report"),
		body:    fs.String("body", "", "internal: the file the bare-rest child serves"),
		addr:    fs.String("addr", "", "internal: the address the bare-rest child listens on"),
	}
}

func runChild(mode string, a childArgs) error {
	switch mode {
	case "bare":
		return bareChild(*a.brokers, *a.topic, *a.report)
	case "goka-naive":
		return naiveChild(*a.brokers, *a.topic, *a.group)
	case "bare-rest":
		return bareRESTChild(*a.addr, *a.body)
	}
	return fmt.Errorf("unknown mode %q", mode)
}
