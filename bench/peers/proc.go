package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a contender (or a helper) running as its own process, so that its
// CPU time and peak memory are its own.
type child struct {
	cmd   *exec.Cmd
	log   string // its stdout and stderr
	start time.Time
	done  chan struct{} // closed when the process has exited
	err   error
}

// startChild starts name with args, its stdout and stderr written to
// logFile and, if mark is not nil, watched by it. The child dies with the
// driver (parent-death signal), so an interrupted benchmark leaves nothing
// running.
func startChild(ctx context.Context, logFile string, mark *marker, name string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	var out io.Writer = f
	if mark != nil {
		out = io.MultiWriter(f, mark)
	}
	cmd.Stdout, cmd.Stderr = out, out
	c := &child{cmd: cmd, log: logFile, done: make(chan struct{})}
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { c.err = cmd.Wait(); f.Close(); close(c.done) }()
	return c, nil
}

// cpuNow is the utime+stime of the running process, from /proc/PID/stat.
func (c *child) cpuNow() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(fs[11], 64) // field 14
	st, _ := strconv.ParseFloat(fs[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

// bound returns a context that ends after d or when the child exits,
// whichever comes first.
func (c *child) bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// waitReady polls ready every 5 ms until it says the child is ready, and
// returns "" then; or what went wrong if the child exits first or 2
// minutes pass.
func (c *child) waitReady(ctx context.Context, what string, ready func() bool) string {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ready() {
			return ""
		}
		select {
		case <-c.done:
			c.printTail(what, 20)
			return c.exitNote(what)
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.printTail(what, 20)
	return "not ready in 2 minutes"
}

// stop sends SIGTERM, waits for the exit (SIGKILL after 30 s) and returns
// the CPU seconds and peak RSS in MB over the whole life of the process.
func (c *child) stop() (cpu, rssMB float64) {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return math.NaN(), math.NaN()
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpu, float64(ru.Maxrss) / 1024
}

// exitNote describes how the child ended, for a FAILED line.
func (c *child) exitNote(what string) string {
	return fmt.Sprintf("%s exited: %v", what, c.err)
}

// printTail prints the last lines of the child's output, so that a failed
// run explains itself (the scratch folder is removed at the end).
func (c *child) printTail(what string, lines int) {
	b, _ := os.ReadFile(c.log)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	ls = ls[max(0, len(ls)-lines):]
	fmt.Printf("    last lines of %s's output:\n      %s\n", what, strings.Join(ls, "\n      "))
}

func runCmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// marker notes when a child first writes a line containing sub, such as
// Kafka Streams' RUNNING or picstats' "processor ready".
type marker struct {
	sub  []byte
	mu   sync.Mutex
	at   time.Time
	tail []byte // the end of the previous write, for a match split across writes
}

func newMarker(sub string) *marker { return &marker{sub: []byte(sub)} }

func (m *marker) Write(p []byte) (int, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() && bytes.Contains(append(m.tail, p...), m.sub) {
		m.at = now
	}
	if n := len(m.sub); len(p) >= n {
		m.tail = append(m.tail[:0], p[len(p)-n:]...)
	} else {
		m.tail = append(m.tail, p...)
	}
	return len(p), nil
}

// since is the time from start to the first match, NaN if none yet.
func (m *marker) since(start time.Time) float64 {
	if m == nil {
		return math.NaN()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() {
		return math.NaN()
	}
	return m.at.Sub(start).Seconds()
}
