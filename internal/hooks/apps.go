// Package hooks connects client sessions to the customer's web backend as
// Web Call Server does: each app (name, appKey, REST URL, enabled methods)
// gets a POST for every client action and status event it enables.
package hooks

import (
	"errors"
	"fmt"
	"net/url"
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
// apps are applied at every start and win for their names; apps added at
// runtime (and runtime changes to the built-in defaultApp) are kept in an
// AppStore — a state file on a single node, Redis in a cluster — and read
// back at start-up. A runtime change to an app of the configuration file
// stays on this node until its next start, when the file wins again.
type Apps struct {
	// wmu orders the changes: each is checked, kept by the store, then
	// applied, with no other change or reload in between. Readers (a
	// client connecting) only ever wait for mu, never for the store.
	wmu    sync.Mutex
	mu     sync.RWMutex
	byKey  map[string]*App
	origin map[string]string // app name → Origin*
	// configured holds the configuration file's apps, name → key: their
	// names and keys stay theirs even while a runtime change moves or
	// removes them, so that the next start finds no runtime app in the way.
	configured map[string]string
	store      AppStore
	where      string // the store, for messages: "state file PATH", "cluster-redis"
}

// StateFileError is a state file that cannot be read or used.
type StateFileError struct {
	Path string
	Err  error
}

func (e *StateFileError) Error() string { return fmt.Sprintf("state file %s: %v", e.Path, e.Err) }
func (e *StateFileError) Unwrap() error { return e.Err }

// StoreError is an app kept in the store that cannot be used, or a store
// that cannot be read at start.
type StoreError struct {
	Where string
	Err   error
}

func (e *StoreError) Error() string { return fmt.Sprintf("%s: %v", e.Where, e.Err) }
func (e *StoreError) Unwrap() error { return e.Err }

// NewApps builds the registry over a state file (statePath "": in memory):
// NewAppsStore with a FileAppStore or a MemoryAppStore.
func NewApps(configured []App, statePath string) (*Apps, error) {
	if statePath == "" {
		return NewAppsStore(configured, NewMemoryAppStore(), "memory")
	}
	return NewAppsStore(configured, NewFileAppStore(statePath), "state file "+statePath)
}

// NewAppsStore builds the registry: the built-in defaultApp; then the apps
// the store kept from earlier runtime changes; then the configured apps
// (the configuration file), which replace a kept app of the same name. A
// configured app whose key is a kept app's of another name is an error:
// the operator picks another key. where names the store in messages.
func NewAppsStore(configured []App, store AppStore, where string) (*Apps, error) {
	r := &Apps{byKey: map[string]*App{}, origin: map[string]string{}, configured: map[string]string{}, store: store, where: where}
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
	kept, err := store.Load()
	if err != nil {
		var serr *StateFileError
		if errors.As(err, &serr) {
			return nil, err
		}
		return nil, &StoreError{where, err}
	}
	for _, a := range kept {
		if _, ok := r.configured[a.Name]; ok {
			continue // the file wins for the names it lists
		}
		if err := r.putLocked(r.keptApp(a)); err != nil {
			if fs, ok := store.(*FileAppStore); ok {
				return nil, &StateFileError{fs.Path(), err}
			}
			return nil, &StoreError{where, err}
		}
	}
	for i := range configured {
		a := configured[i]
		a.Methods = append([]string(nil), a.Methods...)
		if err := r.putConfiguredLocked(&a); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// keptApp is an app read from the store, checked.
func (r *Apps) keptApp(a App) (*App, string, error) {
	a.Methods = withoutRetired(a.Methods)
	origin := OriginRuntime
	if a.Name == DefaultApp {
		origin = OriginBuiltIn
		if a.Key != DefaultApp {
			return nil, "", fmt.Errorf("%s kept with key %s", DefaultApp, a.Key)
		}
	}
	if err := a.Validate(); err != nil {
		return nil, "", err
	}
	return &a, origin, nil
}

// Reload replaces the runtime layer (runtime apps, changes to defaultApp)
// with what the store holds now: another node changed it. The configuration
// file's apps stay; a kept app that clashes with one of them (its name or
// key is theirs) or cannot work is left out, and the error says which.
func (r *Apps) Reload() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	kept, err := r.store.Load()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, a := range r.byKey {
		if o := r.origin[a.Name]; o == OriginRuntime || o == OriginBuiltIn {
			delete(r.byKey, key)
			delete(r.origin, a.Name)
		}
	}
	if r.origin[DefaultApp] == "" {
		r.setLocked(&App{Name: DefaultApp, Key: DefaultApp}, OriginBuiltIn)
	}
	var errs []error
	for _, k := range kept {
		if _, ok := r.configured[k.Name]; ok {
			continue // this node's configuration file wins for its names
		}
		a, origin, err := r.keptApp(k)
		if err == nil {
			if owner, ok := r.reservedLocked(a.Name, a.Key); ok {
				err = fmt.Errorf("app %s: its key %s is app %s's of this node's configuration file", a.Name, a.Key, owner)
			} else if old, ok := r.byKey[a.Key]; ok && old.Name != a.Name {
				err = fmt.Errorf("app %s: key %s is app %s's", a.Name, a.Key, old.Name)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if old := r.byNameLocked(a.Name); old != nil {
			delete(r.byKey, old.Key)
		}
		r.setLocked(a, origin)
	}
	return errors.Join(errs...)
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

// putLocked adds a kept app at start-up, replacing one of its name (a kept
// defaultApp replaces the built-in one).
func (r *Apps) putLocked(a *App, origin string, err error) error {
	if err != nil {
		return err
	}
	if old, ok := r.byKey[a.Key]; ok && old.Name != a.Name {
		return fmt.Errorf("app key %s is taken by app %s", a.Key, old.Name)
	}
	if old := r.byNameLocked(a.Name); old != nil {
		delete(r.byKey, old.Key)
	}
	r.setLocked(a, origin)
	return nil
}

// putConfiguredLocked adds an app of the configuration file at start-up,
// replacing one of the same name (the configuration may give defaultApp a
// backend, and wins over a kept app of its name); a key of another app's is
// an error.
func (r *Apps) putConfiguredLocked(a *App) error {
	if old, ok := r.byKey[a.Key]; ok && old.Name != a.Name {
		if r.origin[old.Name] == OriginRuntime {
			return fmt.Errorf("app %s: key %s is the key of app %s, added at runtime (%s): "+
				"give %s another key, or remove app %s first (start without %s, rtcgate ctl remove app %s)",
				a.Name, a.Key, old.Name, r.where, a.Name, old.Name, a.Name, old.Name)
		}
		return fmt.Errorf("app key %s is taken by app %s", a.Key, old.Name)
	}
	if old := r.byNameLocked(a.Name); old != nil {
		delete(r.byKey, old.Key)
	}
	r.setLocked(a, OriginConfig)
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

// kept says whether the app of that name belongs in the store: not the
// configuration file's (the file gives those at the next start, whatever
// changed them since).
func (r *Apps) kept(name string) bool {
	_, ok := r.configured[name]
	return !ok
}

// Add creates an app at runtime; the store keeps it.
func (r *Apps) Add(a App) error {
	if err := a.Validate(); err != nil {
		return err
	}
	a.Methods = append([]string(nil), a.Methods...)
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.RLock()
	err := func() error {
		if r.byNameLocked(a.Name) != nil {
			return fmt.Errorf("app %s exists already", a.Name)
		}
		if _, ok := r.byKey[a.Key]; ok {
			return fmt.Errorf("app key %s exists already", a.Key)
		}
		if owner, ok := r.reservedLocked(a.Name, a.Key); ok {
			return fmt.Errorf("app %s of the configuration file has this name or key %s (it comes back at the next start)", owner, a.Key)
		}
		return nil
	}()
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := r.store.Put(a, true); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(&a, OriginRuntime)
	return nil
}

// Update changes an app found by name; change edits a copy. defaultApp
// keeps its key (clients that name no appKey get it). A change to an app of
// the configuration file lasts until the next start.
func (r *Apps) Update(name string, change func(*App)) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.RLock()
	a, oldKey, err := func() (App, string, error) {
		old := r.byNameLocked(name)
		if old == nil {
			return App{}, "", fmt.Errorf("no app named %s", name)
		}
		a := *old
		a.Methods = append([]string(nil), old.Methods...)
		change(&a)
		a.Name = old.Name
		if err := a.Validate(); err != nil {
			return a, "", err
		}
		if a.Key != old.Key {
			if name == DefaultApp {
				return a, "", fmt.Errorf("the key of %s cannot change: clients that name no appKey use it", DefaultApp)
			}
			if _, taken := r.byKey[a.Key]; taken {
				return a, "", fmt.Errorf("app key %s exists already", a.Key)
			}
			if owner, ok := r.reservedLocked("", a.Key); ok && owner != name {
				return a, "", fmt.Errorf("app key %s belongs to app %s of the configuration file", a.Key, owner)
			}
		}
		return a, old.Key, nil
	}()
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	return r.commit(a, oldKey)
}

// commit keeps a changed app (found under oldKey) and applies it.
func (r *Apps) commit(a App, oldKey string) error {
	if r.kept(a.Name) {
		if err := r.store.Put(a, false); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byKey, oldKey)
	r.byKey[a.Key] = &a
	return nil
}

// Remove deletes an app by name. defaultApp cannot be removed; an app of
// the configuration file comes back at the next start.
func (r *Apps) Remove(name string) error {
	if name == DefaultApp {
		return fmt.Errorf("%s is built in and cannot be removed (clients that name no appKey use it); "+
			"update app %s changes its URL", DefaultApp, DefaultApp)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.RLock()
	a := r.byNameLocked(name)
	r.mu.RUnlock()
	if a == nil {
		return fmt.Errorf("no app named %s", name)
	}
	if r.kept(name) {
		if err := r.store.Delete(name); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byKey, a.Key)
	delete(r.origin, a.Name)
	return nil
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
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.RLock()
	a, ok := r.byKey[key]
	var c App
	if ok {
		set := map[string]bool{}
		for _, m := range a.Methods {
			set[m] = true
		}
		for _, m := range methods {
			set[m] = on
		}
		c = *a
		c.Methods = nil
		for _, m := range Methods { // keep Web Call Server's order
			if set[m] {
				c.Methods = append(c.Methods, m)
			}
		}
	}
	r.mu.RUnlock()
	if !ok {
		return fmt.Errorf("no app with key %s", key)
	}
	return r.commit(c, key)
}
