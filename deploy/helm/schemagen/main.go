// Command schemagen writes strict, standalone JSON schemas for kubeconform
// from the Kubernetes OpenAPI v2 spec and from CustomResourceDefinition
// files, so that rendered manifests can be validated without a network.
//
// Each schema file is named <kind>-<group>-<version>.json, with the group
// cut at its first dot and left out for the core group, which is the
// layout kubeconform's {{ .ResourceKind }}{{ .KindSuffix }} template expects.
// Every object schema that lists properties rejects properties it does not
// list, unless it carries x-kubernetes-preserve-unknown-fields.
//
// Usage:
//
//	schemagen -out DIR [-openapi swagger.json] [crd.yaml ...]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "", "directory to write the schemas to (required)")
	openapi := flag.String("openapi", "", "Kubernetes OpenAPI v2 spec (api/openapi-spec/swagger.json)")
	flag.Parse()
	if *out == "" {
		return errors.New("missing -out: set the directory for the schemas")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", *out, err)
	}

	written := 0
	if *openapi != "" {
		n, err := writeOpenAPI(*openapi, *out)
		if err != nil {
			return err
		}
		written += n
	}
	for _, path := range flag.Args() {
		n, err := writeCRDs(path, *out)
		if err != nil {
			return err
		}
		written += n
	}
	if written == 0 {
		return errors.New("wrote no schema: pass -openapi or CRD files")
	}
	fmt.Printf("schemagen: wrote %d schemas to %s\n", written, *out)
	return nil
}

// groupVersionKind is one entry of x-kubernetes-group-version-kind.
type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// fileName returns the schema file name kubeconform looks up for gvk.
func (gvk groupVersionKind) fileName() string {
	name := strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		name += "-" + strings.ToLower(strings.SplitN(gvk.Group, ".", 2)[0])
	}
	return name + "-" + strings.ToLower(gvk.Version) + ".json"
}

const definitionsPrefix = "#/definitions/"

// writeOpenAPI writes one schema for every kind in the spec at path. Each
// schema carries the definitions it reaches, so it needs no other file.
func writeOpenAPI(path, out string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading OpenAPI spec: %w", err)
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return 0, fmt.Errorf("decoding OpenAPI spec %s: %w", path, err)
	}
	if len(spec.Definitions) == 0 {
		return 0, fmt.Errorf("decoding OpenAPI spec %s: no definitions", path)
	}

	defs := make(map[string]any, len(spec.Definitions))
	for name, def := range spec.Definitions {
		defs[name] = strictify(overrideDefinition(name, def))
	}

	written := 0
	for _, name := range sortedKeys(spec.Definitions) {
		gvks, err := kindsOf(spec.Definitions[name])
		if err != nil {
			return written, fmt.Errorf("reading kinds of %s: %w", name, err)
		}
		if len(gvks) == 0 {
			continue
		}
		schema := copyMap(defs[name].(map[string]any))
		schema["definitions"] = reachable(defs, name)
		for _, gvk := range gvks {
			if err := writeJSON(filepath.Join(out, gvk.fileName()), schema); err != nil {
				return written, err
			}
			written++
		}
	}
	return written, nil
}

// overrideDefinition fixes the two string types of the spec that YAML
// authors also write as numbers.
func overrideDefinition(name string, def map[string]any) map[string]any {
	switch name {
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string"},
			map[string]any{"type": "number"},
		}}
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return intOrString()
	}
	return def
}

func intOrString() map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "string"},
		map[string]any{"type": "integer"},
	}}
}

func kindsOf(def map[string]any) ([]groupVersionKind, error) {
	raw, ok := def["x-kubernetes-group-version-kind"]
	if !ok {
		return nil, nil
	}
	encoded, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var gvks []groupVersionKind
	err = json.Unmarshal(encoded, &gvks)
	return gvks, err
}

// reachable returns the definitions that name refers to, directly or
// through other definitions.
func reachable(defs map[string]any, name string) map[string]any {
	found := map[string]any{}
	pending := []string{name}
	for len(pending) > 0 {
		current := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		collectRefs(defs[current], func(ref string) {
			if _, seen := found[ref]; seen {
				return
			}
			if def, ok := defs[ref]; ok {
				found[ref] = def
				pending = append(pending, ref)
			}
		})
	}
	return found
}

func collectRefs(node any, visit func(string)) {
	switch value := node.(type) {
	case map[string]any:
		if ref, ok := value["$ref"].(string); ok {
			visit(strings.TrimPrefix(ref, definitionsPrefix))
		}
		for _, child := range value {
			collectRefs(child, visit)
		}
	case []any:
		for _, child := range value {
			collectRefs(child, visit)
		}
	}
}

// strictify returns a copy of a schema node without descriptions, in
// which objects reject unlisted properties and int-or-string fields take
// either type.
func strictify(node any) any {
	switch value := node.(type) {
	case map[string]any:
		if value["format"] == "int-or-string" || value["x-kubernetes-int-or-string"] == true {
			return intOrString()
		}
		result := make(map[string]any, len(value)+1)
		for key, child := range value {
			if key == "description" {
				continue
			}
			if key == "properties" || key == "definitions" || key == "patternProperties" {
				result[key] = strictifyEach(child)
				continue
			}
			result[key] = strictify(child)
		}
		_, hasProperties := value["properties"]
		_, hasAdditional := value["additionalProperties"]
		if hasProperties && !hasAdditional && value["x-kubernetes-preserve-unknown-fields"] != true {
			result["additionalProperties"] = false
		}
		if value["nullable"] == true {
			result = map[string]any{"anyOf": []any{result, map[string]any{"type": "null"}}}
		}
		return result
	case []any:
		result := make([]any, len(value))
		for i, child := range value {
			result[i] = strictify(child)
		}
		return result
	}
	return node
}

// strictifyEach applies strictify to every value of a map of schemas, whose
// keys are property names and not schema keywords.
func strictifyEach(node any) any {
	properties, ok := node.(map[string]any)
	if !ok {
		return node
	}
	result := make(map[string]any, len(properties))
	for name, child := range properties {
		result[name] = strictify(child)
	}
	return result
}

// customResourceDefinition holds the fields of an apiextensions.k8s.io/v1
// CustomResourceDefinition that schemagen reads.
type customResourceDefinition struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// writeCRDs writes one schema for every version of every
// CustomResourceDefinition in the YAML file at path.
func writeCRDs(path, out string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading CRD file: %w", err)
	}
	written := 0
	for i, doc := range splitYAML(raw) {
		var crd customResourceDefinition
		if err := yaml.Unmarshal(doc, &crd); err != nil {
			return written, fmt.Errorf("decoding document %d of %s: %w", i+1, path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, version := range crd.Spec.Versions {
			if version.Schema.OpenAPIV3Schema == nil {
				return written, fmt.Errorf("reading %s %s in %s: no openAPIV3Schema", crd.Spec.Names.Kind, version.Name, path)
			}
			gvk := groupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
			schema := strictify(version.Schema.OpenAPIV3Schema)
			if err := writeJSON(filepath.Join(out, gvk.fileName()), schema); err != nil {
				return written, err
			}
			written++
		}
	}
	if written == 0 {
		return 0, fmt.Errorf("reading %s: no CustomResourceDefinition with a schema", path)
	}
	return written, nil
}

// splitYAML splits a stream of YAML documents at lines that are exactly
// "---".
func splitYAML(raw []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

func writeJSON(path string, value any) error {
	encoded, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, encoded, 0o644); err != nil {
		return fmt.Errorf("writing schema: %w", err)
	}
	return nil
}

func copyMap(m map[string]any) map[string]any {
	result := make(map[string]any, len(m)+1)
	for key, value := range m {
		result[key] = value
	}
	return result
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}
