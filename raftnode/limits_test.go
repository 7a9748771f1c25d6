package raftnode

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/tlsutil"
)

// TestGRPCRefusesHugeMetadata sends a call with 15 MB of metadata, which
// the message size limit does not cover, the polite way (a gRPC client,
// which heeds the size the server advertises) and the rude way (raw
// HTTP/2 frames that ignore it). Neither is served, and the node serves
// the next call as before.
func TestGRPCRefusesHugeMetadata(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	addr := c.cfgs[0].GRPCAddr
	pad := strings.Repeat("x", 15<<20)
	game := hangmanv1.NewGameServiceClient(dialGRPC(t, addr, insecure.NewCredentials()))
	get := &hangmanv1.GetRoomRequest{Room: "nope", Consistency: hangmanv1.Consistency_CONSISTENCY_STALE}

	t.Run("grpc client", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-pad", pad)
		_, err := game.GetRoom(ctx, get)
		if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "header list size") {
			t.Fatalf("GetRoom with 15 MB of metadata: %v, want Internal (header list too large)", err)
		}
	})

	t.Run("raw http2", func(t *testing.T) {
		settings, answer := rawHugeHeaders(t, addr, pad, get)
		checkAdvertised(t, settings, DefaultGRPCMaxHeaderBytes, DefaultGRPCMaxStreams)
		if answer != "" {
			t.Fatalf("the call with 15 MB of metadata was served: grpc-status %s", answer)
		}
	})

	_, err := game.GetRoom(ctxT(t), get)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("the next call: %v, want NotFound", err)
	}
}

// rawHugeHeaders speaks HTTP/2 to addr as a client that ignores the
// server's limits: it sends one gRPC call whose header block carries pad,
// then reads until the server ends the connection or answers the call. It
// returns the server's settings and the call's grpc-status, "" if none
// came.
func rawHugeHeaders(t *testing.T, addr, pad string, req proto.Message) (map[http2.SettingID]uint32, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	settings := map[http2.SettingID]uint32{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's settings: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			_ = sf.ForeachSetting(func(s http2.Setting) error { settings[s.ID] = s.Val; return nil })
			break
		}
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}

	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/hangman.v1.GameService/GetRoom"}, {":authority", "node"},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"x-pad", pad},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	body, _ := proto.Marshal(req)
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body)))
	msg = append(msg, body...)
	// The server may close the connection while the headers are on their
	// way: a failed write is its refusal, and what it said is read below.
	go func() {
		b := block.Bytes()
		const chunk = 16 << 10
		err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:chunk]})
		for b = b[chunk:]; err == nil && len(b) > 0; b = b[min(chunk, len(b)):] {
			err = fr.WriteContinuation(1, len(b) <= chunk, b[:min(chunk, len(b))])
		}
		if err == nil {
			_ = fr.WriteData(1, true, msg)
		}
	}()

	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !isConnReset(err) {
				t.Logf("connection ended: %v", err)
			}
			return settings, ""
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				if s := f.PseudoValue("status"); s != "" && s != "200" {
					return settings, "http " + s
				}
				for _, hf := range f.RegularFields() {
					if hf.Name == "grpc-status" {
						return settings, hf.Value
					}
				}
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			return settings, ""
		}
	}
}

// checkAdvertised checks the HTTP/2 settings a node sent: the header list
// and concurrent stream caps.
func checkAdvertised(t *testing.T, settings map[http2.SettingID]uint32, header, streams uint32) {
	t.Helper()
	if got := settings[http2.SettingMaxHeaderListSize]; got != header {
		t.Errorf("the node advertises a header list of at most %d bytes, want %d", got, header)
	}
	if got := settings[http2.SettingMaxConcurrentStreams]; got != streams {
		t.Errorf("the node advertises %d concurrent streams, want %d", got, streams)
	}
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// TestPprofOffUnlessAsked: a node's HTTP port serves no profiles. Asked
// for, they are served on loopback; anywhere else only with TLS, to node
// certificates (a relay's certificate or none is refused); and a node told
// to serve them off loopback without TLS refuses to start.
func TestPprofOffUnlessAsked(t *testing.T) {
	get := func(client *http.Client, u string) (int, error) {
		resp, err := client.Get(u)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	t.Run("off by default", func(t *testing.T) {
		c := newTestCluster(t, 1, nil)
		if code, err := get(http.DefaultClient, "http://"+c.cfgs[0].HTTPAddr+"/debug/pprof/"); err != nil || code != http.StatusNotFound {
			t.Fatalf("GET /debug/pprof/ on the HTTP port: %d %v, want 404", code, err)
		}
	})

	t.Run("on loopback", func(t *testing.T) {
		addr := "127.0.0.1:" + strconv.Itoa(harness.FreePorts(t, 1)[0])
		c := newTestCluster(t, 1, func(cfg *Config) { cfg.PprofAddr = addr })
		if code, err := get(http.DefaultClient, "http://"+addr+"/debug/pprof/cmdline"); err != nil || code != http.StatusOK {
			t.Fatalf("GET /debug/pprof/cmdline on %s: %d %v, want 200", addr, code, err)
		}
		if code, err := get(http.DefaultClient, "http://"+c.cfgs[0].HTTPAddr+"/debug/pprof/"); err != nil || code != http.StatusNotFound {
			t.Fatalf("GET /debug/pprof/ on the HTTP port: %d %v, want 404", code, err)
		}
	})

	t.Run("off loopback without TLS", func(t *testing.T) {
		cfg := Config{ID: "n1", DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:1", SerfAddr: "127.0.0.1:1",
			NATSAddr: "127.0.0.1:1", NATSClusterAddr: "127.0.0.1:1", PprofAddr: "0.0.0.0:6060"}
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "pprof") {
			t.Fatalf("validate: %v, want a refusal naming pprof", err)
		}
	})

	t.Run("off loopback with TLS", func(t *testing.T) {
		pki := newTestPKI(t)
		port := strconv.Itoa(harness.FreePorts(t, 1)[0])
		newTestCluster(t, 1, func(cfg *Config) {
			pki.secure(t)(cfg)
			cfg.PprofAddr = "0.0.0.0:" + port
		})
		u := "https://127.0.0.1:" + port + "/debug/pprof/cmdline"
		for _, tc := range []struct {
			name string
			cert []tls.Certificate
			ok   bool
		}{
			{"no certificate", nil, false},
			{"a relay's certificate", []tls.Certificate{pki.bundle(t, tlsutil.RelayLeaf("relay")).Cert}, false},
			{"a node's certificate", []tls.Certificate{pki.bundle(t, tlsutil.NodeLeaf("ops")).Cert}, true},
		} {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.roots(t), ServerName: tlsutil.NodeName, Certificates: tc.cert}}}
			code, err := get(client, u)
			if tc.ok != (err == nil && code == http.StatusOK) {
				t.Errorf("%s: %d %v", tc.name, code, err)
			}
		}
		if code, err := get(http.DefaultClient, "http://127.0.0.1:"+port+"/debug/pprof/cmdline"); err == nil && code == http.StatusOK {
			t.Error("profiles served over plain HTTP")
		}
	})
}

// TestGRPCLimitsAreConfigured starts a node with small gRPC caps: it
// advertises them, refuses a call whose metadata is over the header cap,
// serves one under it, and shows both caps as metrics.
func TestGRPCLimitsAreConfigured(t *testing.T) {
	const header, streams = 4 << 10, 8
	c := newTestCluster(t, 1, func(cfg *Config) {
		cfg.GRPCMaxHeaderBytes, cfg.GRPCMaxStreams = header, streams
	})
	addr := c.cfgs[0].GRPCAddr
	game := hangmanv1.NewGameServiceClient(dialGRPC(t, addr, insecure.NewCredentials()))
	get := &hangmanv1.GetRoomRequest{Room: "nope", Consistency: hangmanv1.Consistency_CONSISTENCY_STALE}

	// The raw client sends its header block in 16 KiB frames, so it pads
	// past one frame: well over the cap either way.
	settings, answer := rawHugeHeaders(t, addr, strings.Repeat("x", 64<<10), get)
	checkAdvertised(t, settings, header, streams)
	if answer != "" {
		t.Errorf("a call with 16 times the header cap was served: grpc-status %s", answer)
	}
	over := metadata.AppendToOutgoingContext(ctxT(t), "x-pad", strings.Repeat("x", 2*header))
	if _, err := game.GetRoom(over, get); status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "header list size") {
		t.Errorf("GetRoom with twice the header cap: %v, want Internal (header list too large)", err)
	}
	under := metadata.AppendToOutgoingContext(ctxT(t), "x-pad", strings.Repeat("x", header/4))
	if _, err := game.GetRoom(under, get); status.Code(err) != codes.NotFound {
		t.Errorf("GetRoom with a quarter of the header cap: %v, want NotFound", err)
	}

	m := c.metricsOf(0)
	for name, want := range map[string]float64{"hangman_grpc_header_list_limit_bytes": header, "hangman_grpc_streams_limit": streams, "hangman_raft_max_lag_entries": DefaultMaxLag} {
		if got := harness.Series(t, m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
