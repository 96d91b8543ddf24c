// Package examples holds sample LLM call records in the version 1 record
// format, one JSON object per line. The embedded mode publishes them.
package examples

import _ "embed"

// Records is the content of records.jsonl.
//
//go:embed records.jsonl
var Records []byte
