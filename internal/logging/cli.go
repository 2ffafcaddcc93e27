package logging

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// RegisterCLI adds list loglevel(s) and set loglevel, in rtpengine's formats.
func (l *Logs) RegisterCLI(r *cli.Registry) {
	r.Handle("list loglevels", "", "print available log levels", func(_ context.Context, _ []string, w io.Writer) {
		for _, s := range l.Subsystems() {
			fmt.Fprintf(w, "%s - %s\n", s.Name, s.Description)
		}
	})
	r.Handle("list loglevel", "[<system>]", "print current log levels", func(_ context.Context, args []string, w io.Writer) {
		if len(args) > 0 {
			lv, ok := l.Level(args[0])
			if !ok {
				fmt.Fprintf(w, "Subsystem '%s' not found\n", args[0])
				return
			}
			fmt.Fprintf(w, "%d\n", lv)
			return
		}
		for _, s := range l.Subsystems() {
			lv, _ := l.Level(s.Name)
			fmt.Fprintf(w, "%s = %d\n", s.Name, lv)
		}
	})
	r.Handle("set loglevel", "[<system>] <1-7>", "set all log levels, or one subsystem's", func(_ context.Context, args []string, w io.Writer) {
		var name, value string
		switch len(args) {
		case 1:
			value = args[0]
		case 2:
			name, value = args[0], args[1]
		default:
			io.WriteString(w, "More parameters required.\n")
			return
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < LevelAlert || n > LevelDebug {
			fmt.Fprintf(w, "Fail setting loglevel to %s; allowed values are 1 (alert) to 7 (debug)\n", value)
			return
		}
		if !l.SetLevel(name, n) {
			fmt.Fprintf(w, "Subsystem '%s' not found\n", name)
			return
		}
		fmt.Fprintf(w, "Success setting loglevel to %d\n", n)
	})
}
