package observe

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Jaeger's query API (GET /api/traces?service=..., GET /api/traces/{id}) answers
// with this document; `switchyard diagram --jaeger URL` reads it.
type (
	jaegerDoc struct {
		Data []jaegerTrace `json:"data"`
	}
	jaegerTrace struct {
		TraceID   string                   `json:"traceID"`
		Spans     []jaegerSpan             `json:"spans"`
		Processes map[string]jaegerProcess `json:"processes"`
	}
	jaegerSpan struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		StartTime int64       `json:"startTime"` // microseconds since 1970
		Duration  int64       `json:"duration"`  // microseconds
		Tags      []jaegerTag `json:"tags"`
		Logs      []struct {
			Timestamp int64       `json:"timestamp"`
			Fields    []jaegerTag `json:"fields"`
		} `json:"logs"`
		ProcessID string `json:"processID"`
	}
	jaegerProcess struct {
		ServiceName string      `json:"serviceName"`
		Tags        []jaegerTag `json:"tags"`
	}
	jaegerTag struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
)

// DecodeJaeger reads the spans of a Jaeger query API answer.
func DecodeJaeger(data []byte) ([]Span, error) {
	var doc jaegerDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jaeger answer: %w", err)
	}
	var out []Span
	for _, t := range doc.Data {
		for _, s := range t.Spans {
			proc := t.Processes[s.ProcessID]
			tags := jaegerTags(s.Tags)
			sp := Span{
				TraceID: padID(s.TraceID, 32), SpanID: padID(s.SpanID, 16),
				Service: proc.ServiceName, Instance: jaegerTags(proc.Tags)["service.instance.id"],
				Name: s.OperationName, Kind: Kind(strings.ToLower(tags["span.kind"])),
				Start: time.UnixMicro(s.StartTime), End: time.UnixMicro(s.StartTime + s.Duration),
				Error:  tags["error"] == "true" || tags["otel.status_code"] == "ERROR",
				Status: tags["otel.status_description"], Attributes: tags,
			}
			if sp.Kind == "" {
				sp.Kind = Internal
			}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" || sp.ParentID == "" {
					sp.ParentID = padID(r.SpanID, 16)
				}
			}
			for _, l := range s.Logs {
				f := jaegerTags(l.Fields)
				sp.Events = append(sp.Events, Event{Name: f["event"], Time: time.UnixMicro(l.Timestamp), Attributes: f})
			}
			out = append(out, sp)
		}
	}
	return out, nil
}

func jaegerTags(tags []jaegerTag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = fmt.Sprint(t.Value)
	}
	return m
}

// padID left-pads a hex id Jaeger shortened (it drops leading zeros).
func padID(id string, n int) string {
	id = strings.ToLower(id)
	if len(id) < n {
		id = strings.Repeat("0", n-len(id)) + id
	}
	return id
}
