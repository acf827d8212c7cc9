package main

import (
	"fmt"
	"syscall"
)

// noFileLimit describes RLIMIT_NOFILE against what the clients need. Go
// programs raise their soft limit to the hard one at start (this one and
// the picstats it runs), so the hard limit is what counts.
func noFileLimit(clients int) string {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "RLIMIT_NOFILE: " + err.Error()
	}
	need := uint64(clients) + 256 // the API holds one socket per client too, plus broker and HTTP connections
	s := fmt.Sprintf("RLIMIT_NOFILE soft %d (hard %d); %d clients need about %d per process", rl.Cur, rl.Max, clients, need)
	if rl.Cur < need {
		s += fmt.Sprintf(" — TOO LOW: expect connect failures (raise the hard limit: ulimit -Hn %d, or as root)", need)
	}
	return s
}
