package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// binaryFlags is the command line of `hangman node` and `hangman relay` as
// the deployment files may use it, with the defaults of the listen addresses.
// Every flag is also HANGMAN_<FLAG> in the environment. TestCompose checks
// this list against the real binary's -h output.
var binaryFlags = map[string]map[string]string{
	"node": {
		"id": "", "data-dir": "data",
		"grpc-addr": "0.0.0.0:9001", "raft-addr": "0.0.0.0:7001", "serf-addr": "0.0.0.0:7946",
		"nats-addr": "0.0.0.0:4222", "nats-cluster-addr": "0.0.0.0:6222", "http-addr": "0.0.0.0:9101",
		"advertise": "", "join": "", "bootstrap-expect": "", "recover": "",
		"tls-cert": "", "tls-key": "", "tls-ca": "", "gossip-key": "", "gossip-key-file": "",
		"nats-node-password": "", "nats-relay-password": "", "nats-watcher-password": "", "nats-player-password": "",
		"log-level": "info", "log-format": "text",
	},
	"relay": {
		"listen": "0.0.0.0:8080", "nats": "", "grpc": "", "name": "", "public-url": "", "allowed-origins": "",
		"max-conns-per-addr": "", "trusted-proxies": "",
		"tls-cert": "", "tls-key": "", "tls-ca": "", "nats-user": "relay", "nats-password": "", "nats-password-file": "",
		"log-level": "info", "log-format": "text",
	},
	"proxy": {
		"listen": "0.0.0.0:8080", "to": "relay:8080", "check-path": "/readyz", "check-interval": "", "dial-timeout": "",
		"log-level": "info", "log-format": "text",
	},
}

// listenFlags are the flags of each subcommand that open a port, with the
// protocols on it: each must be a declared container port.
var listenFlags = map[string]map[string][]string{
	"node": {
		"grpc-addr": {"TCP"}, "raft-addr": {"TCP"}, "serf-addr": {"TCP", "UDP"},
		"nats-addr": {"TCP"}, "nats-cluster-addr": {"TCP"}, "http-addr": {"TCP"},
	},
	"relay": {"listen": {"TCP"}},
	"proxy": {"listen": {"TCP"}},
}

// healthFlag names, per subcommand, the flag whose address serves /healthz
// and /readyz (the proxy's are its relays', through it).
var healthFlag = map[string]string{"node": "http-addr", "relay": "listen", "proxy": "listen"}

// flagEnv is the environment variable that sets a flag.
func flagEnv(flag string) string {
	return "HANGMAN_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envFlag is the flag an environment variable sets, or "" if the variable
// is not of the HANGMAN_ form.
func envFlag(env string) string {
	rest, ok := strings.CutPrefix(env, "HANGMAN_")
	if !ok {
		return ""
	}
	return strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
}

// knownKinds are the apiVersion/kind pairs the manifests may contain.
var knownKinds = map[string]bool{
	"v1/Service":                             true,
	"apps/v1/StatefulSet":                    true,
	"apps/v1/Deployment":                     true,
	"policy/v1/PodDisruptionBudget":          true,
	"autoscaling/v2/HorizontalPodAutoscaler": true,
	"networking.k8s.io/v1/NetworkPolicy":     true,
	"networking.k8s.io/v1/Ingress":           true,
}

// manifests is every object of deploy/k8s, decoded strictly.
type manifests struct {
	files        []string // manifest files, relative to k8s/
	kustomize    *kustomization
	services     map[string]*service
	statefulSets map[string]*statefulSet
	deployments  map[string]*deployment
	pdbs         map[string]*podDisruptionBudget
	hpas         map[string]*horizontalPodAutoscaler
	netpols      map[string]*networkPolicy
	ingresses    map[string]*ingress
	order        []string // kind/name in file order
}

func newManifests() *manifests {
	return &manifests{
		services:     map[string]*service{},
		statefulSets: map[string]*statefulSet{},
		deployments:  map[string]*deployment{},
		pdbs:         map[string]*podDisruptionBudget{},
		hpas:         map[string]*horizontalPodAutoscaler{},
		netpols:      map[string]*networkPolicy{},
		ingresses:    map[string]*ingress{},
	}
}

// loadManifests reads and strictly decodes deploy/k8s.
func loadManifests(dir string) (*manifests, error) {
	m := newManifests()
	paths, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		base := filepath.Base(p)
		if base == "kustomization.yaml" || base == "kustomization.yml" {
			var k kustomization
			if err := decodeStrict(data, 1, func(i int, dec *yaml.Decoder) error { return dec.Decode(&k) }); err != nil {
				return nil, fmt.Errorf("%s: %w", base, err)
			}
			m.kustomize = &k
			continue
		}
		m.files = append(m.files, base)
		if err := m.add(base, data); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeStrict walks the documents of data twice: once to learn their kinds
// (a decode into yaml.Node), then with unknown fields forbidden, calling
// decode for each non-empty document.
func decodeStrict(data []byte, max int, decode func(i int, dec *yaml.Decoder) error) error {
	var docs []*yaml.Node
	d := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := d.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		docs = append(docs, &n)
	}
	if max > 0 && len(docs) > max {
		return fmt.Errorf("%d documents, want at most %d", len(docs), max)
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	for i, n := range docs {
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			var skip yaml.Node
			if err := strict.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		if err := decode(i, strict); err != nil {
			return fmt.Errorf("document at line %d: %w", n.Line, err)
		}
	}
	return nil
}

func (m *manifests) add(file string, data []byte) error {
	var kinds []typeMeta
	d := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var tm typeMeta
		var n yaml.Node
		err := d.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if len(n.Content) > 0 {
			if err := n.Decode(&tm); err != nil {
				return fmt.Errorf("%s line %d: %w", file, n.Line, err)
			}
		}
		kinds = append(kinds, tm)
	}
	err := decodeStrict(data, 0, func(i int, dec *yaml.Decoder) error {
		tm := kinds[i]
		key := tm.APIVersion + "/" + tm.Kind
		if !knownKinds[key] {
			return fmt.Errorf("unknown apiVersion/kind %q", key)
		}
		var name string
		var dup bool
		switch tm.Kind {
		case "Service":
			var o service
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.services[name]
			m.services[name] = &o
		case "StatefulSet":
			var o statefulSet
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.statefulSets[name]
			m.statefulSets[name] = &o
		case "Deployment":
			var o deployment
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.deployments[name]
			m.deployments[name] = &o
		case "PodDisruptionBudget":
			var o podDisruptionBudget
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.pdbs[name]
			m.pdbs[name] = &o
		case "HorizontalPodAutoscaler":
			var o horizontalPodAutoscaler
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.hpas[name]
			m.hpas[name] = &o
		case "NetworkPolicy":
			var o networkPolicy
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.netpols[name]
			m.netpols[name] = &o
		case "Ingress":
			var o ingress
			if err := dec.Decode(&o); err != nil {
				return err
			}
			name = o.Metadata.Name
			_, dup = m.ingresses[name]
			m.ingresses[name] = &o
		}
		if dup {
			return fmt.Errorf("duplicate %s %q", tm.Kind, name)
		}
		m.order = append(m.order, tm.Kind+"/"+name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// workload is what a StatefulSet and a Deployment have in common.
type workload struct {
	kind, name     string
	replicas       int
	labels         map[string]string // of the object itself
	selector       labelSelector
	template       *podTemplate
	claimTemplates []string
}

func (w workload) String() string { return w.kind + " " + w.name }

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, n := range sortedKeys(m.statefulSets) {
		s := m.statefulSets[n]
		w := workload{kind: "StatefulSet", name: n, replicas: 1, labels: s.Metadata.Labels, selector: s.Spec.Selector, template: &s.Spec.Template}
		if s.Spec.Replicas != nil {
			w.replicas = *s.Spec.Replicas
		}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claimTemplates = append(w.claimTemplates, c.Metadata.Name)
		}
		ws = append(ws, w)
	}
	for _, n := range sortedKeys(m.deployments) {
		d := m.deployments[n]
		w := workload{kind: "Deployment", name: n, replicas: 1, labels: d.Metadata.Labels, selector: d.Spec.Selector, template: &d.Spec.Template}
		if d.Spec.Replicas != nil {
			w.replicas = *d.Spec.Replicas
		}
		ws = append(ws, w)
	}
	return ws
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// selects reports whether a selector (a label map) selects pods labelled l.
func selects(sel, l map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if l[k] != v {
			return false
		}
	}
	return true
}

// selected lists the workloads whose pods sel selects.
func (m *manifests) selected(sel map[string]string) []workload {
	var out []workload
	for _, w := range m.workloads() {
		if selects(sel, w.template.Metadata.Labels) {
			out = append(out, w)
		}
	}
	return out
}

// subcommand is the hangman subcommand a container runs, or "".
func subcommand(c *container) string {
	args := append(slices.Clone(c.Command), c.Args...)
	if len(args) > 0 && args[0] == "/hangman" {
		args = args[1:]
	}
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// flagValue is the value a container gives a flag: from its arguments, else
// from its environment (a literal value; "" with fromRef=true for a
// valueFrom), else the binary's default.
func flagValue(c *container, flag string) (value string, fromRef bool) {
	args := append(slices.Clone(c.Command), c.Args...)
	for i, a := range args {
		for _, p := range []string{"--" + flag, "-" + flag} {
			if a == p && i+1 < len(args) {
				return args[i+1], false
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, false
			}
		}
	}
	for _, e := range c.Env {
		if e.Name == flagEnv(flag) {
			if e.Value != nil {
				return *e.Value, false
			}
			return "", true
		}
	}
	return binaryFlags[subcommand(c)][flag], false
}

func envOf(c *container, name string) *envVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// port of a listen address like 0.0.0.0:9001.
func addrPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// containerPort resolves a probe's or a Service's target port (a number or a
// name) to a declared container port with protocol proto.
func containerPort(cs []container, target intOrString, proto string) (int, bool) {
	for _, c := range cs {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = "TCP"
			}
			if pp != proto {
				continue
			}
			if (target.IsInt && p.ContainerPort == target.Int) || (!target.IsInt && target.String != "" && p.Name == target.String) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	ianaSvcName  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// check returns every problem found in m; none is the goal.
func (m *manifests) check() []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	// The kustomization lists exactly the manifest files (of a directory
	// read file by file; a rendered kustomization has none).
	if m.kustomize == nil && len(m.files) > 0 {
		bad("kustomization.yaml: missing")
	} else if m.kustomize != nil {
		k := m.kustomize
		if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
			bad("kustomization.yaml: apiVersion/kind %s/%s", k.APIVersion, k.Kind)
		}
		if k.Namespace != "" {
			bad("kustomization.yaml: sets namespace %q; the base must stay namespace-agnostic", k.Namespace)
		}
		got, want := slices.Sorted(slices.Values(k.Resources)), slices.Sorted(slices.Values(m.files))
		if !slices.Equal(got, want) {
			bad("kustomization.yaml: resources %v, want every manifest file %v", got, want)
		}
	}

	// Every object: named, no namespace, labelled.
	type named struct {
		kind string
		meta objectMeta
	}
	var all []named
	for _, s := range m.services {
		all = append(all, named{"Service", s.Metadata})
	}
	for _, s := range m.statefulSets {
		all = append(all, named{"StatefulSet", s.Metadata})
	}
	for _, s := range m.deployments {
		all = append(all, named{"Deployment", s.Metadata})
	}
	for _, s := range m.pdbs {
		all = append(all, named{"PodDisruptionBudget", s.Metadata})
	}
	for _, s := range m.hpas {
		all = append(all, named{"HorizontalPodAutoscaler", s.Metadata})
	}
	for _, s := range m.netpols {
		all = append(all, named{"NetworkPolicy", s.Metadata})
	}
	for _, s := range m.ingresses {
		all = append(all, named{"Ingress", s.Metadata})
	}
	for _, o := range all {
		if !dns1123Label.MatchString(o.meta.Name) || len(o.meta.Name) > 63 {
			bad("%s %q: name is not a DNS-1123 label", o.kind, o.meta.Name)
		}
		if o.meta.Namespace != "" {
			bad("%s %s: sets namespace %q; manifests must be namespace-agnostic", o.kind, o.meta.Name, o.meta.Namespace)
		}
		if o.meta.Labels["app.kubernetes.io/name"] == "" {
			bad("%s %s: no app.kubernetes.io/name label", o.kind, o.meta.Name)
		}
	}
	if len(m.statefulSets) == 0 {
		bad("no StatefulSet (game nodes)")
	}
	if len(m.deployments) == 0 {
		bad("no Deployment (relays)")
	}

	for _, w := range m.workloads() {
		probs = append(probs, m.checkWorkload(w)...)
	}
	// No two workloads share pods: each selector selects its own only.
	for _, w := range m.workloads() {
		if got := m.selected(w.selector.MatchLabels); len(got) != 1 {
			bad("%s: selector %v selects %d workloads' pods, want exactly its own", w, w.selector.MatchLabels, len(got))
		}
	}

	for _, n := range sortedKeys(m.services) {
		probs = append(probs, m.checkService(m.services[n])...)
	}
	for _, n := range sortedKeys(m.statefulSets) {
		probs = append(probs, m.checkNodes(m.statefulSets[n])...)
	}
	for _, n := range sortedKeys(m.deployments) {
		probs = append(probs, m.checkRelays(m.deployments[n])...)
	}
	for _, n := range sortedKeys(m.pdbs) {
		probs = append(probs, m.checkPDB(m.pdbs[n])...)
	}
	for _, n := range sortedKeys(m.hpas) {
		probs = append(probs, m.checkHPA(m.hpas[n])...)
	}
	probs = append(probs, m.checkStableNames()...)
	probs = append(probs, m.checkSpread()...)
	probs = append(probs, m.checkMemory()...)
	probs = append(probs, m.checkNetworkPolicies()...)
	for _, n := range sortedKeys(m.ingresses) {
		probs = append(probs, m.checkIngress(m.ingresses[n])...)
	}
	// Each kind of workload is covered as the issue asks.
	for _, n := range sortedKeys(m.statefulSets) {
		if !m.hasPDBFor(m.statefulSets[n].Spec.Template.Metadata.Labels) {
			bad("StatefulSet %s: no PodDisruptionBudget", n)
		}
	}
	for _, n := range sortedKeys(m.deployments) {
		d := m.deployments[n]
		hasHPA, hasSvc := false, false
		for _, h := range m.hpas {
			hasHPA = hasHPA || (h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == n)
		}
		for _, s := range m.services {
			hasSvc = hasSvc || selects(s.Spec.Selector, d.Spec.Template.Metadata.Labels)
		}
		if !hasHPA {
			bad("Deployment %s: no HorizontalPodAutoscaler", n)
		}
		if !hasSvc {
			bad("Deployment %s: no Service selects its pods", n)
		}
	}
	return probs
}

func (m *manifests) hasPDBFor(labels map[string]string) bool {
	for _, p := range m.pdbs {
		if selects(p.Spec.Selector.MatchLabels, labels) {
			return true
		}
	}
	return false
}

func (m *manifests) checkWorkload(w workload) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, w.String()+": "+fmt.Sprintf(format, args...)) }
	if len(w.selector.MatchLabels) == 0 {
		bad("selector has no matchLabels")
	}
	if len(w.selector.MatchExpressions) > 0 {
		bad("selector matchExpressions are not checked here; use matchLabels")
	}
	if !selects(w.selector.MatchLabels, w.template.Metadata.Labels) {
		bad("selector %v does not match the pod template labels %v", w.selector.MatchLabels, w.template.Metadata.Labels)
	}
	if w.replicas < 1 {
		bad("replicas %d", w.replicas)
	}
	spec := &w.template.Spec
	if len(spec.Containers) == 0 {
		bad("no containers")
	}
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	if spec.SecurityContext != nil && spec.SecurityContext.RunAsUser != nil && *spec.SecurityContext.RunAsUser == 0 {
		bad("pod runs as uid 0")
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if volumes[v.Name] {
			bad("volume %q declared twice", v.Name)
		}
		volumes[v.Name] = true
		sources := 0
		for _, set := range []bool{v.EmptyDir != nil, v.PersistentVolumeClaim != nil, v.Secret != nil} {
			if set {
				sources++
			}
		}
		if sources != 1 {
			bad("volume %q: want exactly one source", v.Name)
		}
	}
	for _, ct := range w.claimTemplates {
		if volumes[ct] {
			bad("volume %q is both a pod volume and a claim template", ct)
		}
		volumes[ct] = true
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cbad := func(format string, args ...any) { bad("container %q: %s", c.Name, fmt.Sprintf(format, args...)) }
		if c.Name == "" || c.Image == "" {
			cbad("needs a name and an image")
		}
		sub := subcommand(c)
		flags, ok := binaryFlags[sub]
		if !ok {
			cbad("runs %q, want hangman node or hangman relay", sub)
			continue
		}
		// Flags on the command line and in the environment exist.
		args := append(slices.Clone(c.Command), c.Args...)
		for _, a := range args[slices.Index(args, sub)+1:] {
			if !strings.HasPrefix(a, "-") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if _, ok := flags[name]; !ok {
				cbad("argument %q: hangman %s has no flag --%s", a, sub, name)
			}
		}
		seen := map[string]bool{}
		for _, e := range c.Env {
			if seen[e.Name] {
				cbad("env %s set twice", e.Name)
			}
			seen[e.Name] = true
			if (e.Value == nil) == (e.ValueFrom == nil) {
				cbad("env %s: want exactly one of value and valueFrom", e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				switch e.ValueFrom.FieldRef.FieldPath {
				case "metadata.name", "metadata.namespace", "status.podIP", "status.hostIP", "spec.nodeName":
				default:
					cbad("env %s: fieldRef %q is not a downward API field used here", e.Name, e.ValueFrom.FieldRef.FieldPath)
				}
			}
			if f := envFlag(e.Name); f != "" {
				if _, ok := flags[f]; !ok {
					cbad("env %s: hangman %s has no flag --%s", e.Name, sub, f)
				}
			}
		}
		// Ports: unique, named, and every listen flag's port declared.
		pnames := map[string]bool{}
		pkeys := map[string]bool{}
		for _, p := range c.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			if p.Name == "" || !ianaSvcName.MatchString(p.Name) || len(p.Name) > 15 {
				cbad("port %d: name %q is not an IANA service name (<= 15 chars)", p.ContainerPort, p.Name)
			}
			if pnames[p.Name] {
				cbad("port name %q twice", p.Name)
			}
			pnames[p.Name] = true
			key := fmt.Sprintf("%d/%s", p.ContainerPort, proto)
			if pkeys[key] {
				cbad("port %s twice", key)
			}
			pkeys[key] = true
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				cbad("port %d out of range", p.ContainerPort)
			}
		}
		for _, flag := range sortedKeys(listenFlags[sub]) {
			v, ref := flagValue(c, flag)
			if ref {
				cbad("--%s comes from valueFrom; the listen port must be known", flag)
				continue
			}
			port, err := addrPort(v)
			if err != nil {
				cbad("--%s %q: %v", flag, v, err)
				continue
			}
			for _, proto := range listenFlags[sub][flag] {
				if !pkeys[fmt.Sprintf("%d/%s", port, proto)] {
					cbad("--%s listens on %d/%s, which is not a declared container port", flag, port, proto)
				}
			}
		}
		// Probes on the real health endpoints, on the health listener.
		hv, _ := flagValue(c, healthFlag[sub])
		hport, _ := addrPort(hv)
		for _, pr := range []struct {
			name, path string
			p          *probe
			required   bool
		}{
			{"readinessProbe", "/readyz", c.ReadinessProbe, true},
			{"livenessProbe", "/healthz", c.LivenessProbe, true},
			{"startupProbe", "/healthz", c.StartupProbe, false},
		} {
			if pr.p == nil {
				if pr.required {
					cbad("no %s", pr.name)
				}
				continue
			}
			if pr.p.HTTPGet == nil {
				cbad("%s: want httpGet %s", pr.name, pr.path)
				continue
			}
			if pr.p.HTTPGet.Path != pr.path {
				cbad("%s: path %q, want %q", pr.name, pr.p.HTTPGet.Path, pr.path)
			}
			port, ok := containerPort(spec.Containers, pr.p.HTTPGet.Port, "TCP")
			if !ok {
				cbad("%s: port %q is not a container port", pr.name, pr.p.HTTPGet.Port.text())
			} else if port != hport {
				cbad("%s: port %d, but /healthz and /readyz are served on --%s port %d", pr.name, port, healthFlag[sub], hport)
			}
			if pr.p.TimeoutSeconds > 0 && pr.p.PeriodSeconds > 0 && pr.p.TimeoutSeconds > pr.p.PeriodSeconds {
				cbad("%s: timeout longer than period", pr.name)
			}
		}
		// Resources, for the scheduler and for the autoscaler.
		for _, r := range []string{"cpu", "memory"} {
			if c.Resources.Requests[r] == "" {
				cbad("no %s request", r)
			}
			if c.Resources.Limits[r] == "" {
				cbad("no %s limit", r)
			}
		}
		// Hardening.
		sc := c.SecurityContext
		nonRoot := podNonRoot || (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
		if !nonRoot {
			cbad("runAsNonRoot is not set")
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			cbad("readOnlyRootFilesystem is not true")
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			cbad("allowPrivilegeEscalation is not false")
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			cbad("capabilities do not drop ALL")
		}
		// Mounts exist, and a node's data dir is on a claim template.
		mounts := map[string]string{}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				cbad("volumeMount %q: no such volume", vm.Name)
			}
			if _, dup := mounts[vm.MountPath]; dup {
				cbad("two volumes mounted at %s", vm.MountPath)
			}
			mounts[vm.MountPath] = vm.Name
		}
		if sub == "node" {
			dir, _ := flagValue(c, "data-dir")
			vol, ok := mounts[dir]
			if !ok || !slices.Contains(w.claimTemplates, vol) {
				cbad("--data-dir %q is not a mounted volumeClaimTemplate (mounts %v)", dir, mounts)
			}
		}
	}
	return probs
}

func (m *manifests) checkService(s *service) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, "Service "+s.Metadata.Name+": "+fmt.Sprintf(format, args...))
	}
	ws := m.selected(s.Spec.Selector)
	if len(ws) != 1 {
		bad("selector %v selects %d workloads, want 1", s.Spec.Selector, len(ws))
		return probs
	}
	w := ws[0]
	if len(s.Spec.Ports) == 0 {
		bad("no ports")
	}
	names := map[string]bool{}
	for _, p := range s.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			bad("port %d: unnamed (required with several ports)", p.Port)
		}
		if names[p.Name] {
			bad("port name %q twice", p.Name)
		}
		names[p.Name] = true
		if p.Port < 1 || p.Port > 65535 {
			bad("port %d out of range", p.Port)
		}
		target := p.TargetPort
		if !target.IsInt && target.String == "" {
			target = intOrString{IsInt: true, Int: p.Port}
		}
		if _, ok := containerPort(w.template.Spec.Containers, target, proto); !ok {
			bad("port %q: targetPort %s/%s is not a container port of %s", p.Name, target.text(), proto, w)
		}
	}
	switch s.Spec.Type {
	case "", "ClusterIP", "NodePort", "LoadBalancer":
	default:
		bad("type %q", s.Spec.Type)
	}
	return probs
}

// hostPort splits "nats://h:p" or "h:p".
func hostPort(s string) (string, int, error) {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	return h, n, err
}

// nodeDNSNames maps the stable DNS names of a StatefulSet's pods
// (<sts>-<i>.<service>) to their ordinal.
func nodeDNSNames(s *statefulSet) map[string]int {
	out := map[string]int{}
	n := 1
	if s.Spec.Replicas != nil {
		n = *s.Spec.Replicas
	}
	for i := range n {
		out[fmt.Sprintf("%s-%d.%s", s.Metadata.Name, i, s.Spec.ServiceName)] = i
	}
	return out
}

func (m *manifests) checkNodes(s *statefulSet) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, "StatefulSet "+s.Metadata.Name+": "+fmt.Sprintf(format, args...))
	}
	svc := m.services[s.Spec.ServiceName]
	switch {
	case svc == nil:
		bad("serviceName %q: no such Service", s.Spec.ServiceName)
	case svc.Spec.ClusterIP != "None":
		bad("serviceName %q is not a headless Service (clusterIP: None)", s.Spec.ServiceName)
	case !selects(svc.Spec.Selector, s.Spec.Template.Metadata.Labels):
		bad("headless Service %q does not select the pods", s.Spec.ServiceName)
	case !svc.Spec.PublishNotReadyAddresses:
		bad("headless Service %q must publishNotReadyAddresses: pods are only ready after joining through it", s.Spec.ServiceName)
	}
	if s.Spec.PodManagementPolicy != "Parallel" {
		bad("podManagementPolicy %q: want Parallel (--bootstrap-expect waits for all)", s.Spec.PodManagementPolicy)
	}
	if len(s.Spec.VolumeClaimTemplates) == 0 {
		bad("no volumeClaimTemplates")
	}
	for _, vc := range s.Spec.VolumeClaimTemplates {
		if len(vc.Spec.AccessModes) == 0 || vc.Spec.Resources.Requests["storage"] == "" {
			bad("volumeClaimTemplate %q: needs accessModes and a storage request", vc.Metadata.Name)
		}
	}
	replicas := 1
	if s.Spec.Replicas != nil {
		replicas = *s.Spec.Replicas
	}
	names := nodeDNSNames(s)
	for i := range s.Spec.Template.Spec.Containers {
		c := &s.Spec.Template.Spec.Containers[i]
		if subcommand(c) != "node" {
			continue
		}
		if e := envOf(c, "HANGMAN_ID"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			bad("HANGMAN_ID must come from metadata.name (the stable pod name is the raft id)")
		}
		// Each pod advertises its own stable name under the headless
		// Service: a pod recreated on a new IP is found again.
		for pod, i := range names {
			adv, err := expandedFlag(c, "advertise", fmt.Sprintf("%s-%d", s.Metadata.Name, i))
			if err != nil {
				bad("--advertise: %v", err)
				break
			}
			if adv != pod {
				bad("--advertise of pod %d is %q, want its stable name %q", i, adv, pod)
			}
		}
		be, _ := flagValue(c, "bootstrap-expect")
		n, err := strconv.Atoi(be)
		if err != nil || n < 1 {
			bad("--bootstrap-expect %q", be)
		} else if n > replicas {
			bad("--bootstrap-expect %d > replicas %d: the cluster would never bootstrap", n, replicas)
		} else if n%2 == 0 {
			bad("--bootstrap-expect %d is even", n)
		}
		serf, _ := flagValue(c, "serf-addr")
		serfPort, _ := addrPort(serf)
		join, _ := flagValue(c, "join")
		covered := map[int]bool{}
		for _, j := range strings.Split(join, ",") {
			h, p, err := hostPort(j)
			if err != nil {
				bad("--join entry %q: %v", j, err)
				continue
			}
			i, ok := names[h]
			if !ok {
				bad("--join host %q is not a pod of this StatefulSet under its headless Service", h)
			}
			if p != serfPort {
				bad("--join %q: port %d, but serf listens on %d", j, p, serfPort)
			}
			covered[i] = true
		}
		if len(covered) != replicas {
			bad("--join names %d of the %d pods", len(covered), replicas)
		}
	}
	return probs
}

// nodePort is the port a node listens on for flag (nats-addr, grpc-addr).
func (m *manifests) nodePort(flag string) int {
	for _, s := range m.statefulSets {
		for i := range s.Spec.Template.Spec.Containers {
			c := &s.Spec.Template.Spec.Containers[i]
			if subcommand(c) == "node" {
				v, _ := flagValue(c, flag)
				p, _ := addrPort(v)
				return p
			}
		}
	}
	return 0
}

func (m *manifests) checkRelays(d *deployment) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, "Deployment "+d.Metadata.Name+": "+fmt.Sprintf(format, args...))
	}
	// A relay's addresses name node pods or a Service in front of them, on
	// the port the nodes serve that protocol on.
	resolve := func(flag, nodeFlag, entry string) {
		h, p, err := hostPort(entry)
		if err != nil {
			bad("--%s entry %q: %v", flag, entry, err)
			return
		}
		want := m.nodePort(nodeFlag)
		for _, s := range m.statefulSets {
			if _, ok := nodeDNSNames(s)[h]; ok {
				if p != want {
					bad("--%s %q: port %d, nodes serve it on %d", flag, entry, p, want)
				}
				return
			}
		}
		if svc := m.services[h]; svc != nil {
			for _, sp := range svc.Spec.Ports {
				if sp.Port == p {
					return
				}
			}
			bad("--%s %q: Service %s has no port %d", flag, entry, h, p)
			return
		}
		bad("--%s %q: host is neither a node pod name nor a Service", flag, entry)
	}
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		if subcommand(c) != "relay" {
			continue
		}
		for _, f := range []struct{ flag, nodeFlag string }{{"nats", "nats-addr"}, {"grpc", "grpc-addr"}} {
			v, _ := flagValue(c, f.flag)
			if v == "" {
				bad("--%s is not set", f.flag)
				continue
			}
			for _, e := range strings.Split(v, ",") {
				resolve(f.flag, f.nodeFlag, e)
			}
		}
	}
	return probs
}

func (m *manifests) checkPDB(p *podDisruptionBudget) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, "PodDisruptionBudget "+p.Metadata.Name+": "+fmt.Sprintf(format, args...))
	}
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		bad("want exactly one of minAvailable and maxUnavailable")
		return probs
	}
	ws := m.selected(p.Spec.Selector.MatchLabels)
	if len(ws) != 1 {
		bad("selector selects %d workloads, want 1", len(ws))
		return probs
	}
	w := ws[0]
	replicas := w.replicas
	if w.kind == "Deployment" {
		for _, h := range m.hpas {
			if h.Spec.ScaleTargetRef.Name == w.name && h.Spec.MinReplicas != nil {
				replicas = *h.Spec.MinReplicas
			}
		}
	}
	var maxDown int
	if v := p.Spec.MaxUnavailable; v != nil {
		if !v.IsInt {
			bad("maxUnavailable %q: use a count", v.String)
			return probs
		}
		maxDown = v.Int
	} else {
		v := p.Spec.MinAvailable
		if !v.IsInt {
			bad("minAvailable %q: use a count", v.String)
			return probs
		}
		maxDown = replicas - v.Int
	}
	if maxDown < 1 {
		bad("allows no voluntary disruption of %s (%d replicas): drains would hang", w, replicas)
	}
	if w.kind == "StatefulSet" {
		quorum := replicas/2 + 1
		if replicas-maxDown < quorum {
			bad("lets %d of %d raft voters go at once, below the quorum of %d", maxDown, replicas, quorum)
		}
	}
	return probs
}

func (m *manifests) checkHPA(h *horizontalPodAutoscaler) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, "HorizontalPodAutoscaler "+h.Metadata.Name+": "+fmt.Sprintf(format, args...))
	}
	ref := h.Spec.ScaleTargetRef
	d := m.deployments[ref.Name]
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || d == nil {
		bad("scaleTargetRef %s %s/%s is not a Deployment here", ref.APIVersion, ref.Kind, ref.Name)
		return probs
	}
	for i := range d.Spec.Template.Spec.Containers {
		if subcommand(&d.Spec.Template.Spec.Containers[i]) != "relay" {
			bad("scaleTargetRef %s runs no relay: only relays scale horizontally", ref.Name)
		}
	}
	if d.Spec.Replicas != nil {
		bad("Deployment %s sets replicas: %d, which every apply resets; the autoscaler alone owns the count", ref.Name, *d.Spec.Replicas)
	}
	minR := 1
	if h.Spec.MinReplicas != nil {
		minR = *h.Spec.MinReplicas
	}
	if minR < 1 || h.Spec.MaxReplicas < minR {
		bad("replicas %d..%d", minR, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) == 0 {
		bad("no metrics")
	}
	for _, mt := range h.Spec.Metrics {
		if mt.Type != "Resource" || mt.Resource == nil {
			bad("metric type %q: only Resource metrics are available without an adapter", mt.Type)
			continue
		}
		r := mt.Resource
		if r.Target.Type == "Utilization" {
			if r.Target.AverageUtilization == nil || *r.Target.AverageUtilization < 1 {
				bad("%s Utilization target needs averageUtilization", r.Name)
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				if c.Resources.Requests[r.Name] == "" {
					bad("%s utilization needs a %s request on container %q", r.Name, r.Name, c.Name)
				}
			}
		}
	}
	return probs
}

func TestManifests(t *testing.T) {
	m, err := loadManifests("k8s")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("objects: %v", m.order)
	spec, err := loadSecretsSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(m.check(), m.checkSecurity(spec)...) {
		t.Error(p)
	}
}

// TestManifestChecksCatch breaks the manifests in memory, one way at a time,
// and expects the checks to say so: they are not vacuous.
func TestManifestChecksCatch(t *testing.T) {
	cases := []struct {
		name, want string
		breakIt    func(m *manifests)
	}{
		{"template label", "does not match the pod template labels", func(m *manifests) {
			m.deployments["hangman-relay"].Spec.Template.Metadata.Labels["app.kubernetes.io/component"] = "other"
		}},
		{"probe port", "is not a container port", func(m *manifests) {
			m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intOrString{String: "nope"}
		}},
		{"probe on the wrong listener", "are served on --http-addr", func(m *manifests) {
			m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intOrString{String: "grpc"}
		}},
		{"not headless", "not a headless Service", func(m *manifests) { m.services["hangman-node"].Spec.ClusterIP = "" }},
		{"service target", "is not a container port", func(m *manifests) {
			m.services["hangman-relay"].Spec.Ports[0].TargetPort = intOrString{IsInt: true, Int: 8081}
		}},
		{"unknown flag", "has no flag --bogus", func(m *manifests) {
			c := &m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0]
			v := "x"
			c.Env = append(c.Env, envVar{Name: "HANGMAN_BOGUS", Value: &v})
		}},
		{"hpa target", "scaleTargetRef", func(m *manifests) { m.hpas["hangman-relay"].Spec.ScaleTargetRef.Name = "hangman-node" }},
		{"pdb below quorum", "below the quorum", func(m *manifests) {
			m.pdbs["hangman-node"].Spec.MaxUnavailable = &intOrString{IsInt: true, Int: 2}
		}},
		{"join misses a pod", "--join names 2 of the 3 pods", func(m *manifests) {
			c := &m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0]
			v := "hangman-node-0.hangman-node:7946,hangman-node-1.hangman-node:7946"
			envOf(c, "HANGMAN_JOIN").Value = &v
		}},
		{"relay to a wrong port", "nodes serve it on 4222", func(m *manifests) {
			c := &m.deployments["hangman-relay"].Spec.Template.Spec.Containers[0]
			v := "nats://hangman-node-0.hangman-node:4223"
			envOf(c, "HANGMAN_NATS").Value = &v
		}},
		{"undeclared listen port", "not a declared container port", func(m *manifests) {
			c := &m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0]
			v := "0.0.0.0:9999"
			envOf(c, "HANGMAN_GRPC_ADDR").Value = &v
		}},
		{"data dir off the volume", "is not a mounted volumeClaimTemplate", func(m *manifests) {
			c := &m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0]
			v := "/var/lib/hangman"
			envOf(c, "HANGMAN_DATA_DIR").Value = &v
		}},
		{"writable root", "readOnlyRootFilesystem", func(m *manifests) {
			f := false
			m.deployments["hangman-relay"].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}},
		{"forgotten file", "want every manifest file", func(m *manifests) { m.kustomize.Resources = m.kustomize.Resources[:1] }},
		{"advertise the pod IP", "changes when the pod is recreated", func(m *manifests) {
			e := envOf(&m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0], "HANGMAN_ADVERTISE")
			e.Value = nil
			e.ValueFrom = &envValueFrom{FieldRef: &fieldRef{FieldPath: "status.podIP"}}
		}},
		{"advertise another pod", "want its stable name", func(m *manifests) {
			v := "hangman-node-0.hangman-node"
			envOf(&m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0], "HANGMAN_ADVERTISE").Value = &v
		}},
		{"relay advertises its pod", "not one fixed http(s) URL", func(m *manifests) {
			c := &m.deployments["hangman-relay"].Spec.Template.Spec.Containers[0]
			v := "http://$(HANGMAN_NAME):8080"
			envOf(c, "HANGMAN_PUBLIC_URL").Value = &v
		}},
		{"replicas beside the autoscaler", "the autoscaler alone owns the count", func(m *manifests) {
			n := 2
			m.deployments["hangman-relay"].Spec.Replicas = &n
		}},
		{"voters may share a machine", "raft voters may share a machine", func(m *manifests) {
			m.statefulSets["hangman-node"].Spec.Template.Spec.TopologySpreadConstraints[0].WhenUnsatisfiable = "ScheduleAnyway"
		}},
		{"relays not spread", "no topology spread over machines", func(m *manifests) {
			m.deployments["hangman-relay"].Spec.Template.Spec.TopologySpreadConstraints = nil
		}},
		{"no GOMEMLIMIT", "GOMEMLIMIT", func(m *manifests) {
			c := &m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e envVar) bool { return e.Name == "GOMEMLIMIT" })
		}},
		{"raft open to relays", "port raft is open to hangman-relay", func(m *manifests) {
			np := m.netpols["hangman-node"]
			np.Spec.Ingress[1].Ports = append(np.Spec.Ingress[1].Ports, np.Spec.Ingress[0].Ports[0])
		}},
		{"gRPC open to any pod", "port grpc is open to any pod", func(m *manifests) {
			m.netpols["hangman-node"].Spec.Ingress[1].From = nil
		}},
		{"relays locked out of NATS", "port nats is closed to the relays", func(m *manifests) {
			m.netpols["hangman-node"].Spec.Ingress[1].Ports = m.netpols["hangman-node"].Spec.Ingress[1].Ports[:1]
		}},
		{"no policy for nodes", "no NetworkPolicy selects its pods", func(m *manifests) { delete(m.netpols, "hangman-node") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := loadManifests("k8s")
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(m)
			probs := m.check()
			for _, p := range probs {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tc.want, probs)
		})
	}
}

// TestSecurityChecksCatch breaks the security wiring in memory and expects
// checkSecurity to say so.
func TestSecurityChecksCatch(t *testing.T) {
	node := func(m *manifests) *container { return &m.statefulSets["hangman-node"].Spec.Template.Spec.Containers[0] }
	relay := func(m *manifests) *container { return &m.deployments["hangman-relay"].Spec.Template.Spec.Containers[0] }
	drop := func(c *container, name string) {
		c.Env = slices.DeleteFunc(c.Env, func(e envVar) bool { return e.Name == name })
	}
	cases := []struct {
		name, want string
		breakIt    func(m *manifests, spec *secretsSpec)
	}{
		{"no TLS on nodes", "--tls-cert is not set", func(m *manifests, _ *secretsSpec) { drop(node(m), "HANGMAN_TLS_CERT") }},
		{"one node's key for all", "want its own hangman-node-1-key.pem", func(m *manifests, _ *secretsSpec) {
			v := "/etc/hangman/tls/hangman-node-0-key.pem"
			envOf(node(m), "HANGMAN_TLS_KEY").Value = &v
		}},
		{"gossip key in the manifest", "--gossip-key does not come from a Secret", func(m *manifests, _ *secretsSpec) {
			e := envOf(node(m), "HANGMAN_GOSSIP_KEY")
			v := "c2VjcmV0"
			e.Value, e.ValueFrom = &v, nil
		}},
		{"no NATS users", "--nats-password does not come from a Secret", func(m *manifests, _ *secretsSpec) { drop(relay(m), "HANGMAN_NATS_PASSWORD") }},
		{"relay gets the gossip key", "a relay gets Secret key HANGMAN_GOSSIP_KEY", func(m *manifests, _ *secretsSpec) {
			relay(m).Env = append(relay(m).Env, *envOf(node(m), "HANGMAN_GOSSIP_KEY"))
		}},
		{"a Secret nobody makes", "is not one `task deploy:secrets` makes", func(m *manifests, _ *secretsSpec) {
			m.deployments["hangman-relay"].Spec.Template.Spec.Volumes[1].Secret.SecretName = "relay-certs"
		}},
		{"the CA key in the cluster", "holds the CA's private key", func(_ *manifests, spec *secretsSpec) {
			spec.secrets["hangman-node-tls"] = append(spec.secrets["hangman-node-tls"], "ca-key.pem")
		}},
		{"certificates for other names", "has no certificate", func(_ *manifests, spec *secretsSpec) {
			spec.nodeIDs = []string{"node1", "node2", "node3"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := loadManifests("k8s")
			if err != nil {
				t.Fatal(err)
			}
			spec, err := loadSecretsSpec()
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(m, spec)
			probs := m.checkSecurity(spec)
			for _, p := range probs {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tc.want, probs)
		})
	}
}

// TestManifestsRejectUnknownFields shows the strict decoding at work: a
// misplaced field is an error, not silently ignored.
func TestManifestsRejectUnknownFields(t *testing.T) {
	data, err := os.ReadFile("k8s/relay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(data, []byte("readinessProbe:"), []byte("readynessProbe:"), 1)
	m := newManifests()
	err = m.add("relay.yaml", broken)
	if err == nil || !strings.Contains(err.Error(), "readynessProbe") {
		t.Fatalf("misspelt field: err = %v, want one naming readynessProbe", err)
	}
	broken = bytes.Replace(data, []byte("apiVersion: autoscaling/v2"), []byte("apiVersion: autoscaling/v1"), 1)
	if err := m.add("relay.yaml", broken); err == nil || !strings.Contains(err.Error(), "unknown apiVersion/kind") {
		t.Fatalf("old HPA apiVersion: err = %v", err)
	}
}

// TestKustomizeBuild renders the kustomizations with kubectl, where it is
// installed (it needs no cluster): the base must render every object of
// its files, and what the base and the Ingress example render (what a
// cluster would receive) must pass every check.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the Go checks above stand alone")
	}
	spec, err := loadSecretsSpec()
	if err != nil {
		t.Fatal(err)
	}
	files, err := loadManifests("k8s")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"k8s", "k8s-ingress"} {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", dir, err)
			}
			m := newManifests()
			if err := m.add(dir+" rendered", out); err != nil {
				t.Fatal(err)
			}
			for _, p := range append(m.check(), m.checkSecurity(spec)...) {
				t.Error(p)
			}
			want := slices.Clone(files.order)
			if dir == "k8s-ingress" {
				want = append(want, "Ingress/hangman")
			}
			if g, w := slices.Sorted(slices.Values(m.order)), slices.Sorted(slices.Values(want)); !slices.Equal(g, w) {
				t.Errorf("kustomize rendered %v, want %v", g, w)
			}
		})
	}
}

// TestDockerfile checks the image definition against the manifests.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var instr []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr = append(instr, line)
	}
	if len(instr) == 0 || instr[0] != "FROM scratch" {
		t.Errorf("first instruction %q, want FROM scratch (no registry to pull a base from)", instr[0])
	}
	has := func(want string) {
		if !slices.Contains(instr, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	has("USER 65532:65532")
	has("VOLUME /data")
	has(`ENTRYPOINT ["/hangman"]`)
	has("COPY hangman /hangman")
	exposed := map[string]bool{}
	for _, in := range instr {
		if rest, ok := strings.CutPrefix(in, "EXPOSE "); ok {
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				exposed[p] = true
			}
		}
	}
	m, err := loadManifests("k8s")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range m.workloads() {
		for _, c := range w.template.Spec.Containers {
			for _, p := range c.Ports {
				proto := strings.ToLower(p.Protocol)
				if proto == "" {
					proto = "tcp"
				}
				if k := fmt.Sprintf("%d/%s", p.ContainerPort, proto); !exposed[k] {
					t.Errorf("%s container port %s is not EXPOSEd", w, k)
				}
			}
		}
	}
}

// TestTaskfile checks the deploy verbs exist and run from the module root.
func TestTaskfile(t *testing.T) {
	data, err := os.ReadFile("Taskfile.deploy.yml")
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Version string `yaml:"version"`
		Vars    map[string]string
		Tasks   map[string]struct {
			Desc     string            `yaml:"desc"`
			Vars     map[string]string `yaml:"vars"`
			Dir      string            `yaml:"dir"`
			Deps     []string          `yaml:"deps"`
			Env      map[string]string `yaml:"env"`
			Cmds     []string          `yaml:"cmds"`
			Requires *struct {
				Vars []string `yaml:"vars"`
			} `yaml:"requires"`
			Sources   []string `yaml:"sources"`
			Generates []string `yaml:"generates"`
		} `yaml:"tasks"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		t.Fatal(err)
	}
	if tf.Version != "3" {
		t.Errorf("version %q, want 3", tf.Version)
	}
	for _, name := range []string{"image", "certs", "up", "scale", "down", "secrets"} {
		task, ok := tf.Tasks[name]
		if !ok {
			t.Errorf("no task %q", name)
			continue
		}
		if task.Desc == "" || len(task.Cmds) == 0 {
			t.Errorf("task %q needs desc and cmds", name)
		}
		if task.Dir != "{{.TASKFILE_DIR}}/.." {
			t.Errorf("task %q: dir %q; it must run in the module root however it is included", name, task.Dir)
		}
	}
	if cmds := strings.Join(tf.Tasks["scale"].Cmds, "\n"); !strings.Contains(cmds, "--scale relay={{.RELAYS}}") || !strings.Contains(cmds, "--no-recreate") {
		t.Errorf("scale must scale relays to RELAYS without recreating anything: %q", cmds)
	}
	// SECURE=1 on the command line reaches COMPOSE only through a global
	// variable of its own (go-task evaluates COMPOSE among the globals).
	if _, ok := tf.Vars["SECURE"]; !ok || !strings.Contains(tf.Vars["COMPOSE"], "{{if .SECURE}}-f deploy/compose.secure.yaml") {
		t.Errorf("COMPOSE %q must add compose.secure.yaml when the global variable SECURE is set", tf.Vars["COMPOSE"])
	}
	if cmds := strings.Join(tf.Tasks["down"].Cmds, "\n"); !strings.Contains(cmds, "{{if .VOLUMES}}-v {{end}}") {
		t.Errorf("down must keep the volumes unless VOLUMES is set: %q", cmds)
	}
	if cmds := strings.Join(tf.Tasks["image"].Cmds, "\n"); !strings.Contains(cmds, "-f deploy/Dockerfile") || !strings.Contains(cmds, "deploy/build") {
		t.Errorf("image must build deploy/Dockerfile with deploy/build as its context: %q", cmds)
	}
}
