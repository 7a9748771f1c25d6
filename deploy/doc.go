// Package deploy holds how hangman is packaged and run outside `hangman dev`:
// the FROM-scratch image (Dockerfile), a docker-compose project with three
// game nodes, scalable relays and one public entry (compose.yaml), the
// override that switches security on (compose.secure.yaml), Kubernetes
// manifests that are secure by default (k8s/, with an Ingress example in
// k8s-ingress/), and the Taskfile verbs that drive them
// (Taskfile.deploy.yml).
//
// The package has no code of its own; its tests are the deployment's CI:
//
//   - the manifest tests validate every Kubernetes and compose document
//     offline (strict schemas for the fields used, cross-references between
//     objects, flags and ports against the binary's command line, stable
//     advertised names, TLS and secrets wiring, network policies), and what
//     kubectl kustomize renders where kubectl is installed;
//   - TestCompose builds the image, starts the secured compose project on
//     the local Docker engine and plays through it while relays are scaled
//     and killed under a real browser, the raft leader is killed, and the
//     whole project is restarted on new addresses. It skips, saying why,
//     with -short or where no Docker engine or docker-compose answers.
package deploy
