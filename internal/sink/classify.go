package sink

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/posthog/posthog-go"
)

// class is what the sink does with a failed delivery.
type class int

const (
	// retry: a transient fault (408, 429, 5xx, network, full queue). The
	// event is sent again after a backoff, without limit.
	retry class = iota
	// unauthorized: 401 or 403. The credentials are wrong; no event can be
	// delivered until they are fixed, so events wait and nothing is
	// dead-lettered.
	unauthorized
	// rejected: another 4xx. PostHog rejects a whole batch for one bad
	// event, so the batch is split and each event is sent alone; an event
	// rejected alone is dead-lettered.
	rejected
)

// classify decides what a failed delivery means, and returns the HTTP
// status when there was one.
func classify(err error) (class, int) {
	if errors.Is(err, posthog.ErrMessageTooBig) {
		return rejected, 0
	}
	status := httpStatus(err)
	switch {
	case status == 401 || status == 403:
		return unauthorized, status
	case status == 408 || status == 429 || status >= 500:
		return retry, status
	case status >= 400:
		return rejected, status
	}
	return retry, status
}

// httpStatus returns the status code of posthog-go's HTTP error, or 0 when
// err carries none.
//
// NOTE: posthog-go v1.27.0 keeps its HTTP error type unexported, and its
// text starts with the status code ("400 400 Bad Request"). The sink tests
// run against a real HTTP server, so an SDK upgrade that changes the text
// fails them.
func httpStatus(err error) int {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if fmt.Sprintf("%T", e) != "*posthog.httpError" {
			continue
		}
		code, _, _ := strings.Cut(e.Error(), " ")
		n, convErr := strconv.Atoi(code)
		if convErr == nil {
			return n
		}
	}
	return 0
}

// errText returns the text of err without the status code that posthog-go
// puts in front of the status line of its HTTP errors: "503 503 Service
// Unavailable" becomes "503 Service Unavailable".
func errText(err error) string {
	text := err.Error()
	if httpStatus(err) == 0 {
		return text
	}
	code, rest, _ := strings.Cut(text, " ")
	if strings.HasPrefix(rest, code+" ") {
		return rest
	}
	return text
}
