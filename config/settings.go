package config

import (
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Settings are a service's own options (services.<name>.settings). The
// configuration keeps them as written; the service decodes them into a type it
// owns, and their errors still name the file, line and key.
type Settings struct {
	node   ast.Node
	source string
	prefix string
}

// UnmarshalYAML keeps the node for Decode.
func (s *Settings) UnmarshalYAML(n ast.Node) error {
	s.node = n
	return nil
}

// IsZero reports whether the service has no settings.
func (s Settings) IsZero() bool { return s.node == nil }

// Decode decodes the settings strictly into v (a pointer to a struct with yaml tags):
// an unknown key or a value of the wrong type is an *Error placed in the file. No
// settings leave v as it is, so a caller fills its defaults first.
func (s Settings) Decode(v any) error {
	if s.node == nil {
		return nil
	}
	if err := yaml.NodeToValue(s.node, v, yaml.Strict()); err != nil {
		e := yamlError(s.source, err)
		e.Key = keyAt(s.node, s.prefix, e.Line, e.Column)
		if e.Key == "" {
			e.Key = s.prefix
		}
		return e
	}
	return nil
}

// Invalid returns an error about one settings key (dotted below settings), placed
// in the file, for checks a decoder cannot make (a rate above 1).
func (s Settings) Invalid(key, msg string) error {
	e := &Error{File: s.source, Key: s.prefix + "." + key, Msg: msg}
	if s.node != nil {
		if m, ok := s.node.(*ast.MappingNode); ok {
			for _, kv := range m.Values {
				if kv.Key.GetToken().Value == key {
					if p := kv.Key.GetToken().Position; p != nil {
						e.Line, e.Column = p.Line, p.Column
					}
				}
			}
		}
	}
	return e
}
