package benchkit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcSample is what /proc says of a running process at one moment.
type ProcSample struct {
	OK           bool
	CPU          time.Duration // user + system
	RSSKB, HWMKB int64         // resident set now and its peak
	Threads      int64
	FDs          int
}

// ClockTick is the kernel's clock ticks per second (USER_HZ), in which
// /proc/PID/stat counts CPU time: AT_CLKTCK from this process's auxiliary
// vector, as getconf CLK_TCK prints it; 100 if that cannot be read.
var ClockTick = func() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	for i := 0; err == nil && strconv.IntSize == 64 && i+16 <= len(b); i += 16 {
		if binary.NativeEndian.Uint64(b[i:]) == 17 { // AT_CLKTCK
			if v := int64(binary.NativeEndian.Uint64(b[i+8:])); v > 0 {
				return v
			}
		}
	}
	return 100
}()

// ReadProc samples process pid from /proc/PID/stat, status and fd.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return s, errors.New("short /proc/pid/stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.CPU = time.Duration((utime + stime) * int64(time.Second) / ClockTick)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(string(st), "\n") {
		k, v, _ := strings.Cut(line, ":")
		num, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSSKB = num
		case "VmHWM":
			s.HWMKB = num
		case "Threads":
			s.Threads = num
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	s.FDs, s.OK = len(ents), true
	return s, nil
}

// SelfCPU is this process's user + system time so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LoadAvg is the machine's load average over 1, 5 and 15 minutes, "?"
// where /proc/loadavg cannot be read.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// Machine describes the machine, its load and the Go toolchain in one line.
func Machine() string {
	mem, model, load := "?", "?", LoadAvg()
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if _, v, ok := strings.Cut(string(b), "model name"); ok {
			_, v, _ = strings.Cut(v, ":")
			model, _, _ = strings.Cut(v, "\n")
			model = strings.TrimSpace(model)
		}
	}
	gv := runtime.Version()
	if b, err := exec.Command("go", "version").Output(); err == nil {
		gv = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d cores (%s), GOMAXPROCS %d, MemTotal %s, load average %s; %s",
		runtime.NumCPU(), model, runtime.GOMAXPROCS(0), mem, load, gv)
}
