package rpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/problem"
)

// codes maps each problem kind to its gRPC code: the one translation of the error
// vocabulary at the gRPC edge (problem.Writer is the one at the HTTP edge).
var grpcCodes = map[problem.Kind]connect.Code{
	problem.Internal:        connect.CodeInternal,
	problem.Invalid:         connect.CodeInvalidArgument,
	problem.Unauthenticated: connect.CodeUnauthenticated,
	problem.Forbidden:       connect.CodePermissionDenied,
	problem.NotFound:        connect.CodeNotFound,
	problem.Conflict:        connect.CodeFailedPrecondition,
	problem.TooLarge:        connect.CodeResourceExhausted,
	problem.Unsupported:     connect.CodeInvalidArgument,
	problem.Unprocessable:   connect.CodeFailedPrecondition,
	problem.RateLimited:     connect.CodeResourceExhausted,
	problem.Unavailable:     connect.CodeUnavailable,
	problem.Timeout:         connect.CodeDeadlineExceeded,
	problem.Canceled:        connect.CodeCanceled,
}

// ConnectError turns any error into a *connect.Error whose message is safe to send:
// a problem's detail, or a generic text for internal errors.
func ConnectError(err error) *connect.Error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	kind := problem.KindOf(err)
	d := problem.From(err)
	msg := d.Detail
	if msg == "" {
		msg = d.Title
	}
	return connect.NewError(grpcCodes[kind], errors.New(msg))
}

// FromConnect turns an error returned by a connect client into a problem, so callers
// handle gRPC and REST failures alike. Policies' own problems pass through.
func FromConnect(err error) error {
	if err == nil {
		return nil
	}
	var pe *problem.Error
	if errors.As(err, &pe) {
		return err
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	kind := problem.Internal
	switch ce.Code() {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		kind = problem.Invalid
	case connect.CodeUnauthenticated:
		kind = problem.Unauthenticated
	case connect.CodePermissionDenied:
		kind = problem.Forbidden
	case connect.CodeNotFound:
		kind = problem.NotFound
	case connect.CodeFailedPrecondition, connect.CodeAlreadyExists, connect.CodeAborted:
		kind = problem.Conflict
	case connect.CodeResourceExhausted:
		kind = problem.RateLimited
	case connect.CodeUnavailable:
		kind = problem.Unavailable
	case connect.CodeDeadlineExceeded:
		kind = problem.Timeout
	case connect.CodeCanceled:
		kind = problem.Canceled
	}
	return &problem.Error{Kind: kind, Detail: ce.Message(), Err: err}
}

// problemInterceptor translates handler errors into connect errors.
type problemInterceptor struct{}

func (problemInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, ConnectError(err)
		}
		return resp, nil
	}
}

func (problemInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (problemInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return ConnectError(err)
		}
		return nil
	}
}
