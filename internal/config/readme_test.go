package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// The README's configuration table lists every variable, so that a new
// setting cannot ship undocumented.
func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := make(map[string]string)
	collectVars(reflect.TypeOf(Config{}), Prefix, vars)
	if len(vars) < 30 {
		t.Fatalf("found %d variables in Config, want the full set", len(vars))
	}
	for _, name := range vars {
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("README.md has no configuration table row for %s", name)
		}
	}
}
