// Package wire owns the shapes of what crosses between the programs of
// the system, beside the subject names of package subjects: the
// conversions between the game's room states and events and their gRPC
// form, and the payloads of the cluster subjects. Nodes, relays, the load
// generator and the chaos harness all speak through it, so a field added
// to a shape is one edit, and a relay needs nothing of the node's service
// package to read what a node sends.
//
// It imports only the game's types and the generated protobuf code.
package wire
