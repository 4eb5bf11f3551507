package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildServer builds ./cmd/healthrecord once, as an operator would
// (pure Go), into dir.
func buildServer(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run hrbench inside the healthrecord module, or pass --server-bin")
	}
	bin := filepath.Join(dir, "healthrecord")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/healthrecord")
	cmd.Dir = filepath.Dir(mod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/healthrecord: %w\n%s", err, b)
	}
	return bin, nil
}

// serverProc is a server process under test: healthrecord or the ceiling.
type serverProc struct {
	cmd     *exec.Cmd
	url     string
	db      string
	logPath string
	startup time.Duration // exec to the first 200 from its readiness URL
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// freeAddr finds a free loopback port by listening on :0 and closing.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// startServer runs `healthrecord serve` on db with long-lived tokens (the
// seeded sign-ins must outlive the run) and doctors approved at
// registration, and waits until it is ready. keyFile, when not empty, is
// HEALTHRECORD_KEY_FILE (PostgreSQL needs one, shared by every instance).
func startServer(ctx context.Context, bin, db, keyFile, logPath string) (*serverProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--db", db, "--access-ttl", "1h", "--refresh-ttl", "2h")
	// Every load client is 127.0.0.1 and a seeded patient writes more
	// than a clinic's would: rates and the quota are off, so the bench
	// measures the service, not its limits.
	cmd.Env = append(os.Environ(), "HEALTHRECORD_AUTO_APPROVE_DOCTORS=true",
		"HEALTHRECORD_RATE_REGISTER=0", "HEALTHRECORD_RATE_USER=0", "HEALTHRECORD_RATE_ANON=0", "HEALTHRECORD_QUOTA_BYTES=0")
	if keyFile != "" {
		cmd.Env = append(cmd.Env, "HEALTHRECORD_KEY_FILE="+keyFile)
	}
	return launch(ctx, cmd, "http://"+addr, db, logPath)
}

// launch starts cmd with its output in logPath and waits for GET
// url/readyz to answer 200.
func launch(ctx context.Context, cmd *exec.Cmd, url, db, logPath string) (*serverProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &serverProc{cmd: cmd, url: url, db: db, logPath: logPath, exited: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(5 * time.Minute) // a large database may take a while to open
	for {
		resp, err := c.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.startup = time.Since(start)
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", filepath.Base(cmd.Path), p.waitErr, logPath, tail(logPath, 20))
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("%s not ready after 5 minutes; log %s", filepath.Base(cmd.Path), logPath)
		}
	}
}

// stop ends the process gracefully (SIGTERM, then SIGKILL after 30 s).
// A clean exit after SIGTERM is success.
func (p *serverProc) stop() error {
	var err error
	p.once.Do(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
				err = fmt.Errorf("%s did not stop within 30s of SIGTERM", filepath.Base(p.cmd.Path))
				return
			}
		}
		if p.waitErr != nil {
			err = fmt.Errorf("%s: %w; log %s:\n%s", filepath.Base(p.cmd.Path), p.waitErr, p.logPath, tail(p.logPath, 10))
		}
	})
	return err
}

// peakRSS is the process's high-water resident set (VmHWM), 0 if gone.
func (p *serverProc) peakRSS() int64 { return procStatus(p.cmd.Process.Pid, "VmHWM") }

// procStatus reads a kB field of /proc/PID/status, in bytes (0 if unknown).
func procStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return n * 1024
	}
	return 0
}

// sampleRSS samples the VmRSS of each of pids every 100 ms until the
// returned function is called, which returns the largest sample of any
// one process.
func sampleRSS(pids ...int) func() int64 {
	if len(pids) == 0 {
		return func() int64 { return 0 }
	}
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var m int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			for _, pid := range pids {
				m = max(m, procStatus(pid, "VmRSS"))
			}
			select {
			case <-done:
				peak <- m
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}

// tail is the last n lines of a log file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fileSize is the size of a SQLite database with its -wal file.
func fileSize(db string) int64 {
	var n int64
	for _, p := range []string{db, db + "-wal"} {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}
