package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxBytes is the size budget of one serialised event. posthog-go v1.27.0
// rejects a message over 500,000 bytes before sending it. The budget leaves
// room for the fields and properties that posthog-go adds itself ($lib, $os
// and the like).
const MaxBytes = 500_000 - 8_192

// ErrTooLarge marks an event that cannot be made to fit MaxBytes.
var ErrTooLarge = errors.New("event too large")

// minTruncate is the encoded length of the shortest string that Fit cuts.
// Below it, cutting removes too little to matter.
const minTruncate = 256

// maxRounds bounds the shrink-and-measure rounds of Fit. It takes one round
// to replace media, one to cut text, and one more when the common cut
// length fell below the length of the truncation marker.
const maxRounds = 4

// mediaProps are the properties whose base64 media Fit replaces.
var mediaProps = []string{"$ai_input", "$ai_output_choices"}

// dataURL matches base64 media embedded as a data URL.
var dataURL = regexp.MustCompile(`^data:([a-zA-Z0-9.+/-]*)(;[^,]*)?;base64,`)

// Fit shrinks an event whose serialised size (see Size) exceeds maxBytes.
// It finds the longest common length at which the event would fit if every
// string over that length were cut to it. Base64 media in mediaProps over
// that length is replaced with a short placeholder, the largest first. If
// the event is still too large, the strings over the common length, found
// again, are cut to it on a UTF-8 character boundary. A string under the
// common length is left whole, so a short field is never cut because
// another field is long. Fit sets PropTruncated when it changed anything,
// and returns an error wrapping ErrTooLarge when the event still does not
// fit.
func Fit(ev *Event, maxBytes int) error {
	if roughEventMax(ev) <= maxBytes {
		return nil
	}
	size, err := ev.Size()
	if err != nil {
		return fmt.Errorf("measuring event: %w", err)
	}
	if size <= maxBytes {
		return nil
	}
	return shrink(ev, maxBytes)
}

// shrink makes an event that is over maxBytes fit, as Fit describes.
func shrink(ev *Event, maxBytes int) error {
	// NOTE: rules and lookups may put the same map or slice into many
	// events, so Fit edits copies of them and never the originals.
	for k, v := range ev.Properties {
		ev.Properties[k] = cloneContainers(v)
	}
	decodeRaw(ev.Properties)
	ev.Properties[PropTruncated] = true
	size, err := ev.Size()
	if err != nil {
		return fmt.Errorf("measuring event: %w", err)
	}
	if size <= maxBytes {
		// Decoded strings can encode shorter than their raw JSON, which
		// may spell "é" as \u00e9.
		delete(ev.Properties, PropTruncated)
		return nil
	}

	for round := 0; size > maxBytes; round++ {
		if round == maxRounds || !shrinkLongest(ev.Properties, size-maxBytes) {
			return fmt.Errorf("%w: %d bytes after truncation, limit %d",
				ErrTooLarge, size, maxBytes)
		}
		if size, err = ev.Size(); err != nil {
			return fmt.Errorf("measuring event: %w", err)
		}
	}
	return nil
}

// roughEventMax is an upper bound of the serialised size of the event,
// cheap enough to run on every event.
func roughEventMax(ev *Event) int {
	return roughMax(ev.Properties) + 6*(len(ev.UUID)+len(ev.Name)+len(ev.DistinctID))
}

// roughMax is an upper bound of the serialised size of the properties, plus
// 1 KiB for the rest of a small event. JSON escaping grows a byte to at
// most six ("\u003c").
func roughMax(p map[string]any) int {
	n := 1024
	for k, v := range p {
		n += 6*len(k) + 8 + roughValueMax(v)
	}
	return n
}

// roughValueMax bounds the serialised size of one value, or returns a
// size over any limit for a type it does not know.
func roughValueMax(v any) int {
	const unknown = 1 << 40
	switch v := v.(type) {
	case json.RawMessage:
		return 6 * len(v)
	case string:
		return 6 * len(v)
	case bool, nil, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return 32
	case map[string]any:
		n := 2
		for k, e := range v {
			n += 6*len(k) + 4 + roughValueMax(e)
		}
		return min(n, unknown)
	case []any:
		n := 2
		for _, e := range v {
			n += 1 + roughValueMax(e)
		}
		return min(n, unknown)
	}
	return unknown
}

// decodeRaw replaces the raw JSON property values that may hold a string
// long enough to cut with decoded ones, so that their strings can be
// edited. Numbers decode as json.Number, so that they encode unchanged.
func decodeRaw(p map[string]any) {
	for k, v := range p {
		raw, ok := v.(json.RawMessage)
		if !ok || len(raw) < minTruncate {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var val any
		if dec.Decode(&val) == nil {
			p[k] = val
		}
	}
}

// cloneContainers returns a copy of v in which every map[string]any and
// []any is new. Other values are shared with v.
func cloneContainers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = cloneContainers(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = cloneContainers(e)
		}
		return a
	}
	return v
}

// shrinkLongest shrinks the strings of at least minTruncate encoded bytes
// in the properties so that the encoding shrinks by at least excess bytes.
// It finds the longest common length that saves enough when every string
// over it is cut to it. If base64 media in mediaProps is over that length,
// it replaces that media with a placeholder, the largest first, and cuts
// nothing else, because a placeholder may save more than the cut would.
// Otherwise it cuts every string over the length to it. shrinkLongest
// returns false when cutting all strings cannot save enough.
func shrinkLongest(p map[string]any, excess int) bool {
	var long []slot
	for k, v := range p {
		long = appendSlots(long, v, slot{m: p, key: k, prop: k}, minTruncate)
	}
	slices.SortFunc(long, func(a, b slot) int { return b.enc - a.enc })
	level, ok := cutLevel(long, excess)
	if !ok {
		return false
	}

	var over []slot
	for _, s := range long {
		if s.enc > level {
			over = append(over, s)
		}
	}
	if replaceMedia(over, excess) > 0 {
		return true
	}
	for _, s := range over {
		s.set(truncate(s.s, level))
	}
	return true
}

// replaceMedia replaces the base64 media in mediaProps among slots, sorted
// longest first, with a placeholder, until the encoding has shrunk by at
// least excess bytes. It returns the bytes saved.
func replaceMedia(slots []slot, excess int) int {
	saved := 0
	for _, s := range slots {
		if saved >= excess {
			break
		}
		if !slices.Contains(mediaProps, s.prop) {
			continue
		}
		m := dataURL.FindStringSubmatch(s.s)
		if m == nil {
			continue
		}
		kind := m[1]
		if kind == "" {
			kind = "media"
		}
		placeholder := fmt.Sprintf("[base64 %s removed, %d bytes]", kind, len(s.s))
		if gain := s.enc - escapedLen(placeholder); gain > 0 {
			s.set(placeholder)
			saved += gain
		}
	}
	return saved
}

// cutLevel returns the largest length L such that cutting every string of
// long, sorted by encoded length, longest first, down to L saves at least
// excess bytes. It returns false when even L = 0 saves too little.
func cutLevel(long []slot, excess int) (int, bool) {
	sum := 0
	for i, s := range long {
		sum += s.enc
		if sum < excess {
			continue
		}
		// Cutting the i+1 longest strings to level saves sum - (i+1)*level
		// bytes, or a few more because each cut ends on a character.
		level := (sum - excess) / (i + 1)
		next := 0
		if i+1 < len(long) {
			next = long[i+1].enc
		}
		if level >= next {
			return level, true
		}
	}
	return 0, false
}

// truncate cuts s to its longest prefix that ends on a UTF-8 character
// boundary and whose encoding, with a marker appended that gives the
// number of bytes cut, takes at most maxEnc bytes. When maxEnc is too small for
// the marker, only the marker is left.
func truncate(s string, maxEnc int) string {
	room := maxEnc - markerLen(len(s))
	keep, n := 0, 0
	for keep < len(s) {
		r, size := rune(s[keep]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[keep:])
		}
		w := escapedRuneLen(r, size)
		if n+w > room {
			break
		}
		n += w
		keep += size
	}
	return s[:keep] + marker(len(s)-keep)
}

func marker(cut int) string { return " [truncated " + strconv.Itoa(cut) + " bytes]" }

// markerLen returns the length of the longest marker for a string of n
// bytes.
func markerLen(n int) int { return len(marker(n)) }

// slot is a string in the properties, with the map and key or the slice
// and index that contain it, so that it can be replaced.
type slot struct {
	m    map[string]any
	key  string
	a    []any
	i    int
	prop string // the property that contains the string
	s    string
	enc  int // escapedLen(s)
}

func (s slot) set(v string) {
	if s.m != nil {
		s.m[s.key] = v
	} else {
		s.a[s.i] = v
	}
}

// appendSlots appends to slots the strings in v, found at, that take at
// least minEnc bytes encoded. It looks into maps and slices of decoded JSON
// and skips other types.
func appendSlots(slots []slot, v any, at slot, minEnc int) []slot {
	switch t := v.(type) {
	case string:
		if len(t)*6 < minEnc {
			break
		}
		if at.s, at.enc = t, escapedLen(t); at.enc >= minEnc {
			slots = append(slots, at)
		}
	case map[string]any:
		for k, e := range t {
			slots = appendSlots(slots, e, slot{m: t, key: k, prop: at.prop}, minEnc)
		}
	case []any:
		for i, e := range t {
			slots = appendSlots(slots, e, slot{a: t, i: i, prop: at.prop}, minEnc)
		}
	}
	return slots
}
