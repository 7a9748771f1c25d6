package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixtureLab is a lab of stopped nodes whose logs are the fixture's.
func fixtureLab(t *testing.T, dir string) *Lab {
	t.Helper()
	lab := &Lab{Dir: dir}
	for _, id := range []string{"n1", "n2", "n3"} {
		lab.Nodes = append(lab.Nodes, &Node{ID: id, Proc: &proc{name: id, log: filepath.Join(dir, id+".log")}})
	}
	return lab
}

// TestCheckAudits runs the end-of-run audit check on node logs kept in
// testdata: audits that agree pass, whichever nodes made them (a node
// restarted audits again, a wiped one starts late); audits that differ
// fail the run, naming the first index, both digests and both nodes; a
// run that compared nothing although its log was long fails too.
func TestCheckAudits(t *testing.T) {
	tests := []struct {
		name         string
		dir          string
		finalIndex   uint64
		wantCompared int
		wantFailures []string
	}{
		{name: "agree", dir: "testdata/audit/agree", finalIndex: 2600, wantCompared: 5},
		{name: "diverged", dir: "testdata/audit/diverged", finalIndex: 2100, wantCompared: 4, wantFailures: []string{
			"replicas diverged: index 1500 digest b364ce77f754 on n1, a600fbac858e on n3",
			"replicas diverged: index 2000 digest 663caa593bb9 on n1, 34a0bf4ad106 on n3",
		}},
		{name: "no audits", dir: t.TempDir(), finalIndex: 3 * auditEvery, wantFailures: []string{
			fmt.Sprintf("state audits: no index audited by two nodes, though the log reached %d (audits every %d)", 3*auditEvery, auditEvery),
		}},
		{name: "no audits in a short log", dir: t.TempDir(), finalIndex: auditEvery + auditEvery/2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lab := fixtureLab(t, tt.dir)
			for _, n := range lab.Nodes {
				if _, err := os.Stat(n.Proc.log); os.IsNotExist(err) {
					if err := os.WriteFile(n.Proc.log, []byte("=== chaos: start\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := newReport(Config{})
			r.checkAudits(lab, tt.finalIndex)
			if r.Audits != tt.wantCompared {
				t.Errorf("compared %d indexes, want %d", r.Audits, tt.wantCompared)
			}
			if !slices.Equal(r.Failures, tt.wantFailures) {
				t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.Failures, "\n"), strings.Join(tt.wantFailures, "\n"))
			}
			if r.AuditsDiverged != len(tt.wantFailures) && tt.wantCompared > 0 {
				t.Errorf("%d indexes diverged, want %d", r.AuditsDiverged, len(tt.wantFailures))
			}
		})
	}
}

// TestReadAuditsRefusesMalformedLines: a line that claims to be an audit
// but does not parse is an error, not an audit quietly skipped.
func TestReadAuditsRefusesMalformedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n1.log")
	if err := os.WriteFile(path, []byte(`{"msg":"state audit","index":"x"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readAudits(map[string]string{"n1": path}); err == nil || !strings.Contains(err.Error(), "malformed audit line") {
		t.Fatalf("err %v, want a malformed audit line", err)
	}
}

// TestArtifactsKeepAuditedStatesOfADivergence: the audited states, a few
// hundred megabytes a run, go to the artifacts only when replicas
// diverged.
func TestArtifactsKeepAuditedStatesOfADivergence(t *testing.T) {
	logs := t.TempDir()
	state := filepath.Join(auditDir(logs, "n1"), "audit-500-0123456789ab.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte(`{"version":5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, diverged := range []bool{false, true} {
		r := newReport(Config{})
		if diverged {
			r.AuditsDiverged = 1
		}
		paths, err := r.SaveArtifacts(t.TempDir(), logs)
		if err != nil {
			t.Fatal(err)
		}
		var kept string
		for _, p := range paths {
			if strings.HasSuffix(p, "-audit") {
				kept = p
			}
		}
		if (kept != "") != diverged {
			t.Fatalf("diverged %v: artifacts %v", diverged, paths)
		}
		if kept == "" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(kept, "n1", filepath.Base(state))); err != nil || string(b) != `{"version":5}` {
			t.Fatalf("audited state in the artifacts: %q, %v", b, err)
		}
	}
}

// TestDivergedAuditsSayWhetherTheLogsDiffered checks the verdict's word on
// the commands the nodes applied between audits: the same commands with
// different states point at the state machine, different ones at the log,
// and an unknown window says nothing.
func TestDivergedAuditsSayWhetherTheLogsDiffered(t *testing.T) {
	tests := []struct {
		inputs [2]string
		want   string
	}{
		{[2]string{"aaa", "aaa"}, "replicas diverged: index 4000 digest 111 on n1, 222 on n2 (the same commands since the previous audit: the state machines differ)"},
		{[2]string{"aaa", "bbb"}, "replicas diverged: index 4000 digest 111 on n1, 222 on n2 (different commands since the previous audit: the logs differ)"},
		{[2]string{"", "bbb"}, "replicas diverged: index 4000 digest 111 on n1, 222 on n2"},
	}
	for _, tt := range tests {
		v := compareAudits([]auditRecord{
			{Node: "n1", Index: 4000, Digest: "111", Input: tt.inputs[0]},
			{Node: "n2", Index: 4000, Digest: "222", Input: tt.inputs[1]},
		})
		if len(v.Diverged) != 1 || v.Diverged[0] != tt.want {
			t.Errorf("inputs %q: %q, want %q", tt.inputs, v.Diverged, tt.want)
		}
	}
}
