package monitor

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store keeps the checkpoints of a Monitor's unfinished runs, so that a
// new process resumes them. A Monitor saves a run's checkpoint after every
// step, before it carries out the step's commands, and deletes it once the
// run's outcome has been handed over, unless the flow run's fate is
// unknown (Prefect unreachable past the outage budget, an internal fault,
// a checkpoint of another version): then it keeps the checkpoint from
// before the end, as the CLI keeps its checkpoint file, and the next
// Monitor on the store (or a Launch of the same key) resumes it.
// Embedders with a database implement it over a table of (key, checkpoint).
//
// A Monitor calls the methods from several goroutines, but never two at
// once for the same key. It never modifies a checkpoint slice after Save,
// so an implementation may keep it without copying.
type Store interface {
	// Save records checkpoint as the latest state of the run key.
	Save(key string, checkpoint []byte) error
	// Delete forgets the run key; deleting an unknown key is not an error.
	Delete(key string) error
	// Load returns every saved run, key → checkpoint.
	Load() (map[string][]byte, error)
}

// MemoryStore is a Store in memory: it outlives a Monitor (a new Monitor
// on the same store resumes its runs) but not the process.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string][]byte{}} }

// Save implements Store.
func (s *MemoryStore) Save(key string, cp []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = cp
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// Load implements Store.
func (s *MemoryStore) Load() (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

// FileStore is a Store in a directory: one file per run, replaced
// atomically (written aside, synced, renamed) on every save. A key may be
// of any length: a long one is hashed into the file's name and kept inside
// the file.
type FileStore struct{ dir string }

// NewFileStore returns a FileStore in dir, creating it (mode 0700) if needed.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("monitor: checkpoint store: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

type fileRecord struct {
	Key        string          `json:"key"`
	Checkpoint json.RawMessage `json:"checkpoint"`
}

// maxNameKey is the longest base64 file name a key gets; a longer one is
// hashed, as file names are limited (255 bytes on most file systems).
const maxNameKey = 200

// path names the file of key: the base64 of the key, or for a key whose
// base64 is longer than maxNameKey, "=" and the SHA-256 of the key ("="
// is not in the base64 alphabet, so the two never collide). The key
// itself is inside the file, so Load needs no name.
func (s *FileStore) path(key string) string {
	name := base64.RawURLEncoding.EncodeToString([]byte(key))
	if len(name) > maxNameKey {
		sum := sha256.Sum256([]byte(key))
		name = "=" + hex.EncodeToString(sum[:])
	}
	return filepath.Join(s.dir, name+".json")
}

// Save implements Store.
func (s *FileStore) Save(key string, cp []byte) error {
	b, err := json.Marshal(fileRecord{Key: key, Checkpoint: cp})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Delete implements Store.
func (s *FileStore) Delete(key string) error {
	if err := os.Remove(s.path(key)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// Load implements Store. Files that do not decode are reported, not
// skipped: a run must not be forgotten silently.
func (s *FileStore) Load() (map[string][]byte, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var r fileRecord
		if err := json.Unmarshal(b, &r); err != nil || r.Key == "" {
			return nil, fmt.Errorf("monitor: checkpoint store: %s does not decode", e.Name())
		}
		out[r.Key] = r.Checkpoint
	}
	return out, nil
}
