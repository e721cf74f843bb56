package observe

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// FromOTLP flattens an OTLP export request (as received over OTLP/HTTP protobuf).
func FromOTLP(req *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		res := protoAttrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					TraceID:    hex.EncodeToString(s.GetTraceId()),
					SpanID:     hex.EncodeToString(s.GetSpanId()),
					ParentID:   hex.EncodeToString(s.GetParentSpanId()),
					Service:    res["service.name"],
					Instance:   res["service.instance.id"],
					Name:       s.GetName(),
					Kind:       kindOf(int(s.GetKind())),
					Start:      time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:        time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Error:      s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Status:     s.GetStatus().GetMessage(),
					Attributes: protoAttrs(s.GetAttributes()),
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, Event{Name: e.GetName(), Time: time.Unix(0, int64(e.GetTimeUnixNano())),
						Attributes: protoAttrs(e.GetAttributes())})
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func protoAttrs(kvs []*commonpb.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(x.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = strconv.FormatBool(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
		default:
			m[kv.GetKey()] = fmt.Sprint(v)
		}
	}
	return m
}

func kindOf(k int) Kind {
	switch k {
	case 2:
		return Server
	case 3:
		return Client
	case 4:
		return Producer
	case 5:
		return Consumer
	}
	return Internal
}

// OTLP/JSON, as the OpenTelemetry protocol specifies it: ids are hex strings, 64-bit
// integers are decimal strings, enums are numbers. We decode it ourselves because
// protojson would read the ids as base64.
type (
	otlpJSON struct {
		ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
	}
	otlpResourceSpans struct {
		Resource struct {
			Attributes []otlpKV `json:"attributes,omitempty"`
		} `json:"resource"`
		ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
	}
	otlpScopeSpans struct {
		Scope struct {
			Name string `json:"name,omitempty"`
		} `json:"scope"`
		Spans []otlpSpan `json:"spans"`
	}
	otlpSpan struct {
		TraceID      string      `json:"traceId"`
		SpanID       string      `json:"spanId"`
		ParentSpanID string      `json:"parentSpanId,omitempty"`
		Name         string      `json:"name"`
		Kind         otlpEnum    `json:"kind"`
		Start        otlpInt     `json:"startTimeUnixNano"`
		End          otlpInt     `json:"endTimeUnixNano"`
		Attributes   []otlpKV    `json:"attributes,omitempty"`
		Events       []otlpEvent `json:"events,omitempty"`
		Status       struct {
			Code    otlpEnum `json:"code,omitempty"`
			Message string   `json:"message,omitempty"`
		} `json:"status"`
	}
	otlpEvent struct {
		Time       otlpInt  `json:"timeUnixNano"`
		Name       string   `json:"name"`
		Attributes []otlpKV `json:"attributes,omitempty"`
	}
	otlpKV struct {
		Key   string `json:"key"`
		Value struct {
			String *string          `json:"stringValue,omitempty"`
			Int    *otlpInt         `json:"intValue,omitempty"`
			Bool   *bool            `json:"boolValue,omitempty"`
			Double *float64         `json:"doubleValue,omitempty"`
			Other  *json.RawMessage `json:"arrayValue,omitempty"`
		} `json:"value"`
	}
)

// otlpInt is a uint64 written as a decimal string (or, leniently, a number).
type otlpInt uint64

func (n *otlpInt) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = otlpInt(v)
	return nil
}

func (n otlpInt) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(n), 10) + `"`), nil
}

// otlpEnum is an enum written as its number or (protojson's way) its name.
type otlpEnum int

var enumNames = map[string]otlpEnum{
	"SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
	"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
}

func (e *otlpEnum) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if v, ok := enumNames[s]; ok {
		*e = v
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("unknown enum value %s", b)
	}
	*e = otlpEnum(v)
	return nil
}

func (kv otlpKV) String() string {
	switch v := kv.Value; {
	case v.String != nil:
		return *v.String
	case v.Int != nil:
		return strconv.FormatUint(uint64(*v.Int), 10)
	case v.Bool != nil:
		return strconv.FormatBool(*v.Bool)
	case v.Double != nil:
		return strconv.FormatFloat(*v.Double, 'g', -1, 64)
	case v.Other != nil:
		return string(*v.Other)
	}
	return ""
}

func jsonAttrs(kvs []otlpKV) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.String()
	}
	return m
}

// DecodeOTLPJSON reads spans from an OTLP/JSON export request — what an
// OpenTelemetry Collector's file exporter writes, one request per line, or one
// request as a whole document.
func DecodeOTLPJSON(data []byte) ([]Span, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	var out []Span
	for n := 1; dec.More(); n++ {
		var doc otlpJSON
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("OTLP JSON document %d: %w", n, err)
		}
		for _, rs := range doc.ResourceSpans {
			res := jsonAttrs(rs.Resource.Attributes)
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if !validID(s.TraceID, 32) || !validID(s.SpanID, 16) || (s.ParentSpanID != "" && !validID(s.ParentSpanID, 16)) {
						return nil, fmt.Errorf("OTLP JSON document %d: span %q: traceId must be 32 and spanId 16 hex digits", n, s.Name)
					}
					sp := Span{TraceID: strings.ToLower(s.TraceID), SpanID: strings.ToLower(s.SpanID), ParentID: strings.ToLower(s.ParentSpanID),
						Service: res["service.name"], Instance: res["service.instance.id"], Name: s.Name, Kind: kindOf(int(s.Kind)),
						Start: time.Unix(0, int64(s.Start)), End: time.Unix(0, int64(s.End)),
						Error: s.Status.Code == 2, Status: s.Status.Message, Attributes: jsonAttrs(s.Attributes)}
					for _, e := range s.Events {
						sp.Events = append(sp.Events, Event{Name: e.Name, Time: time.Unix(0, int64(e.Time)), Attributes: jsonAttrs(e.Attributes)})
					}
					out = append(out, sp)
				}
			}
		}
	}
	return out, nil
}

// ValidTraceID reports whether s is a trace id: 32 hex digits.
func ValidTraceID(s string) bool { return validID(s, 32) }

func validID(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

var kindNumbers = map[Kind]otlpEnum{Internal: 1, Server: 2, Client: 3, Producer: 4, Consumer: 5}

// EncodeOTLPJSON writes spans as one OTLP/JSON export request, a resource per
// service instance: the file `switchyard diagram --file` reads back.
func EncodeOTLPJSON(spans []Span) ([]byte, error) {
	var doc otlpJSON
	index := map[[2]string]int{}
	for _, sp := range spans {
		key := [2]string{sp.Service, sp.Instance}
		i, ok := index[key]
		if !ok {
			rs := otlpResourceSpans{ScopeSpans: []otlpScopeSpans{{}}}
			rs.Resource.Attributes = []otlpKV{stringKV("service.name", sp.Service), stringKV("service.instance.id", sp.Instance)}
			rs.ScopeSpans[0].Scope.Name = "switchyard"
			doc.ResourceSpans = append(doc.ResourceSpans, rs)
			i = len(doc.ResourceSpans) - 1
			index[key] = i
		}
		s := otlpSpan{TraceID: sp.TraceID, SpanID: sp.SpanID, ParentSpanID: sp.ParentID, Name: sp.Name, Kind: kindNumbers[sp.Kind],
			Start: otlpInt(sp.Start.UnixNano()), End: otlpInt(sp.End.UnixNano()), Attributes: stringKVs(sp.Attributes)}
		if sp.Error {
			s.Status.Code, s.Status.Message = 2, sp.Status
		}
		for _, e := range sp.Events {
			s.Events = append(s.Events, otlpEvent{Time: otlpInt(e.Time.UnixNano()), Name: e.Name, Attributes: stringKVs(e.Attributes)})
		}
		ss := &doc.ResourceSpans[i].ScopeSpans[0]
		ss.Spans = append(ss.Spans, s)
	}
	return json.Marshal(doc)
}

func stringKV(k, v string) otlpKV {
	kv := otlpKV{Key: k}
	kv.Value.String = &v
	return kv
}

func stringKVs(m map[string]string) []otlpKV {
	out := make([]otlpKV, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, stringKV(k, m[k]))
	}
	return out
}
