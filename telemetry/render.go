package telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Render turns one JSON log line written by a Logger into a compact line for a human:
// "15:04:05.000 INFO  request method=GET route=/v1/products status=200". The service
// attribute is left out (the caller usually prefixes lines with it). A line that is
// not a JSON object is returned unchanged.
func Render(line []byte) []byte {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return line
	}
	var rec map[string]any
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil {
		return line
	}
	var b strings.Builder
	if ts, ok := rec["time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			b.WriteString(t.Local().Format("15:04:05.000"))
			b.WriteByte(' ')
		}
	}
	level, _ := rec["level"].(string)
	fmt.Fprintf(&b, "%-5s ", level)
	msg, _ := rec["msg"].(string)
	b.WriteString(msg)
	keys := make([]string, 0, len(rec))
	for k := range rec {
		switch k {
		case "time", "level", "msg", "service":
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keyRank(keys[i]) < keyRank(keys[j]) || keyRank(keys[i]) == keyRank(keys[j]) && keys[i] < keys[j]
	})
	for _, k := range keys {
		v := rec[k]
		var s string
		switch x := v.(type) {
		case string:
			s = x
			if strings.ContainsAny(s, " \t\n\"=") {
				s = fmt.Sprintf("%q", s)
			}
		default:
			j, _ := json.Marshal(x)
			s = string(j)
		}
		fmt.Fprintf(&b, " %s=%s", k, s)
	}
	return []byte(b.String())
}

// keyRank orders the attributes people read first before the rest, and the
// correlation ids last.
func keyRank(k string) int {
	switch k {
	case "method", "route", "status", "duration_ms", "error":
		return 0
	case "trace_id", "span_id", "request_id":
		return 2
	default:
		return 1
	}
}
