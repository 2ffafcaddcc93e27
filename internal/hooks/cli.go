package hooks

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// RegisterCLI adds Web Call Server's app commands.
func (r *Apps) RegisterCLI(reg *cli.Registry) {
	reg.Handle("show apps", "", "list the apps and where each comes from (config, runtime, built-in)", func(_ context.Context, _ []string, w io.Writer) {
		fmt.Fprintf(w, "%-20s %-20s %-40s %-7s %s\n", "Name", "Key", "URL", "Methods", "Source")
		apps, origins := r.listOrigins()
		for i, a := range apps {
			url := a.RedactedURL() // never a password
			if url == "" {
				url = "(no REST hooks)"
			}
			fmt.Fprintf(w, "%-20s %-20s %-40s %-7d %s\n", a.Name, a.Key, url, len(a.Methods), origins[i])
		}
	})
	reg.Handle("show rest-methods", "", "list the REST methods an app may enable", func(_ context.Context, _ []string, w io.Writer) {
		for _, m := range Methods {
			fmt.Fprintln(w, m)
		}
	})
	reg.Handle("show app-rest-methods", "KEY", "list the REST methods an app enables", func(_ context.Context, args []string, w io.Writer) {
		if len(args) != 1 {
			io.WriteString(w, "Usage: show app-rest-methods KEY\n")
			return
		}
		a, ok := r.ByKey(args[0])
		if !ok {
			fmt.Fprintf(w, "No app with key %s\n", args[0])
			return
		}
		for _, m := range a.Methods {
			fmt.Fprintln(w, m)
		}
	})
	reg.Handle("add app", "[-u user] [-p password] NAME KEY URL", "add an app", func(_ context.Context, args []string, w io.Writer) {
		a, rest, err := appFlags(args)
		if err == nil && len(rest) != 3 {
			err = fmt.Errorf("usage: add app [-u user] [-p password] NAME KEY URL")
		}
		if err == nil {
			a.Name, a.Key, a.URL = rest[0], rest[1], rest[2]
			err = r.Add(a)
		}
		report(w, err, "App %s added", a.Name)
	})
	reg.Handle("update app", "[-u user] [-p password] NAME KEY URL", "change an app's key, URL or credentials", func(_ context.Context, args []string, w io.Writer) {
		flags, rest, err := appFlags(args)
		if err == nil && len(rest) != 3 {
			err = fmt.Errorf("usage: update app [-u user] [-p password] NAME KEY URL")
		}
		if err == nil {
			err = r.Update(rest[0], func(a *App) {
				a.Key, a.URL = rest[1], rest[2]
				if flags.User != "" {
					a.User = flags.User
				}
				if flags.Password != "" {
					a.Password = flags.Password
				}
			})
		}
		report(w, err, "App %s updated%s", first(rest), r.untilRestart(first(rest)))
	})
	reg.Handle("remove app", "NAME", "remove an app (not defaultApp)", func(_ context.Context, args []string, w io.Writer) {
		var err error
		note := ""
		if len(args) != 1 {
			err = fmt.Errorf("usage: remove app NAME")
		} else {
			note = r.untilRestart(args[0])
			err = r.Remove(args[0])
		}
		report(w, err, "App %s removed%s", first(args), note)
	})
	for _, c := range []struct {
		cmd  string
		on   bool
		verb string
	}{{"add app-rest-method", true, "enabled"}, {"remove app-rest-method", false, "disabled"}} {
		reg.Handle(c.cmd, "[-a] KEY [METHOD]", "enable or disable REST methods of an app (-a: all)", func(_ context.Context, args []string, w io.Writer) {
			all := len(args) > 0 && args[0] == "-a"
			if all {
				args = args[1:]
			}
			var err error
			switch {
			case all && len(args) == 1:
				err = r.SetMethods(args[0], c.on, true)
			case !all && len(args) == 2:
				err = r.SetMethods(args[0], c.on, false, args[1])
			default:
				err = fmt.Errorf("usage: %s [-a] KEY [METHOD]", c.cmd)
			}
			note := ""
			if a, ok := r.ByKey(first(args)); ok {
				note = r.untilRestart(a.Name)
			}
			report(w, err, "REST methods %s for %s%s", c.verb, first(args), note)
		})
	}
}

// untilRestart is the note a runtime change of an app of the configuration
// file gets: the file wins again at the next start.
func (r *Apps) untilRestart(name string) string {
	if r.Origin(name) != OriginConfig {
		return ""
	}
	return " until the next start: app " + name + " is in the configuration file, which applies again then"
}

// appFlags reads -u and -p; the rest are the positional arguments.
func appFlags(args []string) (App, []string, error) {
	var a App
	var rest []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-u", "-p":
			if i+1 >= len(args) {
				return a, nil, fmt.Errorf("%s needs a value", args[i])
			}
			if args[i] == "-u" {
				a.User = args[i+1]
			} else {
				a.Password = args[i+1]
			}
			i++
		default:
			if strings.HasPrefix(args[i], "-") {
				return a, nil, fmt.Errorf("unknown option %s", args[i])
			}
			rest = append(rest, args[i])
		}
	}
	return a, rest, nil
}

func report(w io.Writer, err error, format string, args ...any) {
	if err != nil {
		fmt.Fprintf(w, "Error: %v\n", err)
		return
	}
	fmt.Fprintf(w, format+"\n", args...)
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
