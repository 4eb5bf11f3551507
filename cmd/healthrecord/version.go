package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version and commit may be set at build time, with
// -ldflags "-X main.version=1.2.3 -X main.commit=abc123"; otherwise they
// come from the build information (module version, VCS stamp).
var version, commit = "", ""

// buildInfo is the binary's version, commit and Go version, read from
// the build information the Go toolchain embeds.
type buildInfo struct {
	Version, Commit, GoVersion string
	Modified                   bool
}

func readBuildInfo() (b buildInfo) {
	b = buildInfo{Version: version, Commit: commit, GoVersion: "unknown"}
	defer func() {
		if b.Commit == "" {
			b.Commit = "unknown"
		}
	}()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "(devel)"
		}
		return b
	}
	b.GoVersion = info.GoVersion
	if b.Version == "" {
		b.Version = info.Main.Version
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b buildInfo) String() string {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("healthrecord %s\ncommit %s\n%s", b.Version, commit, b.GoVersion)
}

func cmdVersion(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", getenv, stderr, "usage: healthrecord version")
	if err := fs.parseNoArgs(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, readBuildInfo())
	return nil
}
