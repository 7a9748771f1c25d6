package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

// TestHealthCommand: `hangman health` passes on 200 and fails, saying why,
// on anything else, on a dead address, on a server too slow to answer and
// on input that is no URL: what a container healthcheck relies on.
func TestHealthCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte(`{"ready":true}`))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("{\"status\":\"not ready\",\"reason\":\"no known leader\"}\nsecond line"))
		}
	}))
	defer srv.Close()
	deadAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + deadAddr + "/readyz"

	cases := []struct {
		name string
		args []string
		want string // "" for success, else a part of the error
	}{
		{"ready", []string{srv.URL + "/readyz"}, ""},
		{"every URL must pass", []string{srv.URL + "/readyz", srv.URL + "/notready"}, "503 Service Unavailable: {\"status\":\"not ready\",\"reason\":\"no known leader\"}"},
		{"not ready", []string{srv.URL + "/notready"}, "no known leader"},
		{"nothing listening", []string{dead}, "connection refused"},
		{"too slow", []string{"--timeout", "200ms", srv.URL + "/slow"}, "Timeout"},
		{"not a URL", []string{"localhost:9101/readyz"}, "not an http(s) URL"},
		{"no URL", nil, "at least one URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := runHealth(context.Background(), tc.args)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("hangman health %v: %v", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("hangman health %v: %v, want an error with %q", tc.args, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "second line") {
				t.Fatalf("error carries more than the body's first line: %v", err)
			}
		})
	}
}
