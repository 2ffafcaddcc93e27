// Package cli is rtcgate's command registry: the commands that rtpengine-ctl
// sends, answered with rtpengine's text formats. Every subsystem adds its own
// commands; the transports (TCP, HTTP, WebSocket, `rtcgate ctl`) all call
// Registry.Run, so a command behaves the same whichever way it arrives.
package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// Handler runs one command. args are the words after the command's path;
// the handler writes its whole answer to w.
type Handler func(ctx context.Context, args []string, w io.Writer)

// node is one word of a command path. A node with children and no handler is
// a section ("list", "set"); a leaf has a handler.
type node struct {
	name     string
	params   string
	help     string
	run      Handler
	children map[string]*node
	order    []string // registration order, for help listings
}

func (n *node) child(name string) *node {
	if n.children == nil {
		n.children = map[string]*node{}
	}
	c, ok := n.children[name]
	if !ok {
		c = &node{name: name}
		n.children[name] = c
		n.order = append(n.order, name)
	}
	return c
}

// Registry holds the command tree. It is safe for concurrent use.
type Registry struct {
	mu   sync.RWMutex
	root *node
	log  *slog.Logger
}

// New returns an empty registry with the built-in help commands.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{root: &node{}, log: log}
	r.Handle("usage", "", "every command with its parameters", r.usage)
	return r
}

// Handle registers a command under a space-separated path such as
// "list totals". params documents the arguments ("<int>"), help says what
// the command does. Registering the same path twice replaces the handler.
func (r *Registry) Handle(path, params, help string, h Handler) {
	words := strings.Fields(path)
	if len(words) == 0 || h == nil {
		panic("cli: Handle needs a path and a handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.root
	for _, w := range words {
		n = n.child(w)
	}
	n.run, n.params, n.help = h, params, help
}

// Alias makes the top-level word alias run whatever target runs, as
// rtpengine's "get" does for "list". Later registrations under target are
// seen through the alias too.
func (r *Registry) Alias(alias, target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.root.child(target)
	if _, ok := r.root.children[alias]; !ok {
		r.root.order = append(r.root.order, alias)
	}
	r.root.children[alias] = t
}

// Run executes one command line and returns its output, always ending in a
// newline. It never panics: a failing handler answers a line saying so.
func (r *Registry) Run(ctx context.Context, line string) string {
	var buf bytes.Buffer
	r.Exec(ctx, line, &buf)
	out := buf.String()
	if out == "" || !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out
}

// Exec executes one command line, writing its output to w.
func (r *Registry) Exec(ctx context.Context, line string, w io.Writer) {
	words := strings.Fields(line)
	n, args, ok := r.resolve(words)
	switch {
	case ok && n.run != nil:
		r.call(ctx, n, args, line, w)
	case ok && len(args) == 0:
		io.WriteString(w, "More parameters required.\n")
	case ok && args[0] == "help":
		r.writeHelp(n, w)
	default:
		fmt.Fprintf(w, "Unknown or incomplete command::%s\n", strings.Join(args, " "))
	}
}

// resolve walks the tree as far as the words go. ok is false when a word
// under a section matched nothing; args then starts at that word.
func (r *Registry) resolve(words []string) (n *node, args []string, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n = r.root
	for i, w := range words {
		c, found := n.children[w]
		if !found {
			// A leaf takes the rest as its arguments; a section only knows
			// its children and "help".
			return n, words[i:], n.run != nil || w == "help"
		}
		n = c
	}
	return n, nil, true
}

func (r *Registry) call(ctx context.Context, n *node, args []string, line string, w io.Writer) {
	defer func() {
		if p := recover(); p != nil {
			// Only the command's path: its arguments may hold secrets
			// (add app -p …).
			r.log.Error("cli command failed", "command", commandPath(line), "panic", p)
			fmt.Fprintf(w, "Internal error running %q\n", commandPath(line))
		}
	}()
	n.run(ctx, args, w)
}

func (r *Registry) writeHelp(n *node, w io.Writer) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	io.WriteString(w, "Available sub-commands at this level:\n")
	for _, name := range n.order {
		fmt.Fprintf(w, "\t%s\n", name)
	}
}

// usage lists every command path with its parameters and help text, one per
// line, sorted — the long form of "help".
func (r *Registry) usage(_ context.Context, _ []string, w io.Writer) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	type line struct{ cmd, help string }
	var lines []line
	var walk func(n *node, prefix string, seen map[*node]bool)
	walk = func(n *node, prefix string, seen map[*node]bool) {
		if seen[n] { // an alias points at a node already listed
			return
		}
		seen[n] = true
		if n.run != nil && prefix != "" {
			cmd := prefix
			if n.params != "" {
				cmd += " " + n.params
			}
			lines = append(lines, line{cmd, n.help})
		}
		for _, name := range n.order {
			walk(n.children[name], strings.TrimSpace(prefix+" "+name), seen)
		}
	}
	walk(r.root, "", map[*node]bool{})
	sort.Slice(lines, func(i, j int) bool { return lines[i].cmd < lines[j].cmd })
	for _, l := range lines {
		fmt.Fprintf(w, "%-40s: %s\n", l.cmd, l.help)
	}
}

// commandPath is the first two words of a command line: enough to say which
// command, never its arguments.
func commandPath(line string) string {
	words := strings.Fields(line)
	return strings.Join(words[:min(2, len(words))], " ")
}
