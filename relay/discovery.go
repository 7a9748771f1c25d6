package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hangman/hangman/subjects"
)

// Discovery names. Relays announce themselves on subjects.RelayHeartbeat;
// every relay answers subjects.RelayStatus with its status (no queue
// group: a request with several replies reaches all of them).
const (
	// ServiceName is the NATS micro service every relay registers as.
	ServiceName = subjects.RelayService
)

// heartbeat is the payload of subjects.RelayHeartbeat. Relays are told apart by
// Name: behind a load balancer they all share one URL, the public entry.
type heartbeat struct {
	Name string `json:"name"`
	// URL is the relay's public URL, "" when it has none.
	URL      string `json:"url"`
	Sessions int64  `json:"sessions"`
	// Leader says the relay reaches a game node that knows a raft leader
	// (see readiness).
	Leader bool `json:"leader"`
	// Spectators counts, per room, the connections on the relay that
	// watch the room without a seat (spectators.go); rooms without any
	// are left out.
	Spectators map[string]int `json:"spectators,omitempty"`
	At         time.Time      `json:"at"`
}

// discovery is how relays find each other: each announces itself on
// subjects.RelayHeartbeat every HeartbeatInterval (at once to a newcomer,
// and early when its spectator counts changed), and follows the others'
// heartbeats into the peer table, forgetting those gone silent. What a
// change of peers means elsewhere it passes on: the spectator totals, the
// browsers' relay list, the cluster view's events.
type discovery struct {
	nc       *nats.Conn
	log      *slog.Logger
	name     string        // Config.Name
	interval time.Duration // Config.HeartbeatInterval
	origins  origins
	peers    *peerTable
	// report is this relay's heartbeat as of now.
	report     func() heartbeat
	spectators *spectators
	cluster    *clusterView
	// tell queues a frame for every browser of this relay.
	tell func(outItem)
	// announceNow asks for a heartbeat at once.
	announceNow chan struct{}
}

// start subscribes to the heartbeats and starts announcing this relay,
// until ctx ends, with spawn.
func (d *discovery) start(ctx context.Context, spawn func(func())) error {
	if _, err := d.nc.Subscribe(subjects.RelayHeartbeat, d.onHeartbeat); err != nil {
		return fmt.Errorf("subscribe to %s: %w", subjects.RelayHeartbeat, err)
	}
	spawn(func() { d.loop(ctx) })
	return nil
}

// loop announces the relay every interval, at once to a newcomer, and
// early (at most every spectatorAnnounceGap) when its spectator counts
// changed, so other relays' totals follow quickly.
func (d *discovery) loop(ctx context.Context) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	var soon <-chan time.Time // armed while changed counts wait to be announced
	last := time.Now()
	announce := func() {
		d.announce()
		last, soon = time.Now(), nil
	}
	announce()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			announce()
			d.expire()
		case <-d.announceNow:
			announce()
		case <-d.spectators.changed:
			if soon == nil {
				soon = time.After(max(0, spectatorAnnounceGap-time.Since(last)))
			}
		case <-soon:
			announce()
		}
	}
}

func (d *discovery) announce() {
	b, _ := json.Marshal(d.report())
	_ = d.nc.Publish(subjects.RelayHeartbeat, b)
}

// decodeHeartbeat decodes a heartbeat of another relay than self, or says
// no: self's own (NATS echoes them), a nameless one, or one with a URL that
// is not http(s). A URL the origins do not trust is dropped: whoever can
// publish a heartbeat (anyone, on NATS without users) must not be able to
// send browsers elsewhere.
func decodeHeartbeat(data []byte, self string, o origins) (heartbeat, bool) {
	var hb heartbeat
	if err := json.Unmarshal(data, &hb); err != nil || !validName(hb.Name) || hb.Name == self {
		return hb, false
	}
	if hb.URL != "" && !safeOrigin(hb.URL) {
		return hb, false
	}
	if hb.URL != "" && !o.trusts(hb.URL) {
		hb.URL = ""
	}
	if !validSpectators(hb.Spectators) {
		hb.Spectators = nil
	}
	return hb, true
}

// onHeartbeat follows another relay: its URL (a failover target), whether
// it sees a leader, and its sessions.
func (d *discovery) onHeartbeat(m *nats.Msg) {
	hb, ok := decodeHeartbeat(m.Data, d.name, d.origins)
	if !ok {
		return
	}
	old, known, ok := d.peers.see(hb, time.Now())
	if !ok {
		return
	}
	d.spectators.setPeer(hb.Name, hb.Spectators)
	if known && old.url != hb.URL {
		d.relaysChanged()
	}
	if !known {
		if hb.URL == "" && strings.Contains(string(m.Data), `"url":"http`) {
			d.log.Warn("relay heartbeat names a URL that --allowed-origins does not: not a failover target", "relay", hb.Name)
		}
		d.log.Info("discovered relay", "relay", hb.Name, "url", hb.URL)
		// Answer a newcomer at once so it knows us without waiting for
		// our next tick.
		select {
		case d.announceNow <- struct{}{}:
		default:
		}
		d.relaysChanged()
		d.cluster.relayJoined(hb.Name)
	}
}

// expire forgets the relays silent for three heartbeat intervals.
func (d *discovery) expire() {
	var gone []string
	for name, p := range d.peers.expire(time.Now().Add(-3 * d.interval)) {
		d.log.Info("relay went silent", "relay", name, "url", p.url)
		gone = append(gone, name)
		d.spectators.setPeer(name, nil)
	}
	if len(gone) > 0 {
		d.relaysChanged()
		d.cluster.relaysLeft(gone)
	}
}

// relaysChanged tells every browser of this relay the new relay list, if
// it changed. It scans all sessions, which is fine for an event this rare.
func (d *discovery) relaysChanged() {
	urls, changed := d.peers.newList()
	if !changed {
		return
	}
	frame := encode(relaysFrame{Type: "relays", Relays: urls})
	d.tell(outItem{kind: outView, key: viewRelays, frame: frame})
}
