package simulate

import (
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// raw is a gRPC message as bytes on the wire: a simulated method answers and calls
// any method, whether or not the binary links its generated code.
type raw struct{ b []byte }

// rawCodec stands in for connect's proto codec, passing bytes through.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(*raw)
	if !ok {
		return nil, fmt.Errorf("simulate: cannot marshal %T", v)
	}
	return m.b, nil
}

func (rawCodec) Unmarshal(b []byte, v any) error {
	m, ok := v.(*raw)
	if !ok {
		return fmt.Errorf("simulate: cannot unmarshal into %T", v)
	}
	m.b = append(m.b[:0], b...)
	return nil
}

// method is what the binary knows of a gRPC method: its descriptor when its
// generated code is linked (then requests and answers are real messages), else
// nothing (then answers are filler).
type method struct {
	desc protoreflect.MethodDescriptor
}

// lookupMethod finds "package.Service/Method" among the linked descriptors.
func lookupMethod(name string) method {
	full := protoreflect.FullName(strings.Replace(name, "/", ".", 1))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(full)
	if err != nil {
		return method{}
	}
	md, _ := d.(protoreflect.MethodDescriptor)
	return method{desc: md}
}

// known reports whether the method's messages can be built and read.
func (m method) known() bool { return m.desc != nil }

// encode turns v (decoded JSON, a template rendered) into the wire form of the
// method's input (in) or output message.
func (m method) encode(v any, in bool) ([]byte, error) {
	md := m.desc.Output()
	if in {
		md = m.desc.Input()
	}
	msg := dynamicpb.NewMessage(md)
	if v != nil {
		js, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, msg); err != nil {
			return nil, fmt.Errorf("%s: %w", md.FullName(), err)
		}
	}
	return proto.Marshal(msg)
}

// decode reads the wire form of the method's input (in) or output into decoded
// JSON, for templates; nil when it does not parse.
func (m method) decode(b []byte, in bool) any {
	md := m.desc.Output()
	if in {
		md = m.desc.Input()
	}
	msg := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(b, msg); err != nil {
		return nil
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return nil
	}
	var v any
	if json.Unmarshal(js, &v) != nil {
		return nil
	}
	return v
}

// filler is a message of n bytes on the wire: field 1 holding bytes, as a
// google.protobuf.BytesValue would.
func filler(n int) []byte {
	if n <= 0 {
		return nil
	}
	size := n - 1 - protowire.SizeVarint(uint64(n))
	size = max(size, 0)
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	return append(b, make([]byte, size)...)
}
