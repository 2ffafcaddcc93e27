// Package hooks connects client sessions to the customer's web backend as
// Web Call Server does: each app (name, appKey, REST URL, enabled methods)
// gets a POST for every client action and status event it enables.
package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Methods are the REST methods of Web Call Server, in its order: client
// actions first, then status events.
var Methods = []string{
	"connect", "call", "answer", "hangup", "hold", "unhold", "transfer", "sendDtmf", "sendMessage", "sendData",
	"ConnectionStatusEvent", "RegistrationStatusEvent", "CallStatusEvent", "MessageStatusEvent",
	"OnMessageEvent", "OnCallEvent", "TransferStatusEvent", "DataStatusEvent", "OnDataEvent",
}

var knownMethod = func() map[string]bool {
	m := map[string]bool{}
	for _, x := range Methods {
		m[x] = true
	}
	return m
}()

// App is one backend application.
type App struct {
	Name     string   `json:"name" yaml:"name"`
	Key      string   `json:"key" yaml:"key"`
	URL      string   `json:"url" yaml:"url"` // "" for the built-in app, which sends no hooks
	Methods  []string `json:"methods" yaml:"methods"`
	User     string   `json:"user,omitempty" yaml:"user"`
	Password string   `json:"password,omitempty" yaml:"password"` // never printed, never logged
}

// Enabled reports whether the app wants method.
func (a *App) Enabled(method string) bool {
	for _, m := range a.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// DefaultApp is the app every installation has: the built-in one, with no
// backend URL, so that clients can connect out of the box.
const DefaultApp = "defaultApp"

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks an app's fields, and refuses credentials that could not
// be sent as they were meant: a password without a user (Basic auth would
// send none of it), credentials on an app without a URL (it sends no
// hooks), credentials both in the URL's user information and in user and
// password (one would be dropped), and a user with a ':' (Basic auth splits
// user and password at the first one). Credentials and hooks-secret work
// together (restclient signs in the X-Rtcgate headers then).
func (a *App) Validate() error {
	if !namePattern.MatchString(a.Name) {
		return fmt.Errorf("app name %q: 1-64 letters, digits, '_', '.', '-'", a.Name)
	}
	if !namePattern.MatchString(a.Key) {
		return fmt.Errorf("app key %q: 1-64 letters, digits, '_', '.', '-'", a.Key)
	}
	var inURL *url.Userinfo
	if a.URL != "" {
		u, err := url.Parse(a.URL)
		if err != nil {
			// Not even parsed: nothing of it is printed, it may hold a password.
			return fmt.Errorf("app %s: url is not an http(s) URL", a.Name)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("app %s: URL %q is not an http(s) URL", a.Name, u.Redacted())
		}
		inURL = u.User
	}
	switch {
	case a.URL == "" && (a.User != "" || a.Password != ""):
		return fmt.Errorf("app %s: user and password need a url (an app without one sends no hooks)", a.Name)
	case inURL != nil && (a.User != "" || a.Password != ""):
		return fmt.Errorf("app %s: credentials both in the url and in user/password: keep one", a.Name)
	case a.Password != "" && a.User == "":
		return fmt.Errorf("app %s: a password needs a user", a.Name)
	case inURL != nil && inURL.Username() == "":
		return fmt.Errorf("app %s: the url's user information has no user", a.Name)
	case strings.Contains(a.User, ":"):
		return fmt.Errorf("app %s: user must not contain ':' (Basic auth splits user and password there)", a.Name)
	}
	for _, m := range a.Methods {
		if !knownMethod[m] {
			return fmt.Errorf("app %s: unknown REST method %q", a.Name, m)
		}
	}
	return nil
}

// RedactedURL is the app's URL for printing and logging: a password in it
// (http://user:pass@host/) is masked.
func (a *App) RedactedURL() string {
	if a.URL == "" {
		return ""
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// Apps is the registry of apps. Changes made at runtime are written to a
// state file (atomically: a temporary file renamed over it) and read back at
// start-up, so they survive a restart.
type Apps struct {
	mu    sync.RWMutex
	byKey map[string]*App
	path  string // state file; "" keeps changes in memory only
}

type stateFile struct {
	Apps []*App `json:"apps"`
}

// NewApps builds the registry: the default app, then the configured apps,
// then — when statePath names an existing file — the state saved by earlier
// runtime changes, which wins.
func NewApps(configured []App, statePath string) (*Apps, error) {
	r := &Apps{byKey: map[string]*App{}, path: statePath}
	r.byKey[DefaultApp] = &App{Name: DefaultApp, Key: DefaultApp}
	for i := range configured {
		a := configured[i]
		if err := a.Validate(); err != nil {
			return nil, err
		}
		if err := r.putLocked(&a); err != nil {
			return nil, err
		}
	}
	if statePath != "" {
		b, err := os.ReadFile(statePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			var st stateFile
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("state file %s: %v", statePath, err)
			}
			r.byKey = map[string]*App{}
			for _, a := range st.Apps {
				if err := a.Validate(); err != nil {
					return nil, fmt.Errorf("state file %s: %v", statePath, err)
				}
				r.byKey[a.Key] = a
			}
		}
	}
	return r, nil
}

// ByKey finds an app by its key; a copy, safe to keep.
func (r *Apps) ByKey(key string) (App, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.byKey[key]
	if !ok {
		return App{}, false
	}
	c := *a
	c.Methods = append([]string(nil), a.Methods...)
	return c, true
}

// List returns every app, by name.
func (r *Apps) List() []App {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]App, 0, len(r.byKey))
	for _, a := range r.byKey {
		c := *a
		c.Methods = append([]string(nil), a.Methods...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Apps) byNameLocked(name string) *App {
	for _, a := range r.byKey {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// putLocked adds a configured app, or replaces one of the same name and
// key (the configuration may give defaultApp a backend).
func (r *Apps) putLocked(a *App) error {
	if old := r.byNameLocked(a.Name); old != nil && old.Key != a.Key {
		return fmt.Errorf("app name %s is taken by key %s", a.Name, old.Key)
	}
	if old, ok := r.byKey[a.Key]; ok && old.Name != a.Name {
		return fmt.Errorf("app key %s is taken by app %s", a.Key, old.Name)
	}
	r.byKey[a.Key] = a
	return nil
}

// Add creates an app.
func (r *Apps) Add(a App) error {
	if err := a.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byNameLocked(a.Name) != nil {
		return fmt.Errorf("app %s exists already", a.Name)
	}
	if _, ok := r.byKey[a.Key]; ok {
		return fmt.Errorf("app key %s exists already", a.Key)
	}
	r.byKey[a.Key] = &a
	return r.saveLocked()
}

// Update changes an app found by name; change edits a copy.
func (r *Apps) Update(name string, change func(*App)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byNameLocked(name)
	if old == nil {
		return fmt.Errorf("no app named %s", name)
	}
	a := *old
	a.Methods = append([]string(nil), old.Methods...)
	change(&a)
	if err := a.Validate(); err != nil {
		return err
	}
	if a.Key != old.Key {
		if _, taken := r.byKey[a.Key]; taken {
			return fmt.Errorf("app key %s exists already", a.Key)
		}
		delete(r.byKey, old.Key)
	}
	r.byKey[a.Key] = &a
	return r.saveLocked()
}

// Remove deletes an app by name.
func (r *Apps) Remove(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.byNameLocked(name)
	if a == nil {
		return fmt.Errorf("no app named %s", name)
	}
	delete(r.byKey, a.Key)
	return r.saveLocked()
}

// SetMethods enables (on) or disables methods for the app with key; all
// means every method.
func (r *Apps) SetMethods(key string, on, all bool, methods ...string) error {
	if all {
		methods = Methods
	}
	for _, m := range methods {
		if !knownMethod[m] {
			return fmt.Errorf("unknown REST method %q", m)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byKey[key]
	if !ok {
		return fmt.Errorf("no app with key %s", key)
	}
	set := map[string]bool{}
	for _, m := range a.Methods {
		set[m] = true
	}
	for _, m := range methods {
		set[m] = on
	}
	c := *a
	c.Methods = nil
	for _, m := range Methods { // keep Web Call Server's order
		if set[m] {
			c.Methods = append(c.Methods, m)
		}
	}
	r.byKey[key] = &c
	return r.saveLocked()
}

// saveLocked writes the state file atomically: a crash leaves the old file
// or the new one, never half of one. The file holds passwords: mode 0600.
func (r *Apps) saveLocked() error {
	if r.path == "" {
		return nil
	}
	st := stateFile{}
	for _, a := range r.byKey {
		st.Apps = append(st.Apps, a)
	}
	sort.Slice(st.Apps, func(i, j int) bool { return st.Apps[i].Name < st.Apps[j].Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), ".rtcgate-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), r.path)
}
