package telemetry

import "strconv"

// Span attributes follow the OpenTelemetry semantic conventions of the semconv
// package this module imports (go.opentelemetry.io/otel/semconv/v1.43.0): HTTP
// spans carry http.*, url.*, server.* and error.type; gRPC spans are named
// package.Service/Method and carry rpc.system.name, rpc.method and
// rpc.response.status_code; messaging spans carry messaging.system,
// messaging.operation.name and .type, messaging.destination.name,
// messaging.message.id and messaging.consumer.group.name; events add the
// cloudevents.* keys. Everything Switchyard records that the conventions do not
// name lives under its own namespace, switchyard.*, never inside one of theirs;
// these are those keys (with observe.DeadlineAttribute, which readers of
// traces use too).
const (
	// KeyRequestID is the request id (X-Request-Id) of a server span.
	KeyRequestID = "switchyard.request.id"
	// KeyDeliveryAttempt is which delivery of an event a process span handles (1
	// for the first).
	KeyDeliveryAttempt = "switchyard.delivery.attempt"
	// KeyOutbox names the outbox whose relay sent an event (a send span).
	KeyOutbox = "switchyard.outbox.name"
	// KeyDeadLetterID names the dead letter a replay span sends again.
	KeyDeadLetterID = "switchyard.dead_letter.id"
	// KeyInstance and KeyOutcome are on a client span's "attempt failed" events:
	// the instance tried and what went wrong there.
	KeyInstance = "switchyard.instance.id"
	KeyOutcome  = "switchyard.attempt.outcome"
	// KeyRetryAfter and KeyRetryDelay are on a retry's event: what the attempt
	// before it got, and how long the policy waited.
	KeyRetryAfter = "switchyard.retry.after"
	KeyRetryDelay = "switchyard.retry.delay"
	// KeySaga, KeySagaID, KeySagaStep, KeySagaAction and KeySagaRefusal are on a
	// saga step's span: the saga, its instance, the step, do or compensate, and
	// the reason a step refused.
	KeySaga        = "switchyard.saga.name"
	KeySagaID      = "switchyard.saga.id"
	KeySagaStep    = "switchyard.saga.step"
	KeySagaAction  = "switchyard.saga.action"
	KeySagaRefusal = "switchyard.saga.refusal"
	// KeyLink says what a span link is: the relay's send a delivery came through,
	// the request that replayed a dead letter.
	KeyLink = "switchyard.link"
)

// grpcCodes are the gRPC status codes' names, by number, as rpc.response.status_code
// takes them.
var grpcCodes = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// GRPCCodeName names the gRPC status code of a grpc-status value ("5" is
// NOT_FOUND); a value that is no code stays as it is.
func GRPCCodeName(code string) string {
	if n, err := strconv.Atoi(code); err == nil && n >= 0 && n < len(grpcCodes) {
		return grpcCodes[n]
	}
	return code
}
