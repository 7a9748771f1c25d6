package raftnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// apiQueueGroup is the queue group of the nodes' API endpoints.
const apiQueueGroup = subjects.NodeService

// maxEventsRequest bounds a request's size: a room name and two numbers.
const maxEventsRequest = 1024

// EventsRequest asks for the events of Room after Since.
type EventsRequest struct {
	Room string `json:"room"`
	// Since is the last seq the consumer has of the room; 0 asks for the
	// room's whole history.
	Since uint64 `json:"since"`
	// Limit bounds the events of one answer: 0 or more than
	// game.MaxEventsPage means game.MaxEventsPage.
	Limit uint32 `json:"limit,omitempty"`
}

// EventsReply answers an EventsRequest.
type EventsReply struct {
	Room string `json:"room"`
	// Events are the room's events after since, oldest first, each exactly
	// the payload published on hangman.room.<room>.event.
	Events []json.RawMessage `json:"events"`
	// More says the answer stopped at the limit: ask again with since set
	// to the last event's seq.
	More bool `json:"more"`
	// Seq is the room's latest seq on the answering node.
	Seq uint64 `json:"seq"`
	// Applied is the raft index the answering node had applied: the answer
	// is the room's history up to there.
	Applied uint64 `json:"applied"`
	// Node is the node that answered.
	Node string `json:"node"`
}

// EventsError is the body of an error answer on subjects.APIEvents.
type EventsError struct {
	Error string `json:"error"`
	// Code is the micro error code: 400, 404, 410 or 500.
	Code int `json:"code"`
	// Oldest is, for 410, the smallest since the history still answers.
	Oldest  uint64 `json:"oldest,omitempty"`
	Applied uint64 `json:"applied"`
	Node    string `json:"node"`
}

// addEventsEndpoint serves subjects.APIEvents, the NATS micro endpoint a
// consumer asks for a room's events after a seq (DESIGN.md,
// hangman.api.events): how it repairs a gap it noticed (an event whose
// prev is not the last seq it saw).
//
// Request: EventsRequest as JSON. Answer: EventsReply as JSON, or a micro
// error (headers Nats-Service-Error-Code and Nats-Service-Error, body
// EventsError) with code 400 (malformed request, invalid room name), 404
// (no such room), 410 (since is older than the kept history: fetch the
// room's state instead) or 500.
//
// Every node serves it, in one queue group, so that one node, whichever
// NATS picks, answers each request. It answers from its own replica
// without asking the leader: committed events never change, so the answer
// is true up to the index the node has applied, which the answer gives,
// though a lagging node may not know the newest events yet (its seq is
// then below the one the consumer has seen: ask again).
func (n *Node) addEventsEndpoint(svc micro.Service) error {
	err := svc.AddEndpoint("events", micro.HandlerFunc(n.handleEvents),
		micro.WithEndpointSubject(subjects.APIEvents),
		micro.WithEndpointQueueGroup(apiQueueGroup),
		micro.WithEndpointMetadata(map[string]string{
			"description": `a room's committed events after a seq: {"room","since"}`,
		}))
	if err != nil {
		return fmt.Errorf("add %s endpoint: %w", subjects.APIEvents, err)
	}
	return nil
}

func (n *Node) handleEvents(req micro.Request) {
	q, err := decodeEventsRequest(req.Data())
	if err != nil {
		n.eventsError(req, EventsError{Code: 400, Error: err.Error()})
		return
	}
	var page game.EventPage
	applied := n.Read(func(m *game.Machine) { page, err = m.EventsSince(q.Room, q.Since, int(q.Limit)) })
	if err != nil {
		e := EventsError{Code: 500, Error: err.Error(), Applied: applied}
		var tooOld *game.TooOldError
		switch {
		case errors.As(err, &tooOld):
			e.Code, e.Oldest = 410, tooOld.Oldest
		case game.CodeOf(err) == game.CodeInvalid:
			e.Code = 400
		case game.CodeOf(err) == game.CodeNotFound:
			e.Code = 404
			e.Error = fmt.Sprintf("%s (node %s has applied up to index %d)", err, n.cfg.ID, applied)
		}
		n.eventsError(req, e)
		return
	}
	reply := EventsReply{Room: q.Room, Events: make([]json.RawMessage, len(page.Events)), More: page.More, Seq: page.Seq, Applied: applied, Node: n.cfg.ID}
	for i := range page.Events {
		reply.Events[i] = page.Events[i].AppendJSON(nil)
	}
	if err := req.RespondJSON(reply); err != nil {
		n.log.Warn("answer events request", "room", q.Room, "err", err)
	}
}

// decodeEventsRequest parses a request, refusing what is not exactly an
// EventsRequest.
func decodeEventsRequest(data []byte) (EventsRequest, error) {
	const want = `{"room":"<room>","since":<seq>}`
	if len(data) > maxEventsRequest {
		return EventsRequest{}, fmt.Errorf("request of %d bytes exceeds %d; want %s", len(data), maxEventsRequest, want)
	}
	var q EventsRequest
	if err := decodeStrict(data, &q, want); err != nil {
		return EventsRequest{}, err
	}
	return q, nil
}

// decodeStrict parses a request of the nodes' NATS endpoints into v:
// exactly one JSON object with no field v does not have. want shows the
// request's shape in the error.
func decodeStrict(data []byte, v any, want string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("empty request; want %s", want)
		}
		return fmt.Errorf("malformed request: %w; want %s", err, want)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("malformed request: data after the object; want %s", want)
	}
	return nil
}

func (n *Node) eventsError(req micro.Request, e EventsError) {
	e.Node = n.cfg.ID
	body, err := json.Marshal(e)
	if err != nil {
		// EventsError is strings and numbers.
		panic(fmt.Sprintf("encode events error: %v", err))
	}
	if err := req.Error(strconv.Itoa(e.Code), e.Error, body); err != nil {
		n.log.Warn("answer events request", "code", e.Code, "err", err)
	}
}
