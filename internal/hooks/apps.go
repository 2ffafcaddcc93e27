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

	"github.com/rtcgate/rtcgate/internal/client"
)

// Methods are the REST methods an app may enable: client.RESTMethods, read
// from the client protocol's tables.
var Methods = client.RESTMethods

// retired are method names earlier versions accepted, and why they are no
// more: a state file naming one loads without it.
var retired = map[string]string{
	"sendData": "the client's sendData is POSTed as OnDataEvent",
}

// withoutRetired drops retired method names.
func withoutRetired(methods []string) []string {
	out := methods[:0:0]
	for _, m := range methods {
		if _, gone := retired[m]; !gone {
			out = append(out, m)
		}
	}
	return out
}

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

// checkMethod refuses a name that is not a REST method, saying why for a
// retired one.
func checkMethod(m string) error {
	if why, ok := retired[m]; ok {
		return fmt.Errorf("%s is not a REST method: %s", m, why)
	}
	if !client.IsRESTMethod(m) {
		return fmt.Errorf("unknown REST method %q", m)
	}
	return nil
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
		if err := checkMethod(m); err != nil {
			return fmt.Errorf("app %s: %v", a.Name, err)
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

// Where an app comes from, as `show apps` prints it.
const (
	OriginBuiltIn = "built-in" // defaultApp, unless the configuration file lists it
	OriginConfig  = "config"   // the configuration file's apps:
	OriginRuntime = "runtime"  // added through the CLI, kept in the state file
)

// Apps is the registry of apps, in two layers. The configuration file's
// apps are applied at every start and win for the names they list; apps
// added at runtime (and runtime changes to the built-in defaultApp) are
// written to a state file (atomically: a temporary file renamed over it)
// and read back at start-up. A runtime change to an app of the
// configuration file lasts until the next start, when the file wins again.
type Apps struct {
	mu     sync.RWMutex
	byKey  map[string]*App
	origin map[string]string // app name → Origin*
	// configured holds the configuration file's apps, name → key: their
	// names and keys stay theirs even while a runtime change moves or
	// removes them, so that the next start finds no runtime app in the way.
	configured map[string]string
	path       string // state file; "" keeps changes in memory only
}

type stateFile struct {
	Apps []*App `json:"apps"`
}

// StateFileError is a state file that cannot be read or used.
type StateFileError struct {
	Path string
	Err  error
}

func (e *StateFileError) Error() string { return fmt.Sprintf("state file %s: %v", e.Path, e.Err) }
func (e *StateFileError) Unwrap() error { return e.Err }

// NewApps builds the registry: the built-in defaultApp; then, when
// statePath names an existing file, the apps saved by earlier runtime
// changes; then the configured apps (the configuration file), which replace
// a saved app of the same name. A configured app whose key is a saved
// app's of another name is an error: the operator picks another key.
func NewApps(configured []App, statePath string) (*Apps, error) {
	r := &Apps{byKey: map[string]*App{}, origin: map[string]string{}, configured: map[string]string{}, path: statePath}
	for i := range configured {
		a := configured[i]
		if err := a.Validate(); err != nil {
			return nil, err
		}
		if _, dup := r.configured[a.Name]; dup {
			return nil, fmt.Errorf("app %s is listed twice", a.Name)
		}
		for name, key := range r.configured {
			if key == a.Key {
				return nil, fmt.Errorf("app key %s is taken by app %s", a.Key, name)
			}
		}
		r.configured[a.Name] = a.Key
	}
	r.setLocked(&App{Name: DefaultApp, Key: DefaultApp}, OriginBuiltIn)
	if statePath != "" {
		b, err := os.ReadFile(statePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, &StateFileError{statePath, err}
		default:
			var st stateFile
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, &StateFileError{statePath, err}
			}
			for _, a := range st.Apps {
				if a == nil {
					continue
				}
				if _, ok := r.configured[a.Name]; ok {
					continue // the file wins for the names it lists
				}
				a.Methods = withoutRetired(a.Methods)
				if err := a.Validate(); err != nil {
					return nil, &StateFileError{statePath, err}
				}
				origin := OriginRuntime
				if a.Name == DefaultApp {
					origin = OriginBuiltIn
				}
				if err := r.putLocked(a, origin); err != nil {
					return nil, &StateFileError{statePath, err}
				}
			}
		}
	}
	for i := range configured {
		a := configured[i]
		a.Methods = append([]string(nil), a.Methods...)
		if err := r.putLocked(&a, OriginConfig); err != nil {
			return nil, err
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
	return r.listLocked()
}

func (r *Apps) listLocked() []App {
	out := make([]App, 0, len(r.byKey))
	for _, a := range r.byKey {
		c := *a
		c.Methods = append([]string(nil), a.Methods...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Origin says where the app of that name comes from (OriginBuiltIn,
// OriginConfig, OriginRuntime); "" for no such app.
func (r *Apps) Origin(name string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.origin[name]
}

// listOrigins is List with each app's origin, from one snapshot.
func (r *Apps) listOrigins() ([]App, []string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	apps := r.listLocked()
	origins := make([]string, len(apps))
	for i, a := range apps {
		origins[i] = r.origin[a.Name]
	}
	return apps, origins
}

func (r *Apps) byNameLocked(name string) *App {
	for _, a := range r.byKey {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func (r *Apps) setLocked(a *App, origin string) {
	r.byKey[a.Key] = a
	r.origin[a.Name] = origin
}

// putLocked adds an app at start-up, replacing one of the same name (the
// configuration may give defaultApp a backend, and wins over a saved app of
// its name); a key of another app's is an error.
func (r *Apps) putLocked(a *App, origin string) error {
	if old, ok := r.byKey[a.Key]; ok && old.Name != a.Name {
		if r.origin[old.Name] == OriginRuntime && origin == OriginConfig {
			return fmt.Errorf("app %s: key %s is the key of app %s, added at runtime (state file %s): "+
				"give %s another key, or remove app %s first (start without %s, rtcgate ctl remove app %s)",
				a.Name, a.Key, old.Name, r.path, a.Name, old.Name, a.Name, old.Name)
		}
		return fmt.Errorf("app key %s is taken by app %s", a.Key, old.Name)
	}
	if old := r.byNameLocked(a.Name); old != nil {
		delete(r.byKey, old.Key)
	}
	r.setLocked(a, origin)
	return nil
}

// reservedLocked names the configured app that owns name or key, if any:
// a runtime app may use neither, even while that app is changed or removed
// until the next start.
func (r *Apps) reservedLocked(name, key string) (string, bool) {
	for n, k := range r.configured {
		if n == name || k == key {
			return n, true
		}
	}
	return "", false
}

// Add creates an app at runtime; it is kept in the state file.
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
	if owner, ok := r.reservedLocked(a.Name, a.Key); ok {
		return fmt.Errorf("app %s of the configuration file has this name or key %s (it comes back at the next start)", owner, a.Key)
	}
	r.setLocked(&a, OriginRuntime)
	return r.saveLocked()
}

// Update changes an app found by name; change edits a copy. defaultApp
// keeps its key (clients that name no appKey get it). A change to an app of
// the configuration file lasts until the next start.
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
	a.Name = old.Name
	if err := a.Validate(); err != nil {
		return err
	}
	if a.Key != old.Key {
		if name == DefaultApp {
			return fmt.Errorf("the key of %s cannot change: clients that name no appKey use it", DefaultApp)
		}
		if _, taken := r.byKey[a.Key]; taken {
			return fmt.Errorf("app key %s exists already", a.Key)
		}
		if owner, ok := r.reservedLocked("", a.Key); ok && owner != name {
			return fmt.Errorf("app key %s belongs to app %s of the configuration file", a.Key, owner)
		}
		delete(r.byKey, old.Key)
	}
	r.byKey[a.Key] = &a
	return r.saveLocked()
}

// Remove deletes an app by name. defaultApp cannot be removed; an app of
// the configuration file comes back at the next start.
func (r *Apps) Remove(name string) error {
	if name == DefaultApp {
		return fmt.Errorf("%s is built in and cannot be removed (clients that name no appKey use it); "+
			"update app %s changes its URL", DefaultApp, DefaultApp)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.byNameLocked(name)
	if a == nil {
		return fmt.Errorf("no app named %s", name)
	}
	delete(r.byKey, a.Key)
	delete(r.origin, a.Name)
	return r.saveLocked()
}

// SetMethods enables (on) or disables methods for the app with key; all
// means every method.
func (r *Apps) SetMethods(key string, on, all bool, methods ...string) error {
	if all {
		methods = Methods
	}
	for _, m := range methods {
		if err := checkMethod(m); err != nil {
			return err
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
// or the new one, never half of one. It holds the apps that are not the
// configuration file's. The file holds passwords: mode 0600.
func (r *Apps) saveLocked() error {
	if r.path == "" {
		return nil
	}
	st := stateFile{}
	for _, a := range r.byKey {
		// The configuration file's apps are not kept: the file gives them
		// at the next start, whatever changed them since.
		if r.origin[a.Name] != OriginConfig {
			st.Apps = append(st.Apps, a)
		}
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
