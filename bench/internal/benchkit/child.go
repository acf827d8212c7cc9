package benchkit

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Child is a program run as its own process, so that its CPU time and
// peak memory are its own, with its output in a log file.
type Child struct {
	Cmd   *exec.Cmd
	Log   string // its stdout and stderr
	Start time.Time
	Done  chan struct{} // closed when the process has exited; Err is set then
	Err   error
}

// Start starts name with args, its stdout and stderr written to logFile and,
// if tee is not nil (a Marker), to tee. The end of ctx sends SIGTERM
// (SIGKILL 30 s later), and the child dies with this program (parent-death
// signal), so an interrupted benchmark leaves nothing running.
func Start(ctx context.Context, logFile string, tee io.Writer, name string, args ...string) (*Child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	var out io.Writer = f
	if tee != nil {
		out = io.MultiWriter(f, tee)
	}
	cmd.Stdout, cmd.Stderr = out, out
	c := &Child{Cmd: cmd, Log: logFile, Done: make(chan struct{}), Start: time.Now()}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { c.Err = cmd.Wait(); f.Close(); close(c.Done) }()
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// CPU is the child's CPU seconds so far, NaN once it has exited.
func (c *Child) CPU() float64 {
	s, err := ReadProc(c.Pid())
	if err != nil {
		return math.NaN()
	}
	return s.CPU.Seconds()
}

// Bound returns a context that ends after d or when the child exits,
// whichever comes first.
func (c *Child) Bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d)
	go func() {
		select {
		case <-c.Done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// WaitReady polls ready every 5 ms until it says the child is ready, and
// returns "" then; or what went wrong if the child exits first or 2 minutes
// pass, after printing the end of its log.
func (c *Child) WaitReady(ctx context.Context, what string, ready func() bool) string {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ready() {
			return ""
		}
		select {
		case <-c.Done:
			c.PrintTail(what)
			return c.ExitNote(what)
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.PrintTail(what)
	return "not ready in 2 minutes"
}

// Stop sends SIGTERM, waits for the exit (SIGKILL after 30 s) and returns
// the CPU seconds and peak RSS in MB over the whole life of the process.
// It may be called more than once.
func (c *Child) Stop() (cpu, rssMB float64) {
	select {
	case <-c.Done:
	default:
		_ = c.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.Done:
		case <-time.After(30 * time.Second):
			_ = c.Cmd.Process.Kill()
			<-c.Done
		}
	}
	ru, ok := c.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return math.NaN(), math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), float64(ru.Maxrss) / 1024
}

// ExitNote describes how the child ended, for a FAILED line.
func (c *Child) ExitNote(what string) string { return fmt.Sprintf("%s exited: %v", what, c.Err) }

// PrintTail prints the last 20 lines of the child's log, so that a failed
// run explains itself (the log may be removed at the end).
func (c *Child) PrintTail(what string) {
	fmt.Printf("    last lines of %s's output:\n      %s\n", what, strings.ReplaceAll(Tail(c.Log, 20), "\n", "\n      "))
}

// Tail is the last n lines of a file.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
