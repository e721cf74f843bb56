package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Example returns data for an event of type typ that its schema accepts, drawn
// with rnd: every required property and, by chance, some optional ones; strings
// within their lengths, pattern and format; numbers within their bounds; one of
// an enum. Simulated services publish such data, and it is checked against the
// schema before it is returned (a schema too intricate to satisfy in a few draws
// is an error).
//
// No maintained Go library generates instances from a compiled JSON Schema (the
// ones that exist fake Go structs, or target other drafts); this walks the schema
// the registry already compiled, so it agrees with Validate by construction.
func (r *Registry) Example(typ string, rnd *rand.Rand) (any, error) {
	sch, ok := r.schemas[typ]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrNoSchema, typ)
	}
	var last error
	for range 20 {
		v, err := example(sch, rnd, 0)
		if err != nil {
			return nil, fmt.Errorf("example of %s: %w", typ, err)
		}
		if last = validateValue(sch, v); last == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("example of %s: no draw satisfied the schema: %s", typ, schemaDetail(last))
}

// validateValue checks v as it will travel: through JSON.
func validateValue(sch *jsonschema.Schema, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return sch.Validate(doc)
}

const maxDepth = 12

func example(s *jsonschema.Schema, rnd *rand.Rand, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("schema nests deeper than %d levels (a recursive $ref?) at %s", maxDepth, s.Location)
	}
	switch {
	case s.Bool != nil && !*s.Bool:
		return nil, fmt.Errorf("schema %s accepts nothing", s.Location)
	case s.Const != nil:
		return *s.Const, nil
	case s.Enum != nil && len(s.Enum.Values) > 0:
		return s.Enum.Values[rnd.IntN(len(s.Enum.Values))], nil
	case s.Ref != nil && s.Types == nil && len(s.Properties) == 0:
		return example(s.Ref, rnd, depth+1)
	case len(s.OneOf) > 0:
		return example(s.OneOf[rnd.IntN(len(s.OneOf))], rnd, depth+1)
	case len(s.AnyOf) > 0:
		return example(s.AnyOf[rnd.IntN(len(s.AnyOf))], rnd, depth+1)
	}
	switch typeOf(s, rnd) {
	case "null":
		return nil, nil
	case "boolean":
		return rnd.IntN(2) == 1, nil
	case "integer":
		return integer(s, rnd), nil
	case "number":
		return number(s, rnd), nil
	case "array":
		return array(s, rnd, depth)
	case "object":
		return object(s, rnd, depth)
	default:
		return str(s, rnd)
	}
}

// typeOf picks the type to draw: one the schema allows (not null when another
// is allowed), else the one its keywords imply.
func typeOf(s *jsonschema.Schema, rnd *rand.Rand) string {
	if s.Types != nil {
		types := s.Types.ToStrings()
		if len(types) > 1 {
			types = slices.DeleteFunc(types, func(t string) bool { return t == "null" })
		}
		return types[rnd.IntN(len(types))]
	}
	all := append([]*jsonschema.Schema{s}, s.AllOf...)
	for _, sub := range all {
		switch {
		case sub.Types != nil && sub != s:
			return typeOf(sub, rnd)
		case len(sub.Properties) > 0 || len(sub.Required) > 0:
			return "object"
		case sub.Items2020 != nil || sub.Items != nil || len(sub.PrefixItems) > 0 || sub.MinItems != nil:
			return "array"
		case sub.Minimum != nil || sub.Maximum != nil || sub.MultipleOf != nil:
			return "number"
		}
	}
	return "string"
}

func object(s *jsonschema.Schema, rnd *rand.Rand, depth int) (any, error) {
	props := map[string]*jsonschema.Schema{}
	var required []string
	for _, sub := range append([]*jsonschema.Schema{s, s.Ref}, s.AllOf...) {
		if sub == nil {
			continue
		}
		for name, p := range sub.Properties {
			props[name] = p
		}
		required = append(required, sub.Required...)
	}
	out := map[string]any{}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names) // the same seed draws the same data
	minProps := 0
	if s.MinProperties != nil {
		minProps = *s.MinProperties
	}
	for _, name := range names {
		if !slices.Contains(required, name) && rnd.IntN(2) == 0 && len(out)+len(required) >= minProps {
			continue
		}
		v, err := example(props[name], rnd, depth+1)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	for _, name := range required {
		if _, ok := out[name]; !ok {
			out[name] = "x" // required but not described: any value
		}
	}
	return out, nil
}

func array(s *jsonschema.Schema, rnd *rand.Rand, depth int) (any, error) {
	lo, hi := sizes(1, 3, s.MinItems, s.MaxItems)
	n := lo + rnd.IntN(hi-lo+1)
	item := s.Items2020
	if it, ok := s.Items.(*jsonschema.Schema); ok && item == nil {
		item = it
	}
	out := make([]any, 0, n)
	for i := range n {
		sub := item
		if i < len(s.PrefixItems) {
			sub = s.PrefixItems[i]
		}
		if sub == nil {
			out = append(out, fmt.Sprintf("item-%d", i))
			continue
		}
		v, err := example(sub, rnd, depth+1)
		if err != nil {
			return nil, err
		}
		if s.UniqueItems && slices.ContainsFunc(out, func(o any) bool { return fmt.Sprint(o) == fmt.Sprint(v) }) {
			continue // fewer items rather than a duplicate; validation retries when too few
		}
		out = append(out, v)
	}
	return out, nil
}

// bounds turns a schema's numeric bounds into a closed interval around [lo, hi].
func bounds(s *jsonschema.Schema, lo, hi float64, step float64) (float64, float64) {
	f := func(r *big.Rat) float64 { v, _ := r.Float64(); return v }
	if s.Minimum != nil {
		lo = f(s.Minimum)
		hi = max(hi, lo+1000*step)
	}
	if s.ExclusiveMinimum != nil {
		lo = f(s.ExclusiveMinimum) + step
		hi = max(hi, lo+1000*step)
	}
	if s.Maximum != nil {
		hi = f(s.Maximum)
		lo = min(lo, hi)
	}
	if s.ExclusiveMaximum != nil {
		hi = f(s.ExclusiveMaximum) - step
		lo = min(lo, hi)
	}
	return lo, hi
}

func integer(s *jsonschema.Schema, rnd *rand.Rand) int64 {
	lo, hi := bounds(s, 0, 1000, 1)
	a, b := int64(math.Ceil(lo)), int64(math.Floor(hi))
	if b < a {
		return a
	}
	v := a + rnd.Int64N(b-a+1)
	if s.MultipleOf != nil {
		if m, _ := s.MultipleOf.Float64(); m >= 1 {
			step := int64(m)
			v = (v / step) * step
			if v < a {
				v += step
			}
		}
	}
	return v
}

func number(s *jsonschema.Schema, rnd *rand.Rand) float64 {
	lo, hi := bounds(s, 0, 1000, 0.01)
	v := lo + rnd.Float64()*(hi-lo)
	if s.MultipleOf != nil {
		m, _ := s.MultipleOf.Float64()
		return math.Ceil(v/m) * m
	}
	return math.Round(v*100) / 100
}

func str(s *jsonschema.Schema, rnd *rand.Rand) (string, error) {
	lo, hi := sizes(6, 16, s.MinLength, s.MaxLength)
	if s.Format != nil {
		if v, ok := formatted(s.Format.Name, rnd); ok {
			return v, nil
		}
	}
	if s.Pattern != nil {
		return fromPattern(s.Pattern.String(), rnd)
	}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	n := lo + rnd.IntN(hi-lo+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rnd.IntN(len(letters))]
	}
	return string(b), nil
}

func formatted(name string, rnd *rand.Rand) (string, bool) {
	now := time.Now().UTC()
	switch name {
	case "date-time":
		return now.Format(time.RFC3339), true
	case "date":
		return now.Format(time.DateOnly), true
	case "time":
		return now.Format("15:04:05Z"), true
	case "duration":
		return fmt.Sprintf("PT%dS", 1+rnd.IntN(3600)), true
	case "email", "idn-email":
		return fmt.Sprintf("user%d@example.com", rnd.IntN(100000)), true
	case "hostname", "idn-hostname":
		return fmt.Sprintf("host%d.example.com", rnd.IntN(1000)), true
	case "ipv4":
		return fmt.Sprintf("10.%d.%d.%d", rnd.IntN(256), rnd.IntN(256), 1+rnd.IntN(254)), true
	case "ipv6":
		return fmt.Sprintf("fd00::%x", 1+rnd.IntN(0xfffe)), true
	case "uri", "iri", "uri-reference", "iri-reference":
		return fmt.Sprintf("https://example.com/%d", rnd.IntN(100000)), true
	case "uuid":
		return uuid.Must(uuid.NewRandomFromReader(randReader{rnd})).String(), true
	}
	return "", false
}

// randReader reads bytes from rnd (uuids that repeat with the seed).
type randReader struct{ rnd *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.rnd.UintN(256))
	}
	return len(p), nil
}

// fromPattern draws a string the regular expression matches.
func fromPattern(pattern string, rnd *rand.Rand) (string, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", fmt.Errorf("pattern %q: %w", pattern, err)
	}
	var b strings.Builder
	draw(re.Simplify(), rnd, &b)
	return b.String(), nil
}

func draw(re *syntax.Regexp, rnd *rand.Rand, b *strings.Builder) {
	repeat := func(lo, hi int) {
		if hi < 0 {
			hi = lo + 3
		}
		for range lo + rnd.IntN(hi-lo+1) {
			draw(re.Sub[0], rnd, b)
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && rnd.IntN(2) == 0 {
				r = unicode.SimpleFold(r)
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		b.WriteRune(fromClass(re.Rune, rnd))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte(byte('a' + rnd.IntN(26)))
	case syntax.OpCapture:
		draw(re.Sub[0], rnd, b)
	case syntax.OpStar:
		repeat(0, 3)
	case syntax.OpPlus:
		repeat(1, 3)
	case syntax.OpQuest:
		repeat(0, 1)
	case syntax.OpRepeat:
		repeat(re.Min, re.Max)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			draw(sub, rnd, b)
		}
	case syntax.OpAlternate:
		draw(re.Sub[rnd.IntN(len(re.Sub))], rnd, b)
	}
	// Anchors, word boundaries and empty matches write nothing.
}

// fromClass draws a rune from a class given as ranges [lo0, hi0, lo1, hi1, ...],
// preferring printable ASCII within them.
func fromClass(ranges []rune, rnd *rand.Rand) rune {
	var ascii []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := max(ranges[i], '!'), min(ranges[i+1], '~')
		for r := lo; r <= hi; r++ {
			ascii = append(ascii, r)
		}
	}
	if len(ascii) > 0 {
		return ascii[rnd.IntN(len(ascii))]
	}
	if len(ranges) < 2 {
		return 'x'
	}
	i := 2 * rnd.IntN(len(ranges)/2)
	return ranges[i] + rune(rnd.IntN(int(ranges[i+1]-ranges[i])+1))
}

// sizes narrows a preferred size range [lo, hi] to the schema's minimum and
// maximum, when it gives them.
func sizes(lo, hi int, minimum, maximum *int) (int, int) {
	if minimum != nil {
		lo = *minimum
		hi = max(hi, lo)
	}
	if maximum != nil {
		hi = min(hi, *maximum)
		lo = min(lo, hi)
	}
	return lo, hi
}
