// Package deploy holds how hangman is packaged and run outside `hangman dev`:
// the FROM-scratch image (Dockerfile), a docker-compose project with three
// game nodes and scalable relays (compose.yaml), Kubernetes manifests
// (k8s/), and the Taskfile verbs that drive them (Taskfile.deploy.yml).
//
// The package has no code of its own; its tests are the deployment's CI:
//
//   - the manifest tests validate every Kubernetes and compose document
//     offline (strict schemas for the fields used, cross-references between
//     objects, flags and ports against the binary's command line);
//   - TestCompose builds the image, starts the compose project on the local
//     Docker engine and plays through it while relays are scaled and the
//     raft leader is stopped and restarted. It skips, saying why, with
//     -short or where no Docker engine or docker-compose answers.
package deploy
