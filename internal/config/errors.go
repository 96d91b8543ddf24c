package config

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/caarlos0/env/v11"
)

// nameParseErrors rewrites env's parse errors, which name the struct
// field, to name the variable instead.
func nameParseErrors(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	vars := make(map[string]string)
	collectVars(reflect.TypeOf(Config{}), Prefix, vars)
	out := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && vars[pe.Name] != "" {
			out = append(out, fmt.Errorf("%s: invalid value: %v", vars[pe.Name], pe.Err))
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// collectVars maps each field name of t to its variable name.
func collectVars(t reflect.Type, prefix string, vars map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			collectVars(f.Type, prefix+f.Tag.Get("envPrefix"), vars)
			continue
		}
		if name := f.Tag.Get("env"); name != "" {
			vars[f.Name] = prefix + name
		}
	}
}
