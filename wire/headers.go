package wire

// PublisherHeader names the node whose state machine produced a room
// message (a state, an event or a history) on NATS. It is not part of the
// payload, so nothing that compares payloads changes; it is what an
// operator, or the chaos harness, needs to tell which node said what when
// two messages of one seq disagree.
const PublisherHeader = "Hangman-Node"
