package openflow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// OpenFlow 1.3 wire constants (OpenFlow Switch Specification 1.3.5, section 7).
const (
	version13 = 0x04

	typeHello          = 0
	typeError          = 1
	typeEchoRequest    = 2
	typeEchoReply      = 3
	typeMultipartReq   = 18
	typeMultipartReply = 19

	multipartFlow      = 1 // OFPMP_FLOW
	multipartReplyMore = 1 // OFPMPF_REPLY_MORE

	headerLen      = 8
	flowStatsFixed = 48 // ofp_flow_stats up to its match
)

// ErrVersion is returned when the switch does not speak OpenFlow 1.3 on the socket.
var ErrVersion = errors.New("switch does not offer OpenFlow 1.3")

// Flow is one OpenFlow flow's identity and packet count.
type Flow struct {
	Cookie   uint64
	Table    uint8
	Priority uint16
	// Match is the flow's match in its wire encoding (OXM). With Table and Priority it
	// names one flow: a flow that is removed and installed again keeps it.
	Match string
	// Duration is how long the flow has been installed.
	Duration time.Duration
	Packets  uint64
}

// Client reads flows from the bridge whose management socket is at Socket.
type Client struct {
	Socket string
}

// FlowsByCookie returns the flows of every table whose cookie is exactly one of cookies.
// It returns ErrVersion when the bridge does not allow OpenFlow 1.3, and an *Error when
// the switch refuses the request.
func (c Client) FlowsByCookie(ctx context.Context, cookies []uint64) ([]Flow, error) {
	if len(cookies) == 0 {
		return nil, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("openflow dial %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, fmt.Errorf("openflow deadline: %w", err)
		}
	}
	s := &session{rw: conn}
	if err := s.hello(); err != nil {
		return nil, err
	}
	var flows []Flow
	for _, ck := range cookies {
		fs, err := s.flowStats(ck)
		if err != nil {
			return nil, fmt.Errorf("openflow flow stats of cookie %#x: %w", ck, err)
		}
		flows = append(flows, fs...)
	}
	return flows, nil
}

// Error is an OFPT_ERROR the switch answered with.
type Error struct{ Type, Code uint16 }

func (e *Error) Error() string { return fmt.Sprintf("openflow error type %d code %d", e.Type, e.Code) }

type session struct {
	rw  io.ReadWriter
	xid uint32
}

func (s *session) send(typ uint8, body []byte) (uint32, error) {
	s.xid++
	msg := make([]byte, headerLen, headerLen+len(body))
	msg[0] = version13
	msg[1] = typ
	binary.BigEndian.PutUint16(msg[2:], uint16(headerLen+len(body)))
	binary.BigEndian.PutUint32(msg[4:], s.xid)
	msg = append(msg, body...)
	if _, err := s.rw.Write(msg); err != nil {
		return 0, fmt.Errorf("openflow write: %w", err)
	}
	return s.xid, nil
}

// recv reads one message and answers echo requests on the way.
func (s *session) recv() (version, typ uint8, xid uint32, body []byte, err error) {
	for {
		var h [headerLen]byte
		if _, err := io.ReadFull(s.rw, h[:]); err != nil {
			return 0, 0, 0, nil, fmt.Errorf("openflow read: %w", err)
		}
		n := int(binary.BigEndian.Uint16(h[2:]))
		if n < headerLen {
			return 0, 0, 0, nil, fmt.Errorf("openflow read: message length %d", n)
		}
		body = make([]byte, n-headerLen)
		if _, err := io.ReadFull(s.rw, body); err != nil {
			return 0, 0, 0, nil, fmt.Errorf("openflow read: %w", err)
		}
		version, typ, xid = h[0], h[1], binary.BigEndian.Uint32(h[4:])
		if typ == typeEchoRequest {
			s.xid = xid - 1 // answer with the request's xid
			if _, err := s.send(typeEchoReply, body); err != nil {
				return 0, 0, 0, nil, err
			}
			continue
		}
		return version, typ, xid, body, nil
	}
}

// hello negotiates OpenFlow 1.3: both sides send HELLO and use the lower version.
func (s *session) hello() error {
	if _, err := s.send(typeHello, nil); err != nil {
		return err
	}
	v, typ, _, body, err := s.recv()
	if err != nil {
		return err
	}
	if typ == typeError {
		return errorOf(body)
	}
	if typ != typeHello || v < version13 {
		return fmt.Errorf("%w (hello version %#x)", ErrVersion, v)
	}
	return nil
}

// flowStats sends one OFPMP_FLOW request for cookie (mask: all bits) and collects the
// replies until the last one.
func (s *session) flowStats(cookie uint64) ([]Flow, error) {
	req := make([]byte, 8+40)
	binary.BigEndian.PutUint16(req[0:], multipartFlow)
	r := req[8:]
	r[0] = 0xff                                   // all tables
	binary.BigEndian.PutUint32(r[4:], 0xffffffff) // out_port any
	binary.BigEndian.PutUint32(r[8:], 0xffffffff) // out_group any
	binary.BigEndian.PutUint64(r[16:], cookie)
	binary.BigEndian.PutUint64(r[24:], ^uint64(0))
	binary.BigEndian.PutUint16(r[32:], 1) // OFPMT_OXM
	binary.BigEndian.PutUint16(r[34:], 4) // empty match: its header only, padded to 8
	xid, err := s.send(typeMultipartReq, req)
	if err != nil {
		return nil, err
	}
	var flows []Flow
	for {
		_, typ, rxid, body, err := s.recv()
		if err != nil {
			return nil, err
		}
		if rxid != xid {
			continue // asynchronous messages
		}
		if typ == typeError {
			return nil, errorOf(body)
		}
		if typ != typeMultipartReply || len(body) < 8 || binary.BigEndian.Uint16(body) != multipartFlow {
			return nil, fmt.Errorf("openflow: unexpected reply type %d", typ)
		}
		fs, err := parseFlowStats(body[8:])
		if err != nil {
			return nil, err
		}
		flows = append(flows, fs...)
		if binary.BigEndian.Uint16(body[2:])&multipartReplyMore == 0 {
			return flows, nil
		}
	}
}

// parseFlowStats decodes a sequence of ofp_flow_stats.
func parseFlowStats(b []byte) ([]Flow, error) {
	var flows []Flow
	for len(b) > 0 {
		if len(b) < flowStatsFixed+4 {
			return nil, fmt.Errorf("openflow: flow stats truncated (%d bytes)", len(b))
		}
		n := int(binary.BigEndian.Uint16(b))
		matchLen := int(binary.BigEndian.Uint16(b[flowStatsFixed+2:]))
		matchEnd := flowStatsFixed + matchLen
		if n < flowStatsFixed+4 || n > len(b) || matchEnd > n {
			return nil, fmt.Errorf("openflow: flow stats length %d, match length %d, %d bytes left", n, matchLen, len(b))
		}
		flows = append(flows, Flow{
			Table:    b[2],
			Duration: time.Duration(binary.BigEndian.Uint32(b[4:]))*time.Second + time.Duration(binary.BigEndian.Uint32(b[8:])),
			Priority: binary.BigEndian.Uint16(b[12:]),
			Cookie:   binary.BigEndian.Uint64(b[24:]),
			Packets:  binary.BigEndian.Uint64(b[32:]),
			Match:    string(b[flowStatsFixed:matchEnd]),
		})
		b = b[n:]
	}
	return flows, nil
}

func errorOf(body []byte) error {
	if len(body) < 4 {
		return &Error{}
	}
	return &Error{Type: binary.BigEndian.Uint16(body), Code: binary.BigEndian.Uint16(body[2:])}
}
