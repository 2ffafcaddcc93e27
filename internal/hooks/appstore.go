package hooks

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// AppStore keeps the apps that are not the configuration file's: those
// added at runtime, and runtime changes to defaultApp. The registry (Apps)
// checks every change before it reaches the store, and applies it only once
// the store has kept it. A single node keeps them in a state file
// (FileAppStore), a test in memory (MemoryAppStore), a cluster in Redis
// (the cluster package's), where every node sees every change.
type AppStore interface {
	// Load returns every app kept.
	Load() ([]App, error)
	// Put keeps a, replacing the app of its name. With create, an app of
	// that name already kept is an error (two nodes adding one name).
	Put(a App, create bool) error
	// Delete forgets the app of that name.
	Delete(name string) error
}

// MemoryAppStore keeps apps in memory: they are gone at exit.
type MemoryAppStore struct {
	mu   sync.Mutex
	apps map[string]App
}

// NewMemoryAppStore is an empty MemoryAppStore.
func NewMemoryAppStore() *MemoryAppStore { return &MemoryAppStore{apps: map[string]App{}} }

func (s *MemoryAppStore) Load() ([]App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedApps(s.apps), nil
}

func (s *MemoryAppStore) Put(a App, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[a.Name] = copyApp(a)
	return nil
}

func (s *MemoryAppStore) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.apps, name)
	return nil
}

// FileAppStore keeps apps in a JSON state file, written atomically (a
// temporary file renamed over it: a crash leaves the old file or the new
// one, never half of one) with mode 0600: it holds passwords.
type FileAppStore struct {
	path string
	mu   sync.Mutex
	apps map[string]App // what the file holds, once loaded
}

// NewFileAppStore is the state file at path; a missing file holds no apps.
func NewFileAppStore(path string) *FileAppStore {
	return &FileAppStore{path: path, apps: map[string]App{}}
}

// Path is the state file's.
func (s *FileAppStore) Path() string { return s.path }

type stateFile struct {
	Apps []*App `json:"apps"`
}

func (s *FileAppStore) Load() ([]App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &StateFileError{s.path, err}
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, &StateFileError{s.path, err}
	}
	s.apps = map[string]App{}
	for _, a := range st.Apps {
		if a != nil {
			s.apps[a.Name] = copyApp(*a)
		}
	}
	return sortedApps(s.apps), nil
}

func (s *FileAppStore) Put(a App, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := copyApps(s.apps)
	next[a.Name] = copyApp(a)
	return s.saveLocked(next)
}

func (s *FileAppStore) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := copyApps(s.apps)
	delete(next, name)
	return s.saveLocked(next)
}

// saveLocked writes apps and, once written, makes them the store's.
func (s *FileAppStore) saveLocked(apps map[string]App) error {
	st := stateFile{Apps: []*App{}}
	for _, a := range sortedApps(apps) {
		st.Apps = append(st.Apps, &a)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".rtcgate-state-*")
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
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	s.apps = apps
	return nil
}

func copyApp(a App) App {
	a.Methods = append([]string(nil), a.Methods...)
	return a
}

func copyApps(m map[string]App) map[string]App {
	out := make(map[string]App, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedApps(m map[string]App) []App {
	out := make([]App, 0, len(m))
	for _, a := range m {
		out = append(out, copyApp(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
