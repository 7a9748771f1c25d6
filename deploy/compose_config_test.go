package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of a compose file that compose.yaml uses.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string            `yaml:"image"`
	Command         []string          `yaml:"command"`
	Hostname        string            `yaml:"hostname"`
	ContainerName   string            `yaml:"container_name"`
	Restart         string            `yaml:"restart"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Tmpfs           []string          `yaml:"tmpfs"`
	Ports           []string          `yaml:"ports"`
	DependsOn       []string          `yaml:"depends_on"`
}

// composeVar matches ${NAME}, ${NAME-default} and ${NAME:-default}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-)?([^}]*)\}`)

// interpolate substitutes compose variables as docker-compose does, with
// env as the environment.
func interpolate(s string, env map[string]string) string {
	return composeVar.ReplaceAllStringFunc(s, func(v string) string {
		g := composeVar.FindStringSubmatch(v)
		val, set := env[g[1]]
		switch g[2] {
		case "-":
			if !set {
				return g[3]
			}
		case ":-":
			if val == "" {
				return g[3]
			}
		}
		return val
	})
}

// loadCompose reads compose.yaml, interpolated with env, strictly.
func loadCompose(env map[string]string) (*composeFile, error) {
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		return nil, err
	}
	// Decode generically first so YAML merge keys (<<) are resolved, then
	// strictly into the typed form.
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	for k := range raw {
		if strings.HasPrefix(k, "x-") {
			delete(raw, k)
		}
	}
	resolved, err := yaml.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var cf composeFile
	dec := yaml.NewDecoder(strings.NewReader(interpolate(string(resolved), env)))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil {
		return nil, err
	}
	return &cf, nil
}

// checkCompose returns every problem found in cf.
func checkCompose(cf *composeFile) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	var nodes []string
	for _, name := range sortedKeys(cf.Services) {
		if s := cf.Services[name]; len(s.Command) > 0 && s.Command[0] == "node" {
			nodes = append(nodes, name)
		}
	}
	relay, ok := cf.Services["relay"]
	if !ok || len(relay.Command) == 0 || relay.Command[0] != "relay" {
		bad("no relay service running `hangman relay`")
	}
	if len(nodes) != 3 {
		bad("%d node services, want 3", len(nodes))
	}
	images := map[string]bool{}
	dataVolumes := map[string]string{}
	for _, name := range sortedKeys(cf.Services) {
		s := cf.Services[name]
		sbad := func(format string, args ...any) { bad("service %s: %s", name, fmt.Sprintf(format, args...)) }
		images[s.Image] = true
		if s.ContainerName != "" {
			sbad("container_name %q stops scaling and parallel projects", s.ContainerName)
		}
		if len(s.Command) == 0 {
			sbad("no command")
			continue
		}
		sub := s.Command[0]
		flags, ok := binaryFlags[sub]
		if !ok {
			sbad("command %q is not a hangman subcommand", sub)
			continue
		}
		c := &container{Args: s.Command}
		for _, k := range sortedKeys(s.Environment) {
			v := s.Environment[k]
			f := envFlag(k)
			if f == "" {
				continue
			}
			if _, ok := flags[f]; !ok {
				sbad("environment %s: hangman %s has no flag --%s", k, sub, f)
			}
			c.Env = append(c.Env, envVar{Name: k, Value: &v})
		}
		// Published ports: loopback only, onto a port the process listens on.
		listens := map[int]bool{}
		for flag := range listenFlags[sub] {
			v, _ := flagValue(c, flag)
			p, err := addrPort(v)
			if err != nil {
				sbad("--%s %q: %v", flag, v, err)
			}
			listens[p] = true
		}
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				sbad("port %q: publish as 127.0.0.1:HOST:CONTAINER", p)
				continue
			}
			cp, err := strconv.Atoi(strings.TrimSuffix(parts[2], "/tcp"))
			if err != nil || !listens[cp] {
				sbad("port %q: container port %s is not one hangman %s listens on", p, parts[2], sub)
			}
			if sub == "relay" && parts[1] != "" && !strings.Contains(parts[1], "-") {
				sbad("port %q: a fixed host port cannot be shared by scaled relays; use a range or leave it empty", p)
			}
		}
		// The image declares VOLUME /data: a service that mounts nothing
		// there gets an anonymous volume per container, which scaling down
		// leaves behind.
		onData := slices.Contains(s.Tmpfs, "/data")
		for _, v := range s.Volumes {
			_, dst, _ := strings.Cut(v, ":")
			dst, _, _ = strings.Cut(dst, ":")
			onData = onData || dst == "/data"
		}
		if !onData {
			sbad("nothing is mounted at /data, so each container gets an anonymous volume")
		}
		switch sub {
		case "node":
			id, _ := flagValue(c, "id")
			if id != name {
				sbad("--id %q, want the service name", id)
			}
			if s.Hostname != name {
				sbad("hostname %q, want the service name", s.Hostname)
			}
			if adv, _ := flagValue(c, "advertise"); adv != name {
				sbad("--advertise %q, want the service name", adv)
			}
			if be, _ := flagValue(c, "bootstrap-expect"); be != strconv.Itoa(len(nodes)) {
				sbad("--bootstrap-expect %q, want %d", be, len(nodes))
			}
			serf, _ := flagValue(c, "serf-addr")
			serfPort, _ := addrPort(serf)
			var want []string
			for _, n := range nodes {
				want = append(want, fmt.Sprintf("%s:%d", n, serfPort))
			}
			join, _ := flagValue(c, "join")
			if got := slices.Sorted(slices.Values(strings.Split(join, ","))); !slices.Equal(got, want) {
				sbad("--join %q, want every node's serf address %v", join, want)
			}
			dir, _ := flagValue(c, "data-dir")
			mounted := false
			for _, v := range s.Volumes {
				src, dst, _ := strings.Cut(v, ":")
				dst, _, _ = strings.Cut(dst, ":")
				if dst != dir {
					continue
				}
				mounted = true
				if _, ok := cf.Volumes[src]; !ok {
					sbad("volume %q at %s is not a named volume of the project", src, dir)
				}
				if other, dup := dataVolumes[src]; dup {
					sbad("shares data volume %q with %s", src, other)
				}
				dataVolumes[src] = name
			}
			if !mounted {
				sbad("--data-dir %q is not on a volume", dir)
			}
		case "relay":
			for _, f := range []struct{ flag, nodeFlag string }{{"nats", "nats-addr"}, {"grpc", "grpc-addr"}} {
				v, _ := flagValue(c, f.flag)
				var hosts []string
				for _, e := range strings.Split(v, ",") {
					h, p, err := hostPort(e)
					if err != nil {
						sbad("--%s entry %q: %v", f.flag, e, err)
						continue
					}
					ns, ok := cf.Services[h]
					if !ok {
						sbad("--%s entry %q: no service %s", f.flag, e, h)
						continue
					}
					nc := &container{Args: ns.Command}
					for k, v := range ns.Environment {
						nc.Env = append(nc.Env, envVar{Name: k, Value: &v})
					}
					na, _ := flagValue(nc, f.nodeFlag)
					if np, _ := addrPort(na); np != p {
						sbad("--%s entry %q: %s serves it on %d", f.flag, e, h, np)
					}
					hosts = append(hosts, h)
				}
				if !slices.Equal(slices.Sorted(slices.Values(hosts)), nodes) {
					sbad("--%s names %v, want every node %v", f.flag, hosts, nodes)
				}
			}
		}
	}
	if len(images) != 1 {
		bad("services use %d images, want the one hangman image", len(images))
	}
	return probs
}

func TestComposeFile(t *testing.T) {
	cf, err := loadCompose(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkCompose(cf) {
		t.Error(p)
	}
	// The documented defaults: NATS on 4222, relays on 8080 and up.
	if p := cf.Services["node1"].Ports; !slices.Contains(p, "127.0.0.1:4222:4222") {
		t.Errorf("node1 ports %v: want NATS published on 127.0.0.1:4222", p)
	}
	if p := cf.Services["relay"].Ports; !slices.Equal(p, []string{"127.0.0.1:8080-8089:8080"}) {
		t.Errorf("relay ports %v: want 127.0.0.1:8080-8089:8080", p)
	}
	// With the variables set empty (as TestCompose does) every port is
	// ephemeral.
	empty := map[string]string{}
	for _, v := range composeVar.FindAllStringSubmatch(mustRead(t, "compose.yaml"), -1) {
		if v[2] == "-" {
			empty[v[1]] = ""
		}
	}
	cf, err = loadCompose(empty)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedKeys(cf.Services) {
		for _, p := range cf.Services[name].Ports {
			if !strings.HasPrefix(p, "127.0.0.1::") {
				t.Errorf("service %s: port %q is fixed even with its variable empty", name, p)
			}
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestComposeChecksCatch breaks the compose file in memory and expects the
// checks to say so.
func TestComposeChecksCatch(t *testing.T) {
	cases := []struct {
		name, want string
		breakIt    func(cf *composeFile)
	}{
		{"public port", "publish as 127.0.0.1", func(cf *composeFile) { cf.Services["node1"].Ports[0] = "4222:4222" }},
		{"fixed relay port", "cannot be shared by scaled relays", func(cf *composeFile) { cf.Services["relay"].Ports[0] = "127.0.0.1:8080:8080" }},
		{"join misses a node", "want every node's serf address", func(cf *composeFile) {
			cf.Services["node2"].Environment["HANGMAN_JOIN"] = "node1:7946,node2:7946"
		}},
		{"shared volume", "shares data volume", func(cf *composeFile) { cf.Services["node3"].Volumes[0] = "node1-data:/data" }},
		{"unknown flag", "has no flag --nats-url", func(cf *composeFile) { cf.Services["relay"].Environment["HANGMAN_NATS_URL"] = "x" }},
		{"anonymous volume", "anonymous volume", func(cf *composeFile) {
			r := cf.Services["relay"]
			r.Tmpfs = nil
			cf.Services["relay"] = r
		}},
		{"relay to a wrong port", "serves it on 9001", func(cf *composeFile) {
			cf.Services["relay"].Environment["HANGMAN_GRPC"] = "node1:9002,node2:9001,node3:9001"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cf, err := loadCompose(nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(cf)
			for _, p := range checkCompose(cf) {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tc.want, checkCompose(cf))
		})
	}
}

// TestComposeConfig has docker-compose itself parse the file (no engine is
// needed for that), where docker-compose is installed.
func TestComposeConfig(t *testing.T) {
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed; TestComposeFile stands alone")
	}
	for _, env := range [][]string{nil, {"RELAY_PORTS=", "NODE1_NATS_PORT="}} {
		cmd := exec.Command(dc, "-f", "compose.yaml", "-p", "hangmanconfigcheck", "config", "-q")
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker-compose config %v: %v\n%s", env, err, out)
		}
	}
}
