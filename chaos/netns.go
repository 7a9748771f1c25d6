package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ports every node binds inside its own namespace: the production defaults,
// which is the point of giving each node its own network stack.
const (
	portGRPC        = 9001
	portRaft        = 7001
	portSerf        = 7946
	portNATS        = 4222
	portNATSCluster = 6222
	portHTTP        = 9101
)

// namePrefix starts the name of every namespace and link the harness makes;
// the test binary's pid follows, so that leftovers of a crashed run can be
// told from the links of a run still going (see sweepStale).
const namePrefix = "hmc"

// network is the private network of one run: a "switch" namespace holding
// a bridge, one namespace per node attached to it with a veth pair, and a
// veth from the harness's namespace to the bridge. Keeping the bridge out
// of the harness's namespace keeps the host's firewall out of the path
// (Docker's FORWARD policy DROP would otherwise see bridged frames) and
// untouched. All of it lives on this machine; the addresses are a /24 of
// 10.213.0.0/16 that no interface uses.
type network struct {
	tag    string // namePrefix + pid
	sw     string // the switch namespace
	host   string // the harness's veth
	prefix string // "10.213.K."
	hostIP string
	nodes  []nsNode
}

// nsNode is one node's namespace and address.
type nsNode struct {
	ns string
	ip string
}

// netnsAvailable reports why network namespaces cannot be used here, or nil.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install -y iproute2 iptables): %w", tool, err)
		}
	}
	probe := fmt.Sprintf("%sprobe%d", namePrefix, os.Getpid())
	if err := run("ip", "netns", "add", probe); err != nil {
		return fmt.Errorf("ip netns add: %w", err)
	}
	defer func() { _ = run("ip", "netns", "del", probe) }()
	if err := run("ip", "netns", "exec", probe, "iptables", "-L", "-n"); err != nil {
		return fmt.Errorf("iptables inside a namespace: %w", err)
	}
	return nil
}

// newNetwork creates the switch, the harness's link to it and n node
// namespaces.
func newNetwork(n int) (*network, error) {
	sweepStale()
	pid := os.Getpid()
	nw := &network{tag: namePrefix + strconv.Itoa(pid)}
	nw.sw = nw.tag + "s"
	nw.host = nw.tag + "h"
	third, err := freeSubnet(pid)
	if err != nil {
		return nil, err
	}
	nw.prefix = fmt.Sprintf("10.213.%d.", third)
	nw.hostIP = nw.prefix + "1"
	steps := [][]string{
		{"ip", "netns", "add", nw.sw},
		{"ip", "-n", nw.sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", nw.sw, "link", "set", "br0", "up"},
		{"ip", "link", "add", nw.host, "type", "veth", "peer", "name", "up0", "netns", nw.sw},
		{"ip", "-n", nw.sw, "link", "set", "up0", "master", "br0", "up"},
		{"ip", "addr", "add", nw.hostIP + "/24", "dev", nw.host},
		{"ip", "link", "set", nw.host, "up"},
	}
	for i := range n {
		nd := nsNode{ns: fmt.Sprintf("%sn%d", nw.tag, i+1), ip: nw.address(i, 0)}
		nw.nodes = append(nw.nodes, nd)
		port := fmt.Sprintf("p%d", i+1)
		steps = append(steps, [][]string{
			{"ip", "netns", "add", nd.ns},
			{"ip", "-n", nw.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", nd.ns},
			{"ip", "-n", nw.sw, "link", "set", port, "master", "br0", "up"},
			{"ip", "-n", nd.ns, "addr", "add", nd.ip + "/24", "dev", "eth0"},
			{"ip", "-n", nd.ns, "link", "set", "eth0", "up"},
			{"ip", "-n", nd.ns, "link", "set", "lo", "up"},
			// A chain of our own, jumped to first, so healing is one flush.
			{"ip", "netns", "exec", nd.ns, "iptables", "-N", "CHAOS"},
			{"ip", "netns", "exec", nd.ns, "iptables", "-I", "INPUT", "-j", "CHAOS"},
			{"ip", "netns", "exec", nd.ns, "iptables", "-I", "OUTPUT", "-j", "CHAOS"},
		}...)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			nw.close()
			return nil, err
		}
	}
	return nw, nil
}

// freeSubnet picks the third octet of a 10.213.K.0/24 no interface uses.
func freeSubnet(seed int) (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	used := map[int]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4[0] == 10 && ip4[1] == 213 {
				used[int(ip4[2])] = true
			}
		}
	}
	for i := range 250 {
		k := 1 + (seed+i)%250
		if !used[k] {
			return k, nil
		}
	}
	return 0, errors.New("no free 10.213.K.0/24 subnet")
}

// addressGenerations is how many address sets the nodes cycle through
// (readdress-all moves them to the next one).
const addressGenerations = 10

// address is node i's IP in address generation gen: 10.213.K.(11+20·gen+i),
// all within the bridge's /24.
func (nw *network) address(i, gen int) string {
	return fmt.Sprintf("%s%d", nw.prefix, 11+20*(gen%addressGenerations)+i)
}

// readdress moves node i to ip; its processes must be stopped first.
func (nw *network) readdress(i int, ip string) error {
	nd := &nw.nodes[i]
	if err := run("ip", "-n", nd.ns, "addr", "flush", "dev", "eth0"); err != nil {
		return err
	}
	if err := run("ip", "-n", nd.ns, "addr", "add", ip+"/24", "dev", "eth0"); err != nil {
		return err
	}
	nd.ip = ip
	return nil
}

// isolate cuts every link between the nodes of group a and those of group b
// (indexes into nodes), both directions, TCP and UDP.
func (nw *network) isolate(a, b []int) error {
	var errs []error
	for _, i := range a {
		for _, j := range b {
			errs = append(errs, nw.drop(i, nw.nodes[j].ip), nw.drop(j, nw.nodes[i].ip))
		}
	}
	return errors.Join(errs...)
}

func (nw *network) drop(i int, peer string) error {
	ns := nw.nodes[i].ns
	return errors.Join(
		run("ip", "netns", "exec", ns, "iptables", "-A", "CHAOS", "-s", peer, "-j", "DROP"),
		run("ip", "netns", "exec", ns, "iptables", "-A", "CHAOS", "-d", peer, "-j", "DROP"),
	)
}

// cutRoutes breaks every NATS route between nodes: route packets are
// answered with a TCP reset, so established routes drop at once and new
// ones fail until healed. Client connections (relays, observers) are kept.
func (nw *network) cutRoutes() error {
	var errs []error
	for i, nd := range nw.nodes {
		for j, peer := range nw.nodes {
			if i == j {
				continue
			}
			for _, dir := range []string{"--dport", "--sport"} {
				errs = append(errs,
					run("ip", "netns", "exec", nd.ns, "iptables", "-A", "CHAOS", "-p", "tcp", "-s", peer.ip, dir, strconv.Itoa(portNATSCluster), "-j", "REJECT", "--reject-with", "tcp-reset"),
					run("ip", "netns", "exec", nd.ns, "iptables", "-A", "CHAOS", "-p", "tcp", "-d", peer.ip, dir, strconv.Itoa(portNATSCluster), "-j", "REJECT", "--reject-with", "tcp-reset"))
			}
		}
	}
	return errors.Join(errs...)
}

// heal removes every fault rule.
func (nw *network) heal() error {
	var errs []error
	for _, nd := range nw.nodes {
		errs = append(errs, run("ip", "netns", "exec", nd.ns, "iptables", "-F", "CHAOS"))
	}
	return errors.Join(errs...)
}

// close deletes the namespaces; the veth pairs and the bridge go with them.
func (nw *network) close() {
	for _, nd := range nw.nodes {
		_ = run("ip", "netns", "del", nd.ns)
	}
	_ = run("ip", "netns", "del", nw.sw)
	_ = run("ip", "link", "del", nw.host)
}

// sweepStale deletes namespaces and links left by harness runs whose process
// is gone (a killed `go test`), never those of a run still alive.
func sweepStale() {
	alive := func(name string) bool {
		digits := strings.TrimLeft(strings.TrimPrefix(name, namePrefix), "probe")
		end := 0
		for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
			end++
		}
		pid, err := strconv.Atoi(digits[:end])
		if err != nil {
			return true // not ours to judge
		}
		return syscall.Kill(pid, 0) == nil
	}
	// Data tmpfs of a dead run: <dir>/<tag>data/<node>.
	if data, err := os.ReadFile("/proc/mounts"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[2] != "tmpfs" {
				continue
			}
			parent := filepath.Base(filepath.Dir(f[1]))
			if strings.HasPrefix(parent, namePrefix) && strings.HasSuffix(parent, "data") && !alive(parent) {
				_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
			}
		}
	}
	if out, err := output("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], namePrefix) && !alive(f[0]) {
				_ = run("ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := output("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, namePrefix) && !alive(name) {
				_ = run("ip", "link", "del", name)
			}
		}
	}
}

// run runs a system command with a deadline, returning its output in the
// error when it fails.
func run(args ...string) error {
	_, err := output(args...)
	return err
}

func output(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
