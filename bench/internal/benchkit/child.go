package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
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

// Start starts name with args, its output written to logFile and, if tee
// is not nil (a Marker), to tee. The end of ctx sends SIGTERM (SIGKILL 30 s
// later), and the child dies with this program (parent-death signal), so
// an interrupted benchmark leaves nothing running.
func Start(ctx context.Context, logFile string, tee io.Writer, name string, args ...string) (*Child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout = f
	if tee != nil {
		cmd.Stdout = io.MultiWriter(f, tee)
	}
	cmd.Stderr = cmd.Stdout
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
// returns "" then; or, after printing the end of its log, what went wrong
// if the child exits first or 2 minutes pass.
func (c *Child) WaitReady(ctx context.Context, what string, ready func() bool) string {
	note := "not ready in 2 minutes"
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && ctx.Err() == nil; {
		if ready() {
			return ""
		}
		select {
		case <-c.Done:
			note, deadline = c.ExitNote(what), time.Time{}
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.PrintTail(what)
	return note
}

// Stop sends SIGTERM, waits for the exit (SIGKILL after 30 s) and returns
// the CPU seconds and peak RSS in MB over the whole life of the process.
// It may be called more than once.
func (c *Child) Stop() (cpu, rssMB float64) {
	_ = c.Cmd.Process.Signal(syscall.SIGTERM) // an error once it has exited
	select {
	case <-c.Done:
	case <-time.After(30 * time.Second):
		_ = c.Cmd.Process.Kill()
		<-c.Done
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

// Run runs a command with its output on stderr.
func Run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// BuildPicstats builds the picstats binary into dir and returns its path;
// the working directory must be the module root.
func BuildPicstats(ctx context.Context, dir string) (string, error) {
	if _, err := os.Stat("scripts/kafka"); err != nil {
		return "", errors.New("run from the module root: scripts/kafka not found")
	}
	bin := filepath.Join(dir, "picstats")
	if err := Run(ctx, "go", "build", "-o", bin, "."); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
}
