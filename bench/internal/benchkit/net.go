package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so that they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Get returns the body of a GET of url; an answer other than 200 is an
// error that quotes the start of the body.
func Get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s %s", url, resp.Status, b[:min(len(b), 200)])
	}
	return b, err
}

// Poll calls f every interval until it returns nil, ctx ends or timeout
// passes; then it returns f's last error.
func Poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
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
