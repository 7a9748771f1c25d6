package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	MemLimit        string            `yaml:"mem_limit"`
	Healthcheck     *composeHealth    `yaml:"healthcheck"`
	EnvFile         string            `yaml:"env_file"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Tmpfs           []string          `yaml:"tmpfs"`
	Ports           []string          `yaml:"ports"`
	DependsOn       []string          `yaml:"depends_on"`
}

type composeHealth struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
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
	return loadComposeFile("compose.yaml", env)
}

// loadComposeFile reads a compose file, interpolated with env, strictly.
func loadComposeFile(name string, env map[string]string) (*composeFile, error) {
	data, err := os.ReadFile(name)
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
	var entries []string
	for _, name := range sortedKeys(cf.Services) {
		if s := cf.Services[name]; len(s.Command) > 0 && s.Command[0] == "proxy" {
			entries = append(entries, name)
		}
	}
	if len(entries) != 1 {
		bad("%d services run `hangman proxy`, want one public entry", len(entries))
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
		// A healthcheck the FROM-scratch image can run, on the readiness
		// endpoint of the port the process serves it on.
		hv, _ := flagValue(c, healthFlag[sub])
		hp, _ := addrPort(hv)
		wantTest := []string{"CMD", "/hangman", "health", fmt.Sprintf("http://127.0.0.1:%d/readyz", hp)}
		if s.Healthcheck == nil || !slices.Equal(s.Healthcheck.Test, wantTest) {
			var got []string
			if s.Healthcheck != nil {
				got = s.Healthcheck.Test
			}
			sbad("healthcheck %q, want %q", got, wantTest)
		}
		probs = append(probs, checkMemLimit("service "+name, s.MemLimit, s.Environment["GOMEMLIMIT"])...)
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
			// Browsers are told the entry's URL: where they reconnect.
			pub, _ := flagValue(c, "public-url")
			if want := entryURL(cf, entries); pub != want {
				sbad("--public-url %q, want the public entry %q", pub, want)
			}
		case "proxy":
			to, _ := flagValue(c, "to")
			h, p, err := hostPort(to)
			if err != nil {
				sbad("--to %q: %v", to, err)
				break
			}
			rs, ok := cf.Services[h]
			if !ok || len(rs.Command) == 0 || rs.Command[0] != "relay" {
				sbad("--to %q: %s is not the relay service", to, h)
				break
			}
			rc := &container{Args: rs.Command}
			for k, v := range rs.Environment {
				rc.Env = append(rc.Env, envVar{Name: k, Value: &v})
			}
			rl, _ := flagValue(rc, "listen")
			if rp, _ := addrPort(rl); rp != p {
				sbad("--to %q: relays listen on %d", to, rp)
			}
			if len(s.Ports) != 1 {
				sbad("publishes %d ports, want the one entry", len(s.Ports))
			}
		}
	}
	if len(images) != 1 {
		bad("services use %d images, want the one hangman image", len(images))
	}
	return probs
}

// entryURL is the URL the public entry is published at, as a browser on
// the host reaches it: http://127.0.0.1:HOSTPORT.
func entryURL(cf *composeFile, entries []string) string {
	if len(entries) != 1 {
		return ""
	}
	ports := cf.Services[entries[0]].Ports
	if len(ports) == 0 {
		return ""
	}
	parts := strings.Split(ports[0], ":")
	if len(parts) != 3 {
		return ""
	}
	return "http://127.0.0.1:" + parts[1]
}

// memBytes parses a memory quantity as compose (512m), Go's GOMEMLIMIT
// (460MiB) or Kubernetes (512Mi) writes it.
func memBytes(q string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return strconv.ParseInt(q, 10, 64)
}

// checkMemLimit wants a memory limit and GOMEMLIMIT at 80-95% of it: the
// Go collector then works harder before the kernel would kill the process.
func checkMemLimit(what, limit, goMemLimit string) []string {
	if limit == "" {
		return []string{what + ": no memory limit"}
	}
	l, err := memBytes(limit)
	if err != nil {
		return []string{fmt.Sprintf("%s: memory limit %q: %v", what, limit, err)}
	}
	g, err := memBytes(goMemLimit)
	if err != nil || goMemLimit == "" {
		return []string{fmt.Sprintf("%s: GOMEMLIMIT %q: want about 90%% of the memory limit %s", what, goMemLimit, limit)}
	}
	if r := float64(g) / float64(l); r < 0.8 || r > 0.95 {
		return []string{fmt.Sprintf("%s: GOMEMLIMIT %s is %.0f%% of the memory limit %s, want 80-95%%", what, goMemLimit, 100*r, limit)}
	}
	return nil
}

func TestComposeFile(t *testing.T) {
	cf, err := loadCompose(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkCompose(cf) {
		t.Error(p)
	}
	// The documented defaults.
	for svc, want := range map[string]string{
		"entry": "127.0.0.1:8080:8080", "relay": "127.0.0.1:8081-8089:8080",
		"node1": "127.0.0.1:8022:4222", "node3": "127.0.0.1:8003:9001",
	} {
		if p := cf.Services[svc].Ports; !slices.Contains(p, want) {
			t.Errorf("%s ports %v: want %s", svc, p, want)
		}
	}
	// One knob moves every host port, and the public URL with them.
	for _, v := range composeVar.FindAllStringSubmatch(mustRead(t, "compose.yaml"), -1) {
		if strings.HasSuffix(v[1], "_PORT") || strings.HasSuffix(v[1], "_PORTS") {
			t.Errorf("variable %s: host ports have one knob, HANGMAN_PORT_PREFIX", v[1])
		}
	}
	cf, err = loadCompose(map[string]string{"HANGMAN_PORT_PREFIX": "180", "HANGMAN_BIND": "0.0.0.0", "HANGMAN_PUBLIC_HOST": "play.example"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, name := range sortedKeys(cf.Services) {
		for _, p := range cf.Services[name].Ports {
			parts := strings.Split(p, ":")
			if len(parts) != 3 || !strings.HasPrefix(parts[1], "180") {
				t.Errorf("service %s: port %q does not follow HANGMAN_PORT_PREFIX=180", name, p)
				continue
			}
			if other, dup := seen[parts[1]]; dup {
				t.Errorf("host port %s published by %s and %s", parts[1], name, other)
			}
			seen[parts[1]] = name
			if name != "entry" && parts[0] != "127.0.0.1" {
				t.Errorf("service %s: port %q: only the entry follows HANGMAN_BIND", name, p)
			}
		}
	}
	if p := cf.Services["entry"].Ports; !slices.Equal(p, []string{"0.0.0.0:18080:8080"}) {
		t.Errorf("entry with HANGMAN_BIND=0.0.0.0, prefix 180: ports %v", p)
	}
	if u := cf.Services["relay"].Environment["HANGMAN_PUBLIC_URL"]; u != "http://play.example:18080" {
		t.Errorf("relay public URL %q with HANGMAN_PUBLIC_HOST=play.example and prefix 180, want http://play.example:18080", u)
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
		{"no healthcheck", "healthcheck", func(cf *composeFile) {
			r := cf.Services["relay"]
			r.Healthcheck = nil
			cf.Services["relay"] = r
		}},
		{"healthcheck on the wrong port", "healthcheck", func(cf *composeFile) {
			cf.Services["node2"].Healthcheck.Test[3] = "http://127.0.0.1:9001/readyz"
		}},
		{"public URL of a container", "want the public entry", func(cf *composeFile) {
			cf.Services["relay"].Environment["HANGMAN_PUBLIC_URL"] = "http://relay:8080"
		}},
		{"GOMEMLIMIT over the limit", "want 80-95%", func(cf *composeFile) { cf.Services["node1"].Environment["GOMEMLIMIT"] = "600MiB" }},
		{"entry to the nodes", "is not the relay service", func(cf *composeFile) { cf.Services["entry"].Environment["HANGMAN_TO"] = "node1:9001" }},
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

// secureFile is the security override, read strictly; certsDir stands
// for HANGMAN_CERTS in the tests.
const (
	secureFile = "compose.secure.yaml"
	certsDir   = "/certs-dir"
)

// checkSecure returns every problem of the security override sec over the
// base file cf: each node gets its own certificate and key, the CA and the
// secrets of `hangman certs` (security.env); the relay its certificate,
// the CA and its NATS password alone; nothing mounts the CA's key.
func checkSecure(cf, sec *composeFile) []string {
	var probs []string
	for _, name := range sortedKeys(sec.Services) {
		s := sec.Services[name]
		bad := func(format string, args ...any) {
			probs = append(probs, fmt.Sprintf("%s: service %s: %s", secureFile, name, fmt.Sprintf(format, args...)))
		}
		base, ok := cf.Services[name]
		if !ok || len(base.Command) == 0 {
			bad("not a service of compose.yaml")
			continue
		}
		sub := base.Command[0]
		mounts := map[string]string{} // container path -> file name in the certs dir
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) != 3 || parts[2] != "ro" || !strings.HasPrefix(parts[0], certsDir+"/") {
				bad("volume %q: want ${HANGMAN_CERTS}/FILE:PATH:ro", v)
				continue
			}
			file := strings.TrimPrefix(parts[0], certsDir+"/")
			if file == "ca-key.pem" {
				bad("mounts the CA's private key")
			}
			mounts[parts[1]] = file
		}
		for k := range s.Environment {
			if f := envFlag(k); f != "" {
				if _, ok := binaryFlags[sub][f]; !ok {
					bad("environment %s: hangman %s has no flag --%s", k, sub, f)
				}
			}
		}
		file := func(flag string) string {
			path := s.Environment[flagEnv(flag)]
			f, ok := mounts[path]
			if !ok {
				bad("--%s %q is not a mounted file", flag, path)
			}
			return f
		}
		var want map[string]string
		switch sub {
		case "node":
			id := base.Environment["HANGMAN_ID"]
			want = map[string]string{"tls-cert": id + ".pem", "tls-key": id + "-key.pem", "tls-ca": "ca.pem"}
			if s.EnvFile != certsDir+"/security.env" {
				bad("env_file %q, want the gossip key and NATS passwords of ${HANGMAN_CERTS}/security.env", s.EnvFile)
			}
		case "relay":
			want = map[string]string{"tls-cert": "relay.pem", "tls-key": "relay-key.pem", "tls-ca": "ca.pem", "nats-password-file": "relay-nats.password"}
			if s.EnvFile != "" {
				bad("env_file %q: a relay needs none of the nodes' secrets", s.EnvFile)
			}
		default:
			bad("hangman %s needs no secrets", sub)
		}
		for _, flag := range sortedKeys(want) {
			if got := file(flag); got != want[flag] {
				bad("--%s is %q, want %q", flag, got, want[flag])
			}
		}
		if len(mounts) != len(want) {
			bad("mounts %v, want exactly %v", mounts, want)
		}
	}
	for _, name := range sortedKeys(cf.Services) {
		if sub := cf.Services[name].Command[0]; (sub == "node" || sub == "relay") && sec.Services[name].Environment == nil {
			probs = append(probs, fmt.Sprintf("%s: service %s (hangman %s) is left without security", secureFile, name, sub))
		}
	}
	return probs
}

func TestComposeSecureFile(t *testing.T) {
	cf, err := loadCompose(nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := loadComposeFile(secureFile, map[string]string{"HANGMAN_CERTS": certsDir})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkSecure(cf, sec) {
		t.Error(p)
	}
	// The checks are not vacuous.
	sec.Services["node2"].Environment["HANGMAN_TLS_KEY"] = "/certs/node1-key.pem"
	r := sec.Services["relay"]
	r.Volumes = append(r.Volumes, certsDir+"/ca-key.pem:/certs/ca-key.pem:ro")
	sec.Services["relay"] = r
	delete(sec.Services, "node3")
	probs := strings.Join(checkSecure(cf, sec), "\n")
	for _, want := range []string{"node2: --tls-key", "mounts the CA's private key", "node3 (hangman node) is left without security"} {
		if !strings.Contains(probs, want) {
			t.Errorf("broken override: no problem mentions %q; got:\n%s", want, probs)
		}
	}
}

// TestComposeConfig has docker-compose itself parse the files (no engine
// is needed for that), where docker-compose is installed.
func TestComposeConfig(t *testing.T) {
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed; TestComposeFile stands alone")
	}
	certs := t.TempDir()
	if err := os.WriteFile(filepath.Join(certs, "security.env"), []byte("HANGMAN_GOSSIP_KEY=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// docker-compose takes seconds to start: two runs cover both files
	// and both ways of setting the knobs.
	for _, tc := range []struct{ args, env []string }{
		{[]string{"-f", "compose.yaml"}, nil},
		{[]string{"-f", "compose.yaml", "-f", secureFile}, []string{"HANGMAN_PORT_PREFIX=180", "HANGMAN_BIND=0.0.0.0", "HANGMAN_CERTS=" + certs}},
	} {
		cmd := exec.Command(dc, append(tc.args, "-p", "hangmanconfigcheck", "config", "-q")...)
		cmd.Env = append(os.Environ(), tc.env...)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("docker-compose %v config %v: %v\n%s", tc.args, tc.env, err, out)
		}
	}
}
