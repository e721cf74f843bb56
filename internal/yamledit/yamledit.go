// Package yamledit edits a switchyard.yaml text in place, for
// `switchyard lint --set key=value` and for proposed changes.
//
// An edit changes only the bytes it has to: the file is parsed with
// github.com/goccy/go-yaml to find where each node sits, and the new text is
// spliced into the original bytes at those positions. The AST is never printed
// back: goccy's printer reflows flow mappings such as
// `policy: {timeout: 1s, retry: {max_attempts: 2}}`, moves or drops comments and
// normalises indentation and quoting, and a user's file must stay byte-identical
// outside the edit so that the change reads as the one-line diff it is.
//
// Every result is parsed again before it is returned, and the edited value is
// read back and compared with what was asked for, so a caller never receives a
// file that no longer parses or that says something other than intended.
package yamledit

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// indentStep is the indentation of each nesting level this package writes.
const indentStep = 2

// Set returns src with the value at the dotted key path set to value, a YAML
// scalar or flow text ("3", "250ms", "true", "[a, b]", "{p50: 1ms}").
// Path segments are mapping keys; a segment that is a decimal number indexes a
// sequence ("gateway.routes.2.timeout").
func Set(src []byte, key, value string) ([]byte, error) {
	segs, value, d, at, err := locate(src, key, value)
	if err != nil {
		return nil, err
	}
	var edits []edit
	if at.depth == len(segs) {
		edits, err = d.replace(key, at, value)
	} else {
		edits, err = d.createPath(key, segs, at, rendered{inline: value})
	}
	if err != nil {
		return nil, err
	}
	return finish(src, edits, key, segs, false, []byte(value))
}

// Append returns src with value appended to the sequence at key, creating the key
// (as a one-item sequence) when missing.
func Append(src []byte, key, value string) ([]byte, error) {
	segs, value, d, at, err := locate(src, key, value)
	if err != nil {
		return nil, err
	}
	item := rendered{inline: "[" + value + "]", lines: []string{"- " + value}}
	var edits []edit
	if at.depth < len(segs) {
		edits, err = d.createPath(key, segs, at, item)
	} else {
		switch n := unwrap(at.node).(type) {
		case *ast.SequenceNode:
			edits = d.appendItem(n, value)
		case nil, *ast.NullNode:
			edits, err = d.create(key, segs, at, item)
		default:
			err = fmt.Errorf("%s: not a sequence", key)
		}
	}
	if err != nil {
		return nil, err
	}
	return finish(src, edits, key, segs, true, []byte(value))
}

// locate checks key and value and finds, in src, how much of key's path exists.
func locate(src []byte, key, value string) ([]string, string, *doc, loc, error) {
	segs, err := splitPath(key)
	if err != nil {
		return nil, "", nil, loc{}, err
	}
	if value, err = checkValue(key, value); err != nil {
		return nil, "", nil, loc{}, err
	}
	d, err := load(src, key)
	if err != nil {
		return nil, "", nil, loc{}, err
	}
	at, err := find(d.root, segs, key)
	return segs, value, d, at, err
}

// Insert returns src with a new key under the mapping at parent ("" for the
// document's root) whose value is v (any Go value: a map[string]any,
// yaml.MapSlice, []any, a string, a number...), refusing a key that exists.
func Insert(src []byte, parent, key string, v any) ([]byte, error) {
	full := key
	var psegs []string
	if parent != "" {
		full = parent + "." + key
		var err error
		if psegs, err = splitPath(parent); err != nil {
			return nil, err
		}
	}
	if key == "" {
		return nil, fmt.Errorf("%s: empty key", full)
	}
	r, want, err := render(full, v)
	if err != nil {
		return nil, err
	}
	d, err := load(src, full)
	if err != nil {
		return nil, err
	}
	at, err := find(d.root, psegs, full)
	if err != nil {
		return nil, err
	}
	if at.depth < len(psegs) {
		return nil, fmt.Errorf("%s: not found", strings.Join(psegs[:at.depth+1], "."))
	}
	switch n := unwrap(at.node).(type) {
	case *ast.MappingNode:
		if lookup(n.Values, key) != nil {
			return nil, fmt.Errorf("%s: already exists", full)
		}
	case *ast.MappingValueNode:
		if lookup([]*ast.MappingValueNode{n}, key) != nil {
			return nil, fmt.Errorf("%s: already exists", full)
		}
	case nil, *ast.NullNode:
	default:
		if parent == "" {
			return nil, fmt.Errorf("%s: the document is not a mapping", full)
		}
		return nil, fmt.Errorf("%s: not a mapping", parent)
	}
	segs := append(slices.Clone(psegs), key)
	edits, err := d.create(full, segs, at, r)
	if err != nil {
		return nil, err
	}
	return finish(src, edits, full, segs, false, want)
}

// splitPath splits a dotted key path into its segments.
func splitPath(key string) ([]string, error) {
	if key == "" {
		return nil, errors.New("empty key")
	}
	segs := strings.Split(key, ".")
	if slices.Contains(segs, "") {
		return nil, fmt.Errorf("%s: empty path segment", key)
	}
	return segs, nil
}

// isIndex reports whether a path segment is a decimal number, which indexes a
// sequence.
func isIndex(seg string) bool {
	for _, c := range seg {
		if c < '0' || c > '9' {
			return false
		}
	}
	return seg != ""
}

// checkValue trims value and checks that it is a YAML scalar or flow text that
// fits on the line of its key.
func checkValue(key, value string) (string, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return "", fmt.Errorf(`%s: empty value (write null or "" for an empty one)`, key)
	}
	if strings.ContainsAny(value, "\r\n") {
		return "", fmt.Errorf("%s: value %q spans lines; give a scalar or flow text", key, value)
	}
	f, err := parser.ParseBytes([]byte(value), 0)
	if err != nil {
		return "", fmt.Errorf("%s: value %q is not YAML: %w", key, value, err)
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return "", fmt.Errorf("%s: value %q is not a YAML value", key, value)
	}
	block := false
	switch n := unwrap(f.Docs[0].Body).(type) {
	case *ast.MappingNode:
		block = !n.IsFlowStyle
	case *ast.MappingValueNode:
		block = !n.IsFlowStyle
	case *ast.SequenceNode:
		block = !n.IsFlowStyle
	case *ast.LiteralNode, *ast.CommentGroupNode:
		block = true
	}
	if block {
		return "", fmt.Errorf("%s: value %q is not a scalar or flow text (quote it, or write {k: v} or [a, b])", key, value)
	}
	return value, nil
}

// rendered is a new value ready to be written either inline (after "key: " or
// inside a flow collection) or, when lines is set, as block YAML: head after
// "key:" on the key's line and lines below it, relative to the value's indentation.
type rendered struct {
	inline string
	head   string
	lines  []string
}

// render marshals a Go value for Insert, returning it in both styles and the
// text it must read back as.
func render(key string, v any) (rendered, []byte, error) {
	block, err := yaml.MarshalWithOptions(v, yaml.Indent(indentStep), yaml.IndentSequence(true))
	if err != nil {
		return rendered{}, nil, fmt.Errorf("%s: %w", key, err)
	}
	flow, err := yaml.MarshalWithOptions(v, yaml.Flow(true))
	if err != nil {
		return rendered{}, nil, fmt.Errorf("%s: %w", key, err)
	}
	r := rendered{inline: strings.TrimRight(string(flow), "\n")}
	f, err := parser.ParseBytes(block, 0)
	if err != nil {
		return rendered{}, nil, fmt.Errorf("%s: cannot write the value as YAML: %w", key, err)
	}
	lines := strings.Split(strings.TrimRight(string(block), "\n"), "\n")
	var body ast.Node
	if len(f.Docs) > 0 {
		body = unwrap(f.Docs[0].Body)
	}
	switch n := body.(type) {
	case *ast.MappingNode:
		if !n.IsFlowStyle {
			r.lines = dedent(lines)
		}
	case *ast.MappingValueNode:
		r.lines = dedent(lines)
	case *ast.SequenceNode:
		if !n.IsFlowStyle {
			r.lines = dedent(lines)
		}
	default:
		if len(lines) > 1 {
			// A multi-line scalar: its header ("|-") stays on the key's line.
			r.head, r.lines = lines[0], dedent(lines[1:])
		}
	}
	return r, block, nil
}

// dedent removes the indentation the non-empty lines have in common.
func dedent(lines []string) []string {
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); common < 0 || n < common {
			common = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			out[i] = l[common:]
		}
	}
	return out
}

// span is the byte range of a token's text in the source, without the
// whitespace around it.
type span struct{ start, end int }

// doc is a parsed source with the byte span of each of its tokens.
type doc struct {
	src   []byte
	spans map[*token.Token]span
	root  ast.Node // nil for a document without content
}

// load parses src and locates its tokens. The lexer's tokens carry their
// original text (Origin) with the whitespace around it, and together they spell
// out the source, so their running length is each token's byte offset.
func load(src []byte, key string) (*doc, error) {
	tokens := lexer.Tokenize(string(src))
	spans := make(map[*token.Token]span, len(tokens))
	off, aligned := 0, true
	for _, tk := range tokens {
		o := tk.Origin
		if !bytes.HasPrefix(src[off:], []byte(o)) {
			aligned = false
			break
		}
		lead := len(o) - len(strings.TrimLeft(o, " \t\r\n"))
		core := strings.TrimRight(o[lead:], " \t\r\n")
		spans[tk] = span{off + lead, off + lead + len(core)}
		off += len(o)
	}
	f, err := parser.Parse(tokens, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("%s: the file does not parse: %w", key, err)
	}
	if !aligned {
		return nil, fmt.Errorf("%s: cannot locate the file's tokens in its text", key)
	}
	root, err := rootOf(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &doc{src: src, spans: spans, root: root}, nil
}

// rootOf returns the content of a file's one document, nil if it has none.
func rootOf(f *ast.File) (ast.Node, error) {
	var root ast.Node
	for _, dn := range f.Docs {
		body := dn.Body
		if _, ok := body.(*ast.CommentGroupNode); ok || body == nil {
			continue
		}
		if root != nil {
			return nil, errors.New("the file holds more than one document")
		}
		root = body
	}
	return root, nil
}

// loc is where a path lookup stopped: node is the value at the first depth
// segments of the path.
type loc struct {
	node  ast.Node
	depth int
	// anchor is the ':' or '-' token node hangs off (nil for the document's
	// root), owner the key that holds it (nil for a sequence item), and flow
	// whether node sits inside a flow collection.
	anchor *token.Token
	owner  ast.Node
	flow   bool
}

// find follows segs from root as far as they exist. It stops early (depth <
// len(segs)) at a mapping that lacks the next key or at an empty (null) value,
// and fails on a path that crosses a scalar or an out-of-range index.
func find(root ast.Node, segs []string, key string) (loc, error) {
	at := loc{node: root}
	for i, seg := range segs {
		switch n := unwrap(at.node).(type) {
		case *ast.MappingNode:
			mv := lookup(n.Values, seg)
			if mv == nil {
				return at, nil
			}
			at = loc{node: mv.Value, depth: i + 1, anchor: mv.Start, owner: mv.Key, flow: n.IsFlowStyle}
		case *ast.MappingValueNode:
			mv := lookup([]*ast.MappingValueNode{n}, seg)
			if mv == nil {
				return at, nil
			}
			at = loc{node: mv.Value, depth: i + 1, anchor: mv.Start, owner: mv.Key, flow: n.IsFlowStyle}
		case *ast.SequenceNode:
			if !isIndex(seg) {
				return loc{}, notA(key, segs[:i], "mapping")
			}
			idx, err := strconv.Atoi(seg)
			if err != nil || idx >= len(n.Values) {
				return loc{}, fmt.Errorf("%s: index %s out of range (%d items)", strings.Join(segs[:i+1], "."), seg, len(n.Values))
			}
			at = loc{node: n.Values[idx], depth: i + 1, flow: n.IsFlowStyle}
			if idx < len(n.Entries) {
				at.anchor = n.Entries[idx].Start
			}
		case nil:
			return at, nil // an empty document
		case *ast.NullNode:
			if i == 0 {
				return loc{}, notA(key, nil, "mapping")
			}
			return at, nil // an empty value, as after "key:"
		case *ast.AliasNode:
			return loc{}, fmt.Errorf("%s: is an alias; edit the node it refers to", strings.Join(segs[:i], "."))
		default:
			if isIndex(seg) {
				return loc{}, notA(key, segs[:i], "sequence or mapping")
			}
			return loc{}, notA(key, segs[:i], "mapping")
		}
	}
	return at, nil
}

// notA is the error for a path that meets a node of the wrong kind at segs.
func notA(key string, segs []string, what string) error {
	if len(segs) == 0 {
		return fmt.Errorf("%s: the document is not a %s", key, what)
	}
	return fmt.Errorf("%s: not a %s", strings.Join(segs, "."), what)
}

// lookup returns the entry of values whose key is seg.
func lookup(values []*ast.MappingValueNode, seg string) *ast.MappingValueNode {
	for _, mv := range values {
		if keyString(mv.Key) == seg {
			return mv
		}
	}
	return nil
}

// keyString is the text of a mapping key as a path segment names it.
func keyString(n ast.Node) string {
	switch k := n.(type) {
	case nil:
		return ""
	case *ast.StringNode:
		return k.Value
	case *ast.MappingKeyNode:
		return keyString(k.Value)
	default:
		return k.GetToken().Value
	}
}

// unwrap returns the node under any anchor or tag.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// replace sets the existing value at at to value.
func (d *doc) replace(key string, at loc, value string) ([]edit, error) {
	n := unwrap(at.node)
	switch v := n.(type) {
	case *ast.MappingNode:
		if !v.IsFlowStyle {
			return nil, fmt.Errorf("%s: is a block mapping; set its keys one by one", key)
		}
	case *ast.MappingValueNode:
		if !v.IsFlowStyle {
			return nil, fmt.Errorf("%s: is a block mapping; set its keys one by one", key)
		}
	case *ast.SequenceNode:
		if !v.IsFlowStyle {
			return nil, fmt.Errorf("%s: is a block sequence; set its items one by one, or Append to it", key)
		}
	}
	// Replace the value with any tag it has (the new value is typed by its own
	// text) but after any anchor (aliases elsewhere still refer to it).
	target := at.node
	for {
		a, ok := target.(*ast.AnchorNode)
		if !ok {
			break
		}
		target = a.Value
	}
	if b, ok := d.bounds(target); ok {
		return []edit{{b.start, b.end, value}}, nil
	}
	// An empty value: write it after its ':' or '-'.
	a, ok := d.span(at.anchor)
	if !ok {
		return nil, fmt.Errorf("%s: cannot locate the value", key)
	}
	return []edit{{a.end, a.end, " " + value}}, nil
}

// createPath is create for a path whose missing segments must all be mapping
// keys: a number there would index a sequence that does not exist.
func (d *doc) createPath(key string, segs []string, at loc, r rendered) ([]edit, error) {
	for i := at.depth; i < len(segs); i++ {
		if isIndex(segs[i]) {
			return nil, fmt.Errorf("%s: no sequence at %s to index (Append adds items)", key, strings.Join(segs[:i], "."))
		}
	}
	return d.create(key, segs, at, r)
}

// create writes the missing keys segs[at.depth:] with value r under the
// mapping (or empty value) at which find stopped.
func (d *doc) create(key string, segs []string, at loc, r rendered) ([]edit, error) {
	keys := segs[at.depth:]
	switch n := unwrap(at.node).(type) {
	case *ast.MappingNode:
		if n.IsFlowStyle {
			return d.addFlow(key, n, keys, r)
		}
		return d.addBlock(n.Values, keys, r), nil
	case *ast.MappingValueNode:
		if n.IsFlowStyle {
			return nil, fmt.Errorf("%s: cannot add to a flow mapping without braces", key)
		}
		return d.addBlock([]*ast.MappingValueNode{n}, keys, r), nil
	case nil, *ast.NullNode:
		if at.anchor == nil {
			return d.addRoot(keys, r), nil
		}
		return d.fillNull(key, at, keys, r)
	default:
		return nil, fmt.Errorf("%s: not a mapping", strings.Join(segs[:at.depth], "."))
	}
}

// addBlock adds keys after the last entry of a block mapping, indented like its
// entries.
func (d *doc) addBlock(values []*ast.MappingValueNode, keys []string, r rendered) []edit {
	first, _ := d.bounds(values[0])
	indent := d.column(first.start)
	last, _ := d.bounds(values[len(values)-1])
	sep := "\n"
	if len(values) > 1 && d.blankBefore(last.start) {
		sep = "\n\n"
	}
	text := strings.Join(entryLines(indent, keys, r), "\n")
	return []edit{d.insertAfter(last.end, indent, sep+text)}
}

// addFlow adds keys before the closing brace of a flow mapping.
func (d *doc) addFlow(key string, m *ast.MappingNode, keys []string, r rendered) ([]edit, error) {
	text, err := flowEntry(key, keys, r)
	if err != nil {
		return nil, err
	}
	if len(m.Values) == 0 {
		s, ok := d.span(m.Start)
		if !ok {
			return nil, fmt.Errorf("%s: cannot locate the mapping", key)
		}
		return []edit{{s.end, s.end, text}}, nil
	}
	last, _ := d.bounds(m.Values[len(m.Values)-1])
	return []edit{{last.end, last.end, ", " + text}}, nil
}

// addRoot adds keys to a document that has no content yet.
func (d *doc) addRoot(keys []string, r rendered) []edit {
	text := strings.Join(entryLines(0, keys, r), "\n") + "\n"
	if len(d.src) > 0 && d.src[len(d.src)-1] != '\n' {
		text = "\n" + text
	}
	return []edit{{len(d.src), len(d.src), text}}
}

// fillNull writes keys (or, with none, the value itself) in place of the empty
// value at at, as in "key:" or "key: null".
func (d *doc) fillNull(key string, at loc, keys []string, r rendered) ([]edit, error) {
	a, ok := d.span(at.anchor)
	if !ok {
		return nil, fmt.Errorf("%s: cannot locate the value", key)
	}
	// The text to replace: nothing after the ':' or '-', or an explicit "null"
	// or "~" (keeping an anchor or tag before it).
	cut := span{a.end, a.end}
	if b, ok := d.bounds(unwrap(at.node)); ok {
		cut = b
		if at.node == unwrap(at.node) {
			cut.start = a.end
		}
	}
	space := ""
	if cut.start == a.end {
		space = " "
	}
	if at.flow || (len(keys) == 0 && r.lines == nil) {
		text, err := flowValue(key, keys, r)
		if err != nil {
			return nil, err
		}
		return []edit{{cut.start, cut.end, space + text}}, nil
	}
	indent := d.column(a.start) + indentStep
	if o, ok := d.bounds(at.owner); ok {
		indent = d.column(o.start) + indentStep
	}
	head, lines := hang(indent, keys, r)
	if head != "" {
		head = space + head
	}
	below := "\n" + strings.Join(lines, "\n")
	// Below the line, after any comment ending it.
	if eol := d.lineEnd(cut.end); eol > cut.end {
		return []edit{{cut.start, cut.end, head}, {eol, eol, below}}, nil
	}
	return []edit{{cut.start, cut.end, head + below}}, nil
}

// appendItem adds an item after the last one of a sequence.
func (d *doc) appendItem(s *ast.SequenceNode, value string) []edit {
	if s.IsFlowStyle {
		if len(s.Values) == 0 {
			b, _ := d.span(s.Start)
			return []edit{{b.end, b.end, value}}
		}
		last, _ := d.bounds(s.Values[len(s.Values)-1])
		return []edit{{last.end, last.end, ", " + value}}
	}
	dash := s.Start
	if len(s.Entries) > 0 {
		dash = s.Entries[len(s.Entries)-1].Start
	}
	ds, _ := d.span(dash)
	indent := d.column(ds.start)
	all, _ := d.bounds(s)
	sep := "\n"
	if len(s.Entries) > 1 && d.blankBefore(ds.start) {
		sep = "\n\n"
	}
	return []edit{d.insertAfter(all.end, indent, sep+strings.Repeat(" ", indent)+"- "+value)}
}

// entryLines writes keys, nested, with r as the value of the last, the first
// key at indent.
func entryLines(indent int, keys []string, r rendered) []string {
	line := strings.Repeat(" ", indent) + quoteKey(keys[0]) + ":"
	head, lines := hang(indent+indentStep, keys[1:], r)
	if head != "" {
		line += " " + head
	}
	return append([]string{line}, lines...)
}

// hang writes what follows a key: keys as nested mappings ending in r, or r
// alone. head goes on the key's line, lines below it at indent.
func hang(indent int, keys []string, r rendered) (head string, lines []string) {
	if len(keys) > 0 {
		return "", entryLines(indent, keys, r)
	}
	if r.lines == nil {
		return r.inline, nil
	}
	pad := strings.Repeat(" ", indent)
	for _, l := range r.lines {
		if l != "" {
			l = pad + l
		}
		lines = append(lines, l)
	}
	return r.head, lines
}

// flowEntry writes keys, nested, with r as the value of the last, in flow
// style: "a: {b: value}".
func flowEntry(key string, keys []string, r rendered) (string, error) {
	v, err := flowValue(key, keys[1:], r)
	if err != nil {
		return "", err
	}
	return quoteKey(keys[0]) + ": " + v, nil
}

// flowValue writes keys as nested flow mappings ending in r, or r alone.
func flowValue(key string, keys []string, r rendered) (string, error) {
	if len(keys) == 0 {
		if strings.ContainsAny(r.inline, "\r\n") {
			return "", fmt.Errorf("%s: the value spans lines and cannot be written in flow style", key)
		}
		return r.inline, nil
	}
	v, err := flowEntry(key, keys, r)
	if err != nil {
		return "", err
	}
	return "{" + v + "}", nil
}

// quoteKey returns k as a mapping key, quoted when it would otherwise read as
// something else.
func quoteKey(k string) string {
	if token.IsNeedQuoted(k) || strings.ContainsAny(k, ",[]{}#\"'\t\r\n") {
		return strconv.Quote(k)
	}
	return k
}

// insertAfter inserts text at the end of the line on which offset end falls,
// after any comment lines indented deeper than indent that follow it (they
// belong to the block that ends there).
func (d *doc) insertAfter(end, indent int, text string) edit {
	p := d.lineEnd(end)
	for p < len(d.src) {
		next := d.src[p+1 : d.lineEnd(p+1)]
		body := bytes.TrimLeft(next, " ")
		if !bytes.HasPrefix(body, []byte("#")) || len(next)-len(body) <= indent {
			break
		}
		p = d.lineEnd(p + 1)
	}
	return edit{p, p, text}
}

// blankBefore reports whether a blank line precedes the line of offset start,
// above any comment lines directly over it.
func (d *doc) blankBefore(start int) bool {
	ls := d.lineStart(start)
	for ls > 0 {
		prev := d.lineStart(ls - 1)
		line := bytes.TrimSpace(d.src[prev : ls-1])
		switch {
		case len(line) == 0:
			return true
		case line[0] != '#':
			return false
		}
		ls = prev
	}
	return false
}

// lineStart returns the offset of the start of the line holding offset i.
func (d *doc) lineStart(i int) int {
	return bytes.LastIndexByte(d.src[:i], '\n') + 1
}

// lineEnd returns the offset of the newline ending the line holding offset i,
// or the length of the source on its last line.
func (d *doc) lineEnd(i int) int {
	if j := bytes.IndexByte(d.src[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(d.src)
}

// column returns the column, in bytes, of offset i.
func (d *doc) column(i int) int {
	return i - d.lineStart(i)
}

// span returns the location of a token; tokens the parser made up (the null
// of an empty value) have none.
func (d *doc) span(tk *token.Token) (span, bool) {
	if tk == nil {
		return span{}, false
	}
	s, ok := d.spans[tk]
	return s, ok
}

// bounds returns the byte range a node covers, comments excluded; ok is false
// for a node with no text of its own (an empty value).
func (d *doc) bounds(n ast.Node) (b span, ok bool) {
	add := func(s span, found bool) {
		if !found {
			return
		}
		if !ok {
			b, ok = s, true
			return
		}
		b.start, b.end = min(b.start, s.start), max(b.end, s.end)
	}
	tok := func(tk *token.Token) { add(d.span(tk)) }
	node := func(c ast.Node) { add(d.bounds(c)) }
	switch n := n.(type) {
	case nil, *ast.CommentGroupNode:
	case *ast.MappingNode:
		tok(n.Start)
		tok(n.End)
		for _, v := range n.Values {
			node(v)
		}
	case *ast.MappingValueNode:
		node(n.Key)
		tok(n.Start)
		node(n.Value)
	case *ast.MappingKeyNode:
		tok(n.Start)
		node(n.Value)
	case *ast.SequenceNode:
		tok(n.Start)
		tok(n.End)
		for _, e := range n.Entries {
			tok(e.Start)
		}
		for _, v := range n.Values {
			node(v)
		}
	case *ast.LiteralNode:
		tok(n.Start)
		if n.Value != nil {
			node(n.Value)
		}
	case *ast.AnchorNode:
		tok(n.Start)
		node(n.Name)
		node(n.Value)
	case *ast.AliasNode:
		tok(n.Start)
		node(n.Value)
	case *ast.TagNode:
		tok(n.Start)
		node(n.Value)
	default:
		tok(n.GetToken())
	}
	return b, ok
}

// finish applies edits to src and checks the result: it must parse, and the
// value at segs (its last item, for an Append) must read back as want.
func finish(src []byte, edits []edit, key string, segs []string, last bool, want []byte) ([]byte, error) {
	slices.SortStableFunc(edits, func(a, b edit) int { return b.start - a.start })
	out := slices.Clone(src)
	for _, e := range edits {
		out = slices.Concat(out[:e.start], []byte(e.text), out[e.end:])
	}
	f, err := parser.ParseBytes(out, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("%s: the edit would leave the file unparsable: %w", key, err)
	}
	root, err := rootOf(f)
	if err != nil {
		return nil, fmt.Errorf("%s: the edit would split the file: %w", key, err)
	}
	at, err := find(root, segs, key)
	if err != nil || at.depth < len(segs) {
		return nil, fmt.Errorf("%s: the edit did not take (the value may need quoting)", key)
	}
	got := at.node
	if s, ok := unwrap(got).(*ast.SequenceNode); last && ok && len(s.Values) > 0 {
		got = s.Values[len(s.Values)-1]
	}
	// A value that cannot be decoded alone (an alias, say) is left to the
	// parse above.
	var wantV, gotV any
	decoded := yaml.Unmarshal(want, &wantV) == nil && yaml.NodeToValue(got, &gotV) == nil
	if decoded && !reflect.DeepEqual(wantV, gotV) {
		return nil, fmt.Errorf("%s: %s would read back as %v here (the value may need quoting)", key, bytes.TrimSpace(want), gotV)
	}
	return out, nil
}
