package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// auditEvery is the --audit-every of the lab's nodes: every node digests
// its whole game state at each log index that is a multiple of it and
// logs "state audit" with the index and the digest (raftnode's
// stateAudit). The public room states the end-of-run comparison reads do
// not show everything a replica holds (the request ids each room
// remembers, for one), and a node that diverged may have been wiped since;
// the audits in the logs, which outlive wipes, show any divergence, when
// it began, and on which nodes. Each audit serialises every room under
// the state machine's lock, tens of megabytes late in a soak, so they
// are spaced: a short run applies some tens of thousands of entries,
// about fifteen audits; a 10-minute soak about sixty. (Every 500, a soak
// ran at half its usual rate, and a node restarted late took 30 s to
// replay 24,000 entries.)
const auditEvery = 2000

// auditMsg is the message of a node's audit log lines.
const auditMsg = "state audit"

// auditRecord is one audit a node logged: its state's digest after index,
// and the digest of the commands it applied since its previous audit
// (Input; "" where unknown: a window a snapshot cut short, or a node that
// does not log it).
type auditRecord struct {
	Node   string
	Index  uint64
	Digest string
	Input  string
}

// auditDir is where node id writes its audited states (--audit-dir):
// beside the logs, outside the data directory, so that a wipe keeps them.
func auditDir(dir, id string) string { return filepath.Join(dir, "audit", id) }

// readAudits reads the audit lines of nodes' logs, by node id the path of
// its log. A line still being written (no newline yet) is left out.
func readAudits(logs map[string]string) ([]auditRecord, error) {
	var out []auditRecord
	ids := make([]string, 0, len(logs))
	for id := range logs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		recs, err := readAuditLog(id, logs[id])
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func readAuditLog(id, path string) ([]auditRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audits of %s: %w", id, err)
	}
	defer f.Close()
	var out []auditRecord
	rd := bufio.NewReader(f)
	needle := []byte(`"msg":"` + auditMsg + `"`)
	for {
		line, err := rd.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("audits of %s: %w", id, err)
		}
		if !bytes.Contains(line, needle) {
			continue
		}
		var rec struct {
			Msg    string `json:"msg"`
			Index  uint64 `json:"index"`
			Digest string `json:"digest"`
			Input  string `json:"input"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.Msg != auditMsg || rec.Index == 0 || rec.Digest == "" {
			return nil, fmt.Errorf("audits of %s: malformed audit line %q", id, strings.TrimSpace(string(line)))
		}
		out = append(out, auditRecord{Node: id, Index: rec.Index, Digest: rec.Digest, Input: rec.Input})
	}
}

// auditVerdict is what comparing the audits found.
type auditVerdict struct {
	// Compared counts the indexes audited more than once (by two nodes,
	// or by one before and after a restart).
	Compared int
	// Diverged lists, lowest index first, each index whose audits
	// disagree: "replicas diverged: index I digest X on nA, Y on nB".
	Diverged []string
}

// compareAudits checks that every index's audits carry one digest.
func compareAudits(recs []auditRecord) auditVerdict {
	byIndex := map[uint64][]auditRecord{}
	for _, r := range recs {
		byIndex[r.Index] = append(byIndex[r.Index], r)
	}
	indexes := make([]uint64, 0, len(byIndex))
	for i := range byIndex {
		indexes = append(indexes, i)
	}
	slices.Sort(indexes)
	var v auditVerdict
	for _, i := range indexes {
		rs := byIndex[i]
		if len(rs) < 2 {
			continue
		}
		v.Compared++
		for _, r := range rs[1:] {
			if r.Digest != rs[0].Digest {
				v.Diverged = append(v.Diverged, fmt.Sprintf("replicas diverged: index %d digest %s on %s, %s on %s%s",
					i, short(rs[0].Digest), rs[0].Node, short(r.Digest), r.Node, inputsSay(rs[0], r)))
				break
			}
		}
	}
	return v
}

// inputsSay tells, for two audits of one index whose states differ,
// whether the two nodes had applied the same commands since their
// previous audits: the same entries applied differently point at the
// state machine, different entries at the log. It says nothing where
// either window is unknown.
func inputsSay(a, b auditRecord) string {
	switch {
	case a.Input == "" || b.Input == "":
		return ""
	case a.Input == b.Input:
		return " (the same commands since the previous audit: the state machines differ)"
	default:
		return " (different commands since the previous audit: the logs differ)"
	}
}

// short is the start of a digest, as the audit files are named.
func short(digest string) string { return digest[:min(len(digest), 12)] }

// checkAudits compares the state audits of every node's log. finalIndex
// is the state index the nodes agreed on at the end: past two audit
// periods, some index must have been compared, or the audits do not run.
func (r *Report) checkAudits(lab *Lab, finalIndex uint64) {
	logs := map[string]string{}
	for _, n := range lab.Nodes {
		logs[n.ID] = n.Proc.log
	}
	recs, err := readAudits(logs)
	if err != nil {
		r.fail("state audits: %v", err)
		return
	}
	v := compareAudits(recs)
	r.Audits, r.AuditsDiverged = v.Compared, len(v.Diverged)
	for i, d := range v.Diverged {
		if i == 5 {
			r.fail("%d more indexes whose state audits diverged (see the nodes' logs and %s)", len(v.Diverged)-i, auditDir(lab.Dir, "*"))
			break
		}
		r.fail("%s", d)
	}
	if v.Compared == 0 && finalIndex >= 2*auditEvery {
		r.fail("state audits: no index audited by two nodes, though the log reached %d (audits every %d)", finalIndex, auditEvery)
	}
}
