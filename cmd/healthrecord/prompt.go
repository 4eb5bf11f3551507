package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// ttyPrompter asks on a terminal: visible answers are read a line at a
// time, secrets without echo.
type ttyPrompter struct {
	f   *os.File
	in  *bufio.Reader
	out io.Writer
}

func newTTYPrompter(f *os.File, out io.Writer) *ttyPrompter {
	return &ttyPrompter{f: f, in: bufio.NewReader(f), out: out}
}

func (p *ttyPrompter) Line(prompt string) (string, error) {
	fmt.Fprint(p.out, prompt)
	s, err := p.in.ReadString('\n')
	if err != nil && s == "" {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func (p *ttyPrompter) Secret(prompt string) (string, error) {
	fmt.Fprint(p.out, prompt)
	b, err := term.ReadPassword(int(p.f.Fd()))
	fmt.Fprintln(p.out)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(b), nil
}
