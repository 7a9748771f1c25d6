package relay

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGRPCErrorCodes checks the error frame code of each gRPC status the
// cluster answers with: a refusal the client can act on keeps its own
// code, and a busy room says to resend later rather than "internal".
func TestGRPCErrorCodes(t *testing.T) {
	tests := []struct {
		in   codes.Code
		want string
	}{
		{codes.InvalidArgument, CodeInvalid},
		{codes.NotFound, CodeNotFound},
		{codes.AlreadyExists, CodeExists},
		{codes.FailedPrecondition, CodePrecondition},
		{codes.PermissionDenied, CodePermission},
		{codes.ResourceExhausted, CodeBusy},
		{codes.Unavailable, CodeUnavailable},
		{codes.DeadlineExceeded, CodeTimeout},
		{codes.Canceled, CodeTimeout},
		{codes.Internal, CodeInternal},
	}
	for _, tt := range tests {
		if got, msg := grpcError(status.Error(tt.in, "why")); got != tt.want || msg == "" {
			t.Errorf("%v: code %q message %q, want code %q", tt.in, got, msg, tt.want)
		}
	}
}
