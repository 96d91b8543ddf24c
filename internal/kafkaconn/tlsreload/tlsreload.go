// Package tlsreload loads PEM certificate files for TLS clients and re-reads
// them when their content changes, so that new connections pick up
// certificates that were rotated in place (for example by cert-manager in a
// mounted Kubernetes Secret) without a restart.
//
// Files are checked at most once per interval. A check reads the files and
// compares a SHA-256 hash of their content with the last one parsed, so a
// rotation is seen even when the modification time does not change.
package tlsreload

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultInterval is the minimum time between two reads of the same files
// when the caller has no preference.
const DefaultInterval = 5 * time.Second

// watched contains a value parsed from a set of files and re-parses it when the
// files' content changes.
type watched[T any] struct {
	paths    []string
	interval time.Duration
	parse    func(contents [][]byte) (T, error)

	mu         sync.Mutex
	checked    time.Time
	sum        [sha256.Size]byte
	value      T
	generation uint64
}

// newWatched reads and parses the files once, returning the error of that
// first load so that a bad file fails at startup.
func newWatched[T any](
	paths []string,
	interval time.Duration,
	parse func([][]byte) (T, error),
) (*watched[T], error) {
	w := &watched[T]{paths: paths, interval: interval, parse: parse}
	contents, sum, err := w.read()
	if err != nil {
		return nil, err
	}
	if w.value, err = parse(contents); err != nil {
		return nil, err
	}
	w.sum = sum
	w.checked = time.Now()
	return w, nil
}

// current returns the newest value that parsed and a generation number that
// grows by one each time the value changes.
//
// NOTE: when a changed file fails to read or parse (a rotation caught half
// written, say), current keeps returning the last good value and tries again
// after the next interval.
func (w *watched[T]) current() (T, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()

	now := time.Now()
	if now.Sub(w.checked) < w.interval {
		return w.value, w.generation
	}
	w.checked = now

	contents, sum, err := w.read()
	if err != nil || sum == w.sum {
		return w.value, w.generation
	}
	value, err := w.parse(contents)
	if err != nil {
		return w.value, w.generation
	}
	w.value, w.sum = value, sum
	w.generation++
	return w.value, w.generation
}

// read returns the content of every file and one hash over all of them.
func (w *watched[T]) read() ([][]byte, [sha256.Size]byte, error) {
	hash := sha256.New()
	contents := make([][]byte, len(w.paths))
	for i, path := range w.paths {
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("reading %s: %w", path, err)
		}
		// The length prefix keeps two files from hashing like their
		// concatenation split at another point.
		_ = binary.Write(hash, binary.BigEndian, uint64(len(content)))
		hash.Write(content)
		contents[i] = content
	}
	var sum [sha256.Size]byte
	copy(sum[:], hash.Sum(nil))
	return contents, sum, nil
}
