package deploy

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The checks of this file hold the manifests to what production needs
// beyond well-formed objects: stable names, security switched on, who may
// connect to whom, voters on distinct machines, memory the Go runtime
// knows of.

// envRef matches a Kubernetes dependent variable reference, $(NAME).
var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandedFlag is the value a container gives a flag in pod podName, with
// $(VAR) references to earlier variables expanded as the kubelet does and
// metadata.name resolved to podName. Values only a running pod knows (its
// IP, its node) are errors: they are not stable.
func expandedFlag(c *container, flag, podName string) (string, error) {
	e := envOf(c, flagEnv(flag))
	if e == nil {
		v, _ := flagValue(c, flag)
		return v, nil
	}
	return expandEnv(c, e, podName, 0)
}

func expandEnv(c *container, e *envVar, podName string, depth int) (string, error) {
	if depth > 8 {
		return "", fmt.Errorf("env %s: references nest too deep", e.Name)
	}
	if e.ValueFrom != nil {
		if fr := e.ValueFrom.FieldRef; fr != nil && fr.FieldPath == "metadata.name" {
			return podName, nil
		}
		return "", fmt.Errorf("env %s comes from a valueFrom that is not the pod's name: not a stable value", e.Name)
	}
	if e.Value == nil {
		return "", nil
	}
	var err error
	out := envRef.ReplaceAllStringFunc(*e.Value, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		// Only variables defined earlier in the list are expanded.
		for i := range c.Env {
			if c.Env[i].Name == e.Name {
				break
			}
			if c.Env[i].Name == name {
				v, verr := expandEnv(c, &c.Env[i], podName, depth+1)
				if verr != nil {
					err = verr
				}
				return v
			}
		}
		err = fmt.Errorf("env %s refers to $(%s), which is not defined before it", e.Name, name)
		return ref
	})
	return out, err
}

// checkStableNames refuses addresses that change when a pod is recreated:
// no container takes its pod IP or its machine's, and the relays' public
// URL is one fixed URL (a Service's or an Ingress's), the same for all.
func (m *manifests) checkStableNames() []string {
	var probs []string
	for _, w := range m.workloads() {
		for i := range w.template.Spec.Containers {
			c := &w.template.Spec.Containers[i]
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					switch e.ValueFrom.FieldRef.FieldPath {
					case "status.podIP", "status.podIPs", "status.hostIP":
						probs = append(probs, fmt.Sprintf("%s: container %q: env %s comes from %s, which changes when the pod is recreated", w, c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath))
					}
				}
			}
			if subcommand(c) != "relay" {
				continue
			}
			// The same literal URL in every pod: no reference to anything
			// of the pod's own.
			pub, fromRef := flagValue(c, "public-url")
			u, perr := url.Parse(pub)
			switch {
			case fromRef:
				probs = append(probs, fmt.Sprintf("%s: --public-url comes from a valueFrom: not one fixed http(s) URL", w))
			case pub == "":
				probs = append(probs, fmt.Sprintf("%s: no --public-url: relays would advertise their pod names to browsers", w))
			case perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || envRef.MatchString(pub):
				probs = append(probs, fmt.Sprintf("%s: --public-url %q is not one fixed http(s) URL", w, pub))
			}
		}
	}
	return probs
}

// checkSpread wants the raft voters on distinct machines (a required
// anti-affinity, or a hostname spread that may not be broken), and the
// relays spread over machines.
func (m *manifests) checkSpread() []string {
	var probs []string
	for _, w := range m.workloads() {
		spec := &w.template.Spec
		own := func(sel labelSelector) bool { return selects(sel.MatchLabels, w.template.Metadata.Labels) }
		strict, spread := false, false
		for _, tc := range spec.TopologySpreadConstraints {
			if tc.TopologyKey != "kubernetes.io/hostname" || !own(tc.LabelSelector) {
				continue
			}
			spread = true
			strict = strict || (tc.WhenUnsatisfiable == "DoNotSchedule" && tc.MaxSkew == 1)
		}
		if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
			for _, term := range a.PodAntiAffinity.Required {
				if term.TopologyKey == "kubernetes.io/hostname" && own(term.LabelSelector) {
					strict, spread = true, true
				}
			}
		}
		switch w.kind {
		case "StatefulSet":
			if !strict {
				probs = append(probs, fmt.Sprintf("%s: raft voters may share a machine: want a required pod anti-affinity or a hostname topology spread with maxSkew 1 and DoNotSchedule", w))
			}
		default:
			if !spread {
				probs = append(probs, fmt.Sprintf("%s: no topology spread over machines", w))
			}
		}
	}
	return probs
}

// checkMemory wants GOMEMLIMIT at about 90% of every container's memory
// limit.
func (m *manifests) checkMemory() []string {
	var probs []string
	for _, w := range m.workloads() {
		for i := range w.template.Spec.Containers {
			c := &w.template.Spec.Containers[i]
			gml := ""
			if e := envOf(c, "GOMEMLIMIT"); e != nil && e.Value != nil {
				gml = *e.Value
			}
			probs = append(probs, checkMemLimit(fmt.Sprintf("%s container %q", w, c.Name), c.Resources.Limits["memory"], gml)...)
		}
	}
	return probs
}

// podPort is a named container port with its protocol.
type podPort struct {
	name, proto string
	number      int
}

func (w workload) ports() []podPort {
	var out []podPort
	for _, c := range w.template.Spec.Containers {
		for _, p := range c.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			out = append(out, podPort{p.Name, proto, p.ContainerPort})
		}
	}
	return out
}

// nodePeerPorts are the node ports only nodes may reach; relayPorts are
// those relays need on the nodes.
var (
	nodePeerPorts = []string{"raft", "serf-tcp", "serf-udp", "nats-cluster"}
	relayPorts    = []string{"grpc", "nats"}
)

// who may reach a port of a workload's pods: "any" (a rule with no from,
// or a from beyond pod selectors) or the workloads whose pods it selects.
type reach struct {
	any  bool
	from map[string]bool // workload name
}

// reachOf works out, from every NetworkPolicy selecting w's pods, who may
// reach each of w's ports. ok is false when no policy selects them (all
// traffic allowed).
func (m *manifests) reachOf(w workload) (out map[string]*reach, ok bool, probs []string) {
	out = map[string]*reach{}
	ports := w.ports()
	for _, p := range ports {
		out[p.name] = &reach{from: map[string]bool{}}
	}
	for _, np := range m.netpols {
		if len(np.Spec.PodSelector.MatchLabels) == 0 || !selects(np.Spec.PodSelector.MatchLabels, w.template.Metadata.Labels) {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
			continue
		}
		ok = true
		for _, rule := range np.Spec.Ingress {
			var covered []podPort
			if len(rule.Ports) == 0 {
				covered = ports
			}
			for _, rp := range rule.Ports {
				proto := rp.Protocol
				if proto == "" {
					proto = "TCP"
				}
				found := false
				for _, p := range ports {
					if p.proto == proto && ((rp.Port.IsInt && rp.Port.Int == p.number) || (!rp.Port.IsInt && rp.Port.String == p.name)) {
						covered = append(covered, p)
						found = true
					}
				}
				if !found {
					probs = append(probs, fmt.Sprintf("NetworkPolicy %s: port %s/%s is no container port of %s", np.Metadata.Name, rp.Port.text(), proto, w))
				}
			}
			for _, p := range covered {
				r := out[p.name]
				if len(rule.From) == 0 {
					r.any = true
				}
				for _, f := range rule.From {
					if f.PodSelector == nil || f.NamespaceSelector != nil || f.IPBlock != nil {
						r.any = true
						continue
					}
					for _, src := range m.selected(f.PodSelector.MatchLabels) {
						r.from[src.name] = true
					}
					if len(m.selected(f.PodSelector.MatchLabels)) == 0 {
						probs = append(probs, fmt.Sprintf("NetworkPolicy %s: a podSelector %v selects no workload", np.Metadata.Name, f.PodSelector.MatchLabels))
					}
				}
			}
		}
	}
	return out, ok, probs
}

// checkNetworkPolicies: only nodes reach the nodes' raft, serf and NATS
// route ports; only nodes and relays reach gRPC (GameService and the
// node-only ReplicaService share it) and NATS; nodes reach everything of
// each other, relays what they need; the relays' web port stays open.
func (m *manifests) checkNetworkPolicies() []string {
	var probs []string
	var nodeSets, relays []string
	for _, w := range m.workloads() {
		for i := range w.template.Spec.Containers {
			switch subcommand(&w.template.Spec.Containers[i]) {
			case "node":
				nodeSets = append(nodeSets, w.name)
			case "relay":
				relays = append(relays, w.name)
			}
		}
	}
	for _, w := range m.workloads() {
		r, ok, p := m.reachOf(w)
		probs = append(probs, p...)
		if !ok {
			probs = append(probs, fmt.Sprintf("%s: no NetworkPolicy selects its pods: every pod in the cluster may reach every port", w))
			continue
		}
		bad := func(format string, args ...any) { probs = append(probs, w.String()+": "+fmt.Sprintf(format, args...)) }
		if slices.Contains(nodeSets, w.name) {
			for _, port := range w.ports() {
				pr := r[port.name]
				// Nodes reach all of each other.
				if port.name != "http" && !pr.any && !pr.from[w.name] {
					bad("port %s is closed to the other nodes", port.name)
				}
				allowed := []string{w.name}
				switch {
				case slices.Contains(nodePeerPorts, port.name):
				case slices.Contains(relayPorts, port.name):
					allowed = append(allowed, relays...)
					for _, rl := range relays {
						if !pr.any && !pr.from[rl] {
							bad("port %s is closed to the relays (%s)", port.name, rl)
						}
					}
				default:
					continue // health and metrics
				}
				if pr.any {
					bad("port %s is open to any pod; only %v may reach it", port.name, allowed)
				}
				for src := range pr.from {
					if !slices.Contains(allowed, src) {
						bad("port %s is open to %s; only %v may reach it", port.name, src, allowed)
					}
				}
			}
		}
		if slices.Contains(relays, w.name) {
			if pr := r["http"]; pr == nil || !pr.any {
				bad("the web port is not open to browsers' load balancer")
			}
		}
	}
	return probs
}

// checkIngress: the Ingress sends browsers to the relays' Service, and the
// relays advertise the Ingress's URL.
func (m *manifests) checkIngress(ing *ingress) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, "Ingress "+ing.Metadata.Name+": "+fmt.Sprintf(format, args...))
	}
	for _, rule := range ing.Spec.Rules {
		scheme := "http"
		for _, t := range ing.Spec.TLS {
			if slices.Contains(t.Hosts, rule.Host) {
				scheme = "https"
			}
		}
		for _, p := range rule.HTTP.Paths {
			be := p.Backend.Service
			svc := m.services[be.Name]
			if svc == nil {
				bad("backend Service %q does not exist", be.Name)
				continue
			}
			found := false
			for _, sp := range svc.Spec.Ports {
				found = found || (be.Port.Name != "" && sp.Name == be.Port.Name) || (be.Port.Number != 0 && sp.Port == be.Port.Number)
			}
			if !found {
				bad("backend Service %s has no port %q/%d", be.Name, be.Port.Name, be.Port.Number)
			}
			for _, w := range m.selected(svc.Spec.Selector) {
				for i := range w.template.Spec.Containers {
					c := &w.template.Spec.Containers[i]
					if subcommand(c) != "relay" {
						bad("backend Service %s selects %s, which runs no relay", be.Name, w)
						continue
					}
					pub, _ := flagValue(c, "public-url")
					if want := scheme + "://" + rule.Host; strings.TrimRight(pub, "/") != want {
						bad("relays of %s advertise %q, want the Ingress's URL %s", w, pub, want)
					}
				}
			}
		}
	}
	return probs
}

// securityEnvKeys are the variables of the security.env that `hangman
// certs` writes (TestCompose checks this list against the real file).
var securityEnvKeys = []string{
	"HANGMAN_GOSSIP_KEY", "HANGMAN_NATS_NODE_PASSWORD", "HANGMAN_NATS_RELAY_PASSWORD",
	"HANGMAN_NATS_WATCHER_PASSWORD", "HANGMAN_NATS_PLAYER_PASSWORD", "HANGMAN_NATS_PASSWORD",
}

// secretsSpec is what `task deploy:secrets` makes: each Secret's keys, and
// the node ids it issues certificates for.
type secretsSpec struct {
	secrets map[string][]string
	nodeIDs []string
}

// loadSecretsSpec reads the secrets task of Taskfile.deploy.yml: its
// `hangman certs --nodes` list and its `kubectl create secret generic`
// commands (--from-file=PATH is key base(PATH), --from-env-file of a
// security.env is securityEnvKeys).
func loadSecretsSpec() (*secretsSpec, error) {
	data, err := os.ReadFile("Taskfile.deploy.yml")
	if err != nil {
		return nil, err
	}
	var tf struct {
		Tasks map[string]struct {
			Cmds []string `yaml:"cmds"`
		} `yaml:"tasks"`
	}
	if err := yaml.Unmarshal(data, &tf); err != nil {
		return nil, err
	}
	task, ok := tf.Tasks["secrets"]
	if !ok {
		return nil, fmt.Errorf("Taskfile.deploy.yml has no secrets task")
	}
	spec := &secretsSpec{secrets: map[string][]string{}}
	for _, cmd := range task.Cmds {
		f := strings.Fields(cmd)
		if i := slices.Index(f, "certs"); i >= 0 {
			if j := slices.Index(f, "--nodes"); j >= 0 && j+1 < len(f) {
				spec.nodeIDs = strings.Split(f[j+1], ",")
			}
		}
		i := slices.Index(f, "generic")
		if i < 0 || i+1 >= len(f) || i == 0 || f[i-1] != "secret" {
			continue
		}
		name := f[i+1]
		var keys []string
		for _, a := range f[i+2:] {
			if v, ok := strings.CutPrefix(a, "--from-file="); ok {
				if k, _, ok := strings.Cut(v, "="); ok {
					keys = append(keys, k)
				} else {
					keys = append(keys, path.Base(v))
				}
			}
			if v, ok := strings.CutPrefix(a, "--from-env-file="); ok {
				if path.Base(v) != "security.env" {
					return nil, fmt.Errorf("secret %s: --from-env-file %s is not the security.env of hangman certs", name, v)
				}
				keys = append(keys, securityEnvKeys...)
			}
		}
		spec.secrets[name] = keys
	}
	return spec, nil
}

// checkSecurity: TLS, the gossip key and the NATS passwords are switched on
// from Secrets that the secrets task makes, each pod gets only what it
// needs, and the CA's key never enters the cluster.
func (m *manifests) checkSecurity(spec *secretsSpec) []string {
	var probs []string
	for name, keys := range spec.secrets {
		if slices.Contains(keys, "ca-key.pem") {
			probs = append(probs, fmt.Sprintf("task deploy:secrets: Secret %s holds the CA's private key", name))
		}
	}
	for _, w := range m.workloads() {
		bad := func(format string, args ...any) { probs = append(probs, w.String()+": "+fmt.Sprintf(format, args...)) }
		pod := w.template.Spec
		secretVol := map[string]string{} // volume name -> Secret name
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				secretVol[v.Name] = v.Secret.SecretName
				if _, ok := spec.secrets[v.Secret.SecretName]; !ok {
					bad("volume %s: Secret %s is not one `task deploy:secrets` makes", v.Name, v.Secret.SecretName)
				}
				if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
					bad("volume %s: Secret files must not be world-readable (defaultMode)", v.Name)
				}
			}
		}
		for i := range pod.Containers {
			c := &pod.Containers[i]
			sub := subcommand(c)
			// fileIn resolves a flag naming a file to (Secret, key) in pod
			// podName.
			fileIn := func(flag, podName string) (string, string) {
				v, err := expandedFlag(c, flag, podName)
				if err != nil || v == "" {
					bad("--%s is not set (%v): security is off", flag, err)
					return "", ""
				}
				for _, vm := range c.VolumeMounts {
					if sec, ok := secretVol[vm.Name]; ok && strings.HasPrefix(v, vm.MountPath+"/") {
						if !vm.ReadOnly {
							bad("Secret volume %s is mounted writable", vm.Name)
						}
						key := strings.TrimPrefix(v, vm.MountPath+"/")
						if !slices.Contains(spec.secrets[sec], key) {
							bad("--%s %s: Secret %s has no key %q (task deploy:secrets puts %v in it)", flag, v, sec, key, spec.secrets[sec])
						}
						return sec, key
					}
				}
				bad("--%s %s is not in a mounted Secret", flag, v)
				return "", ""
			}
			// fromSecret checks a flag comes from a Secret key the task
			// makes, and returns it.
			fromSecret := func(flag string) string {
				e := envOf(c, flagEnv(flag))
				if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					bad("--%s does not come from a Secret (secretKeyRef)", flag)
					return ""
				}
				ref := e.ValueFrom.SecretKeyRef
				if !slices.Contains(spec.secrets[ref.Name], ref.Key) {
					bad("--%s: Secret %s key %s is not made by task deploy:secrets", flag, ref.Name, ref.Key)
				}
				return ref.Key
			}
			switch sub {
			case "node":
				pods := nodeDNSNames(m.statefulSets[w.name])
				for _, i := range pods {
					podName := fmt.Sprintf("%s-%d", w.name, i)
					if !slices.Contains(spec.nodeIDs, podName) {
						bad("pod %s has no certificate: task deploy:secrets issues them for %v", podName, spec.nodeIDs)
					}
					for flag, want := range map[string]string{"tls-cert": podName + ".pem", "tls-key": podName + "-key.pem", "tls-ca": "ca.pem"} {
						if _, key := fileIn(flag, podName); key != "" && key != want {
							bad("pod %s: --%s is %s, want its own %s", podName, flag, key, want)
						}
					}
				}
				if envOf(c, "HANGMAN_GOSSIP_KEY_FILE") != nil {
					fileIn("gossip-key-file", w.name+"-0")
				} else {
					fromSecret("gossip-key")
				}
				for _, f := range []string{"nats-node-password", "nats-relay-password", "nats-watcher-password", "nats-player-password"} {
					if k := fromSecret(f); k != "" && k != flagEnv(f) {
						bad("--%s comes from key %s", f, k)
					}
				}
			case "relay":
				for flag, want := range map[string]string{"tls-cert": "relay.pem", "tls-key": "relay-key.pem", "tls-ca": "ca.pem"} {
					if _, key := fileIn(flag, w.name+"-x"); key != "" && key != want {
						bad("--%s is %s, want %s", flag, key, want)
					}
				}
				if k := fromSecret("nats-password"); k != "" && k != "HANGMAN_NATS_RELAY_PASSWORD" {
					bad("--nats-password comes from key %s, want the nodes' HANGMAN_NATS_RELAY_PASSWORD", k)
				}
				// Least privilege: a relay holds no node secret.
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.Name != "HANGMAN_NATS_PASSWORD" {
						bad("env %s: a relay gets Secret key %s it does not need", e.Name, e.ValueFrom.SecretKeyRef.Key)
					}
				}
			}
		}
	}
	return probs
}
