package lookup

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fileTable is a file loaded into memory and loaded again when it changes.
type fileTable struct {
	spec   FileSpec
	logger *slog.Logger
	rows   atomic.Pointer[map[string]any]
	loaded chan struct{} // closed from the start: the first load happens in openFileTable

	stop chan struct{}
	wg   sync.WaitGroup
}

// fileVersion identifies the content of a file well enough to notice an
// edit: a symbolic link swapped to another file, or a write that changes the
// size or the modification time.
type fileVersion struct {
	info os.FileInfo
}

func (v fileVersion) same(w fileVersion) bool {
	if v.info == nil || w.info == nil {
		return v.info == w.info
	}
	return os.SameFile(v.info, w.info) && v.info.Size() == w.info.Size() && v.info.ModTime().Equal(w.info.ModTime())
}

func openFileTable(spec FileSpec, logger *slog.Logger) (*fileTable, error) {
	t := &fileTable{
		spec:   spec,
		logger: logger.With("path", spec.Path),
		loaded: make(chan struct{}),
		stop:   make(chan struct{}),
	}
	close(t.loaded)

	version, err := t.load()
	if err != nil {
		return nil, err
	}
	t.logger.Info("lookup file loaded", "entries", len(*t.rows.Load()))

	t.wg.Add(1)
	go t.poll(version)
	return t, nil
}

func (t *fileTable) get(key string) (any, bool) {
	v, ok := (*t.rows.Load())[key]
	return v, ok
}

func (t *fileTable) ready() <-chan struct{} { return t.loaded }

func (t *fileTable) close() {
	close(t.stop)
	t.wg.Wait()
}

// poll checks the file every poll interval and loads it again when it
// changed. A file that fails to load leaves the previous table in place and
// is tried again only after it changes once more.
func (t *fileTable) poll(version fileVersion) {
	defer t.wg.Done()
	ticker := time.NewTicker(time.Duration(t.spec.PollInterval))
	defer ticker.Stop()

	for {
		select {
		case <-t.stop:
			return
		case <-ticker.C:
		}

		info, err := os.Stat(t.spec.Path)
		if err != nil {
			current := fileVersion{}
			if !version.same(current) {
				t.logger.Warn("lookup file unreadable; keeping the loaded table", "err", err)
			}
			version = current
			continue
		}
		if version.same(fileVersion{info}) {
			continue
		}

		// NOTE: load stats the file again, so version is that of the
		// content that was read, even when the file changes in between.
		next, err := t.load()
		if err != nil {
			t.logger.Warn("reloading lookup file failed; keeping the loaded table", "err", err)
			version = fileVersion{info}
			continue
		}
		version = next
		t.logger.Info("lookup file reloaded", "entries", len(*t.rows.Load()))
	}
}

// load reads and parses the file and swaps it in whole.
func (t *fileTable) load() (fileVersion, error) {
	f, err := os.Open(t.spec.Path)
	if err != nil {
		return fileVersion{}, fmt.Errorf("opening lookup file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fileVersion{}, fmt.Errorf("reading lookup file: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fileVersion{}, fmt.Errorf("reading lookup file: %w", err)
	}

	rows, err := parseTable(data, t.spec.Format, t.spec.KeyField)
	if err != nil {
		return fileVersion{}, fmt.Errorf("parsing lookup file %s as %s: %w", t.spec.Path, t.spec.Format, err)
	}
	t.rows.Store(&rows)
	return fileVersion{info}, nil
}

// parseTable parses a whole file. A later row with the same key replaces an
// earlier one.
func parseTable(data []byte, format, keyField string) (map[string]any, error) {
	switch format {
	case FormatJSON:
		return parseJSONObject(data)
	case FormatJSONL:
		return parseJSONLines(data, keyField)
	case FormatCSV:
		return parseCSV(data, keyField)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

func parseJSONObject(data []byte) (map[string]any, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	rows, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want a JSON object keyed by lookup key")
	}
	return rows, nil
}

func parseJSONLines(data []byte, keyField string) (map[string]any, error) {
	rows := make(map[string]any)
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; scanner.Scan(); n++ {
		line := bytes.TrimSpace(scanner.Bytes())
		if len(line) == 0 {
			continue
		}
		v, err := decodeJSON(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		key, ok := String(fieldOrNil(v, keyField))
		if !ok {
			return nil, fmt.Errorf("line %d: missing key field %q, or it is not a string or number", n, keyField)
		}
		rows[key] = v
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	return rows, nil
}

func fieldOrNil(v any, path string) any {
	f, _ := Field(v, path)
	return f
}

// parseCSV returns one object per row, from column name to cell text.
func parseCSV(data []byte, keyField string) (map[string]any, error) {
	r := csv.NewReader(bytes.NewReader(data))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	keyColumn := -1
	for i, name := range header {
		if name == keyField {
			keyColumn = i
		}
	}
	if keyColumn < 0 {
		return nil, fmt.Errorf("header has no key column %q", keyField)
	}

	rows := make(map[string]any)
	for {
		record, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		row := make(map[string]any, len(header))
		for i, name := range header {
			row[name] = record[i]
		}
		rows[record[keyColumn]] = row
	}
}
