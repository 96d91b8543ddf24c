// Command envcheck checks that a Deployment of the Helm chart starts the
// enricher with a configuration that the enricher accepts. It reads
// Kubernetes objects and Lists in JSON, such as the output of kubectl get
// -o json or kubectl apply --dry-run=server -o json, from standard input,
// and builds the container environment as the
// kubelet would: envFrom sources in order, then env. It writes the keys of
// every mounted ConfigMap and Secret under a temporary directory, points
// the paths in the environment there, and runs the enricher's own
// configuration parser on the result.
//
// Usage:
//
//	kubectl get deployments,configmaps,secrets -o json | envcheck -deployment NAME
//
// Volumes that map keys to paths with "items" are not supported.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-enricher/enricher/internal/config"
)

// object is the part of a Kubernetes object that envcheck reads.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
	Spec struct {
		Template struct {
			Spec podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type podSpec struct {
	Containers []container `json:"containers"`
	Volumes    []volume    `json:"volumes"`
}

type container struct {
	Name    string `json:"name"`
	EnvFrom []struct {
		ConfigMapRef *reference `json:"configMapRef"`
		SecretRef    *reference `json:"secretRef"`
	} `json:"envFrom"`
	Env []struct {
		Name      string          `json:"name"`
		Value     string          `json:"value"`
		ValueFrom json.RawMessage `json:"valueFrom"`
	} `json:"env"`
	Ports        []port `json:"ports"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

type port struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
}

type reference struct {
	Name     string            `json:"name"`
	Optional bool              `json:"optional"`
	Items    []json.RawMessage `json:"items"`
}

// volume is a pod volume. envcheck reads ConfigMap and Secret volumes and
// treats any other kind as empty.
type volume struct {
	Name      string     `json:"name"`
	ConfigMap *reference `json:"configMap"`
	Secret    *secretRef `json:"secret"`
}

type secretRef struct {
	SecretName string            `json:"secretName"`
	Optional   bool              `json:"optional"`
	Items      []json.RawMessage `json:"items"`
}

// cluster is the set of objects read, by kind and name.
type cluster struct {
	deployments map[string]object
	configMaps  map[string]map[string]string
	secrets     map[string]map[string]string
}

func main() {
	name := flag.String("deployment", "", "name of the Deployment to check (required)")
	containerName := flag.String("container", "enricher", "name of the enricher container")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "envcheck: missing -deployment: set the name of the Deployment")
		os.Exit(2)
	}
	if err := run(os.Stdin, *name, *containerName); err != nil {
		fmt.Fprintf(os.Stderr, "envcheck: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, name, containerName string) error {
	objects, err := readList(in)
	if err != nil {
		return err
	}
	deployment, ok := objects.deployments[name]
	if !ok {
		return fmt.Errorf("deployment %s not found in the input", name)
	}
	pod := deployment.Spec.Template.Spec
	i := slices.IndexFunc(pod.Containers, func(c container) bool { return c.Name == containerName })
	if i < 0 {
		return fmt.Errorf("deployment %s has no container %s", name, containerName)
	}
	c := pod.Containers[i]

	env, err := objects.environment(c)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "envcheck-")
	if err != nil {
		return fmt.Errorf("creating the mount directory: %w", err)
	}
	defer os.RemoveAll(root)
	if err := objects.mount(root, c, pod.Volumes, env); err != nil {
		return err
	}

	// Lookups read header values from the process environment, so the
	// parser gets the same variables as the container would.
	for key, value := range env {
		if err := os.Setenv(key, value); err != nil {
			return fmt.Errorf("setting %s: %w", key, err)
		}
	}
	cfg, err := config.Parse(env)
	if err != nil {
		return fmt.Errorf("the enricher rejects the environment of deployment %s:\n%w", name, err)
	}
	if err := checkPort(cfg.HTTPAddr, c); err != nil {
		return err
	}
	fmt.Printf("envcheck: deployment %s: the enricher accepts its %d environment variables\n", name, len(env))
	return nil
}

// readList reads one or more Lists, or single objects, from in until its
// end, so that the output of several kubectl commands can be concatenated.
func readList(in io.Reader) (cluster, error) {
	objects := cluster{
		deployments: map[string]object{},
		configMaps:  map[string]map[string]string{},
		secrets:     map[string]map[string]string{},
	}
	dec := json.NewDecoder(in)
	for {
		var list struct {
			object
			Items []object `json:"items"`
		}
		err := dec.Decode(&list)
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return objects, fmt.Errorf("decoding the JSON on standard input: %w", err)
		}
		if len(list.Items) == 0 {
			list.Items = []object{list.object}
		}
		for _, item := range list.Items {
			if err := objects.add(item); err != nil {
				return objects, err
			}
		}
	}
}

func (objects cluster) add(item object) error {
	switch item.Kind {
	case "Deployment":
		objects.deployments[item.Metadata.Name] = item
	case "ConfigMap":
		objects.configMaps[item.Metadata.Name] = item.Data
	case "Secret":
		data := make(map[string]string, len(item.Data))
		for key, encoded := range item.Data {
			decoded, err := base64.StdEncoding.DecodeString(encoded)
			if err != nil {
				return fmt.Errorf("decoding key %s of secret %s: %w", key, item.Metadata.Name, err)
			}
			data[key] = string(decoded)
		}
		objects.secrets[item.Metadata.Name] = data
	}
	return nil
}

// environment returns the variables of the container: envFrom sources in
// order, each overriding the ones before it, then env.
func (objects cluster) environment(c container) (map[string]string, error) {
	env := map[string]string{}
	for _, source := range c.EnvFrom {
		var data map[string]string
		var found bool
		var ref *reference
		switch {
		case source.ConfigMapRef != nil:
			ref = source.ConfigMapRef
			data, found = objects.configMaps[ref.Name]
			if !found && !ref.Optional {
				return nil, fmt.Errorf("envFrom: configmap %s not found", ref.Name)
			}
		case source.SecretRef != nil:
			ref = source.SecretRef
			data, found = objects.secrets[ref.Name]
			if !found && !ref.Optional {
				return nil, fmt.Errorf("envFrom: secret %s not found", ref.Name)
			}
		default:
			return nil, errors.New("envFrom: an entry without configMapRef or secretRef")
		}
		for key, value := range data {
			env[key] = value
		}
	}
	for _, variable := range c.Env {
		if len(variable.ValueFrom) > 0 {
			return nil, fmt.Errorf("env %s: valueFrom is not supported by envcheck", variable.Name)
		}
		env[variable.Name] = variable.Value
	}
	return env, nil
}

// mount writes the keys of each ConfigMap and Secret volume that the
// container mounts under root, and rewrites every environment value that
// points into such a mount to the copy under root.
func (objects cluster) mount(root string, c container, volumes []volume, env map[string]string) error {
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(volumes, func(v volume) bool { return v.Name == m.Name })
		if i < 0 {
			return fmt.Errorf("volumeMount %s: no volume of that name", m.Name)
		}
		data, err := objects.volumeData(volumes[i])
		if err != nil {
			return fmt.Errorf("volume %s: %w", m.Name, err)
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", m.Name, err)
		}
		for key, value := range data {
			if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o600); err != nil {
				return fmt.Errorf("volume %s: %w", m.Name, err)
			}
		}
		prefix := strings.TrimSuffix(m.MountPath, "/") + "/"
		for key, value := range env {
			env[key] = strings.ReplaceAll(value, prefix, filepath.Join(root, m.MountPath)+"/")
		}
	}
	return nil
}

// volumeData returns the files of a ConfigMap or Secret volume by name,
// and none for other kinds of volume.
func (objects cluster) volumeData(v volume) (map[string]string, error) {
	switch {
	case v.ConfigMap != nil && len(v.ConfigMap.Items) > 0, v.Secret != nil && len(v.Secret.Items) > 0:
		return nil, errors.New("items are not supported: mount every key")
	case v.ConfigMap != nil:
		data, ok := objects.configMaps[v.ConfigMap.Name]
		if !ok && !v.ConfigMap.Optional {
			return nil, fmt.Errorf("configmap %s not found", v.ConfigMap.Name)
		}
		return data, nil
	case v.Secret != nil:
		data, ok := objects.secrets[v.Secret.SecretName]
		if !ok && !v.Secret.Optional {
			return nil, fmt.Errorf("secret %s not found", v.Secret.SecretName)
		}
		return data, nil
	}
	return nil, nil
}

// checkPort fails unless the enricher listens on the container port named
// http, which the probes and the Service target.
func checkPort(addr string, c container) error {
	i := slices.IndexFunc(c.Ports, func(p port) bool { return p.Name == "http" })
	if i < 0 {
		return fmt.Errorf("container %s has no port named http", c.Name)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("ENRICHER_HTTP_ADDR %q: %w", addr, err)
	}
	if port != strconv.Itoa(c.Ports[i].ContainerPort) {
		return fmt.Errorf("ENRICHER_HTTP_ADDR %q does not listen on the http container port %d", addr, c.Ports[i].ContainerPort)
	}
	return nil
}
