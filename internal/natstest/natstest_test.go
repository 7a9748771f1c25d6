package natstest

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestRefusedTellsARefusalFromAnAllowance: a user that may publish only on
// "ok.>" is refused "no", and Refused says so; its allowed publish is
// reported as allowed.
func TestRefusedTellsARefusalFromAnAllowance(t *testing.T) {
	srv := Server(t, server.Options{Users: []*server.User{{Username: "u", Password: "p", Permissions: &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{"ok.>"}},
	}}}})
	nc, errs := Connect(t, srv.ClientURL(), nats.UserInfo("u", "p"))
	if err := nc.Publish("no", nil); err != nil {
		t.Fatal(err)
	}
	if err := Refused(nc, errs, "no"); err != nil {
		t.Fatalf("a refused publish: %v", err)
	}
	if err := nc.Publish("ok.x", nil); err != nil {
		t.Fatal(err)
	}
	if err := Refused(nc, errs, "ok.x"); err == nil || !strings.Contains(err.Error(), "allowed") {
		t.Fatalf("an allowed publish: %v, want it reported allowed", err)
	}
}
