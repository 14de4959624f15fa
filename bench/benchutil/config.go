package benchutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SetConfig sets one key of the data directory dir's fleetca.yaml, which
// Init wrote, to a string value, between Init and Serve: key is a dotted
// path of the file's sections ("ca.renew_min_interval"), and the key is
// added to its section if the file does not have it. The section must
// exist. The file keeps its comments and mode; serve checks the result as
// it checks any fleetca.yaml (known keys, ranges) when it starts.
func SetConfig(dir, key, value string) error {
	return setConfig(dir, key, strNode(value))
}

func strNode(value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle}
}

// SetConfigInt is SetConfig for a key whose value is an integer
// ("revocation.crl_partitions").
func SetConfigInt(dir, key string, value int) error {
	return setConfig(dir, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(value)})
}

func setConfig(dir, key string, value *yaml.Node) error {
	path := filepath.Join(dir, "fleetca.yaml")
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := setYAMLNode(b, key, value)
	if err != nil {
		return fmt.Errorf("%s: set %s: %w", path, key, err)
	}
	return os.WriteFile(path, out, st.Mode().Perm())
}

// setYAML sets the dotted key of the YAML document b to the string value
// and returns the document re-encoded (two-space indents, comments kept).
func setYAML(b []byte, key, value string) ([]byte, error) { return setYAMLNode(b, key, strNode(value)) }

// setYAMLNode is setYAML for any scalar value.
func setYAMLNode(b []byte, key string, value *yaml.Node) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("not a single YAML document")
	}
	node := doc.Content[0]
	parts := strings.Split(key, ".")
	for i, name := range parts {
		if node.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s is not a section", strings.Join(parts[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(node.Content); j += 2 {
			if node.Content[j].Value == name {
				next = node.Content[j+1]
			}
		}
		last := i == len(parts)-1
		switch {
		case next == nil && !last:
			return nil, fmt.Errorf("no section %s", strings.Join(parts[:i+1], "."))
		case next == nil:
			next = &yaml.Node{Kind: yaml.ScalarNode}
			node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, next)
		case last && next.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("%s is a section, not a value", key)
		}
		node = next
	}
	node.Tag, node.Value, node.Style = value.Tag, value.Value, value.Style
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
